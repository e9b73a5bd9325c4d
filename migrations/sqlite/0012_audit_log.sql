-- The audit trail (docs/audit.md): one row per security-relevant action, in chains that each
-- carry the hash of their previous row. `chain` is '' for the control chain (deployment and
-- god-key actions), else the tenant's name. Never holds a secret.
CREATE TABLE audit_log (
    chain        TEXT NOT NULL,
    seq          INTEGER NOT NULL,
    at           TEXT NOT NULL,
    actor_key_id TEXT,
    actor_name   TEXT,
    action       TEXT NOT NULL,
    target       TEXT NOT NULL,
    outcome      TEXT NOT NULL,
    request_id   TEXT,
    client       TEXT,
    detail       TEXT NOT NULL,
    prev_hash    TEXT NOT NULL,
    hash         TEXT NOT NULL,
    PRIMARY KEY (chain, seq)
) WITHOUT ROWID;
CREATE INDEX audit_log_action ON audit_log (chain, action, seq);
CREATE INDEX audit_log_at ON audit_log (chain, at);

-- Where each chain stands: its last row, and the last row the retention prune removed.
CREATE TABLE audit_heads (
    chain       TEXT PRIMARY KEY NOT NULL,
    seq         INTEGER NOT NULL DEFAULT 0,
    hash        TEXT NOT NULL,
    anchor_seq  INTEGER NOT NULL DEFAULT 0,
    anchor_hash TEXT NOT NULL,
    -- 1 only inside the prune's own transaction.
    pruning     INTEGER NOT NULL DEFAULT 0 CHECK (pruning IN (0, 1))
);

-- Rows are never changed, and leave only through the prune.
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
WHEN (SELECT pruning FROM audit_heads WHERE chain = OLD.chain) IS NOT 1
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only: rows leave only through the retention prune');
END;

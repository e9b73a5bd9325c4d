-- The tenant's audit trail as a hash chain (docs/audit.md). The table of migration 0001 was
-- written by nothing before this version, so it is replaced rather than altered.
DROP TABLE audit_log;

-- One row per security-relevant action in this tenant; never a secret. `seq` runs 1, 2, 3 …
-- with no gap; `prev_hash` is the hash of row seq - 1, `hash` covers every column.
CREATE TABLE audit_log (
    seq          bigint PRIMARY KEY,
    at           timestamptz NOT NULL,
    actor_key_id uuid,
    actor_name   text,
    action       text NOT NULL,
    target       text NOT NULL,
    outcome      text NOT NULL,
    request_id   text,
    client       text,
    detail       jsonb NOT NULL,
    prev_hash    text NOT NULL,
    hash         text NOT NULL
);
CREATE INDEX audit_log_action ON audit_log (action, seq);
CREATE INDEX audit_log_at ON audit_log (at);

-- Where the chain stands: its last row, and the last row the retention prune removed. Its
-- row lock orders concurrent appends.
CREATE TABLE audit_head (
    singleton   boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    seq         bigint NOT NULL DEFAULT 0,
    hash        text NOT NULL DEFAULT '0000000000000000000000000000000000000000000000000000000000000000',
    anchor_seq  bigint NOT NULL DEFAULT 0,
    anchor_hash text NOT NULL DEFAULT '0000000000000000000000000000000000000000000000000000000000000000'
);
INSERT INTO audit_head DEFAULT VALUES;

-- Rows are never changed or truncated, and leave only through the retention prune, which
-- says so for its own transaction.
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND current_setting('cloacina.audit_prune', true) = 'on' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'audit_log is append-only' USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();

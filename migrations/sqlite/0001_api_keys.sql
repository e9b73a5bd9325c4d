-- API keys. Rows are never deleted: revocation is a flag, other tables point at rows.
-- A god key (is_admin = 1) has no tenant; every other key has exactly one.
CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY NOT NULL,
    name         TEXT NOT NULL,
    tenant       TEXT,
    role         TEXT NOT NULL CHECK (role IN ('read', 'write', 'admin')),
    is_admin     INTEGER NOT NULL DEFAULT 0 CHECK (is_admin IN (0, 1)),
    -- 'sha256': key_hash is the hex SHA-256 of a minted key.
    -- 'argon2id': key_hash is the PHC string of an operator-supplied key.
    hash_kind    TEXT NOT NULL CHECK (hash_kind IN ('sha256', 'argon2id')),
    key_hash     TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    created_by   TEXT REFERENCES api_keys (id),
    revoked      INTEGER NOT NULL DEFAULT 0 CHECK (revoked IN (0, 1)),
    revoked_at   TEXT,
    expires_at   TEXT,
    last_used_at TEXT,
    CHECK ((is_admin = 1 AND tenant IS NULL AND role = 'admin') OR (is_admin = 0 AND tenant IS NOT NULL))
);

CREATE INDEX api_keys_tenant ON api_keys (tenant, created_at);
CREATE INDEX api_keys_active_admin ON api_keys (is_admin) WHERE revoked = 0;
CREATE INDEX api_keys_active_supplied ON api_keys (hash_kind) WHERE revoked = 0 AND hash_kind = 'argon2id';

-- Tenant secrets (docs/secrets.md): the data key of tenant `public`, wrapped by the master key
-- (`master_id` names which), and each secret's fields sealed by the data key. No value is ever
-- stored in the clear.
CREATE TABLE secret_key (
    singleton    INTEGER PRIMARY KEY NOT NULL DEFAULT 1 CHECK (singleton = 1),
    master_id    TEXT NOT NULL,
    nonce        BLOB NOT NULL,
    sealed       BLOB NOT NULL,
    created_at   TEXT NOT NULL,
    rewrapped_at TEXT
);

CREATE TABLE secrets (
    id          TEXT PRIMARY KEY NOT NULL,
    name        TEXT NOT NULL UNIQUE,
    field_names TEXT NOT NULL,
    nonce       BLOB NOT NULL,
    sealed      BLOB NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);

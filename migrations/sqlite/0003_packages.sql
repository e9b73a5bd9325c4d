-- Uploaded package versions. The archive is kept; versions are immutable.
CREATE TABLE packages (
    id           TEXT PRIMARY KEY NOT NULL,
    name         TEXT NOT NULL,
    version      TEXT NOT NULL,
    description  TEXT,
    content_hash TEXT NOT NULL UNIQUE,  -- SHA-256 of the archive, hex
    size_bytes   INTEGER NOT NULL,
    manifest     TEXT NOT NULL,         -- package.toml as uploaded
    workflows    TEXT NOT NULL,         -- JSON array of the workflow names it declares
    archive      BLOB NOT NULL,
    uploaded_at  TEXT NOT NULL,
    uploaded_by  TEXT REFERENCES api_keys (id),
    UNIQUE (name, version)
);

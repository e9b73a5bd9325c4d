-- Uploaded package versions. The archive is kept, so any replica can unpack it; versions are
-- immutable (the same name and version with other content is refused).
CREATE TABLE packages (
    id           uuid PRIMARY KEY,
    name         text NOT NULL,
    version      text NOT NULL,
    description  text,
    content_hash text NOT NULL UNIQUE,  -- SHA-256 of the archive, hex
    size_bytes   bigint NOT NULL,
    manifest     text NOT NULL,         -- package.toml as uploaded
    workflows    jsonb NOT NULL,        -- the workflow names it declares
    archive      bytea NOT NULL,
    uploaded_at  timestamptz NOT NULL,
    uploaded_by  uuid,                  -- public.api_keys(id); the tenant cannot reference it
    UNIQUE (name, version)
);

-- Signed packages (docs/packages.md, "Signed packages"): the Ed25519 keys the tenant trusts,
-- whether it requires signatures, and the signature each package version was accepted with.

CREATE TABLE signing_keys (
    id         TEXT PRIMARY KEY NOT NULL,
    name       TEXT NOT NULL UNIQUE,
    key_id     TEXT NOT NULL UNIQUE,
    public_key TEXT NOT NULL,
    created_at TEXT NOT NULL,
    created_by TEXT
);

CREATE TABLE signature_policy (
    singleton          INTEGER PRIMARY KEY NOT NULL DEFAULT 1 CHECK (singleton = 1),
    require_signatures INTEGER NOT NULL DEFAULT 0 CHECK (require_signatures IN (0, 1)),
    updated_at         TEXT,
    updated_by         TEXT
);
INSERT INTO signature_policy DEFAULT VALUES;

-- One row per package version stored with a verified signature; the signer's fields are
-- copied, so the row outlives the key's removal, and `registered_by` points at the API key
-- that registered the signing key.
CREATE TABLE package_signatures (
    package_id     TEXT PRIMARY KEY NOT NULL REFERENCES packages (id) ON DELETE CASCADE,
    signing_key_id TEXT NOT NULL,
    key_id         TEXT NOT NULL,
    signer_name    TEXT NOT NULL,
    registered_by  TEXT,
    signature      TEXT NOT NULL,
    verified_at    TEXT NOT NULL
);

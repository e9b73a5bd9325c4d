-- Signed packages (docs/packages.md, "Signed packages"): the Ed25519 keys this tenant trusts,
-- whether it requires signatures, and the signature each package version was accepted with.

-- `created_by` is the id of the API key (public.api_keys) that registered the key: API key
-- rows are never deleted, so it always names one.
CREATE TABLE signing_keys (
    id         uuid PRIMARY KEY,
    name       text NOT NULL UNIQUE,
    key_id     text NOT NULL UNIQUE,
    public_key text NOT NULL,
    created_at timestamptz NOT NULL,
    created_by uuid
);

CREATE TABLE signature_policy (
    singleton          boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    require_signatures boolean NOT NULL DEFAULT false,
    updated_at         timestamptz,
    updated_by         uuid
);
INSERT INTO signature_policy DEFAULT VALUES;

-- One row per package version stored with a verified signature. The signer's fields are
-- copied, so the row outlives the key's removal; `registered_by` is the API key that
-- registered the signing key.
CREATE TABLE package_signatures (
    package_id     uuid PRIMARY KEY REFERENCES packages (id) ON DELETE CASCADE,
    signing_key_id uuid NOT NULL,
    key_id         text NOT NULL,
    signer_name    text NOT NULL,
    registered_by  uuid,
    signature      text NOT NULL,
    verified_at    timestamptz NOT NULL
);

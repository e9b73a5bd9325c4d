-- Tenant secrets (docs/secrets.md): the tenant's data key, wrapped by the deployment's master
-- key (`master_id` names which), and each secret's fields sealed by the data key. No value is
-- ever stored in the clear.
CREATE TABLE secret_key (
    singleton    boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    master_id    text NOT NULL,
    nonce        bytea NOT NULL,
    sealed       bytea NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    rewrapped_at timestamptz
);

CREATE TABLE secrets (
    id          uuid PRIMARY KEY,
    name        text NOT NULL UNIQUE,
    field_names jsonb NOT NULL,
    nonce       bytea NOT NULL,
    sealed      bytea NOT NULL,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL
);

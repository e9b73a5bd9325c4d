-- Runs as the tenant's own role with search_path set to the tenant's schema: every object
-- created here belongs to the tenant and is out of reach of every other tenant's role.

-- The tenant's audit trail: one row per security-relevant action. Never holds a secret.
CREATE TABLE audit_log (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at           timestamptz NOT NULL,
    actor_key_id uuid,
    action       text NOT NULL,
    target       text,
    detail       jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_at ON audit_log (at);

-- One row per tenant with a trigger to look at: the earliest due_at of its triggers. The same
-- protocol as tenant_work (whatever changes a tenant's triggers lowers due_at and bumps seq; a
-- scheduler pass sets the exact next time only if seq is unchanged), so schedulers find the
-- tenants with fires due in one query and sleep until the next one. Tenant roles have no
-- access to it.
CREATE TABLE trigger_due (
    tenant text PRIMARY KEY REFERENCES tenants (name) ON DELETE CASCADE,
    due_at timestamptz NOT NULL,
    seq    bigint NOT NULL DEFAULT 1
);
CREATE INDEX trigger_due_due ON trigger_due (due_at);

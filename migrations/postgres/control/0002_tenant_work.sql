-- One row per tenant whose engine work falls due at due_at: its earliest ready task or
-- running task's lease expiry. Kept in the same transactions as the tenant's task rows (the
-- server switches back to its login role for it), so workers find the tenants with work in
-- one query however many tenants there are. Tenant roles have no access to it.
--
-- Whatever readies tasks lowers due_at (least of old and new) and bumps seq; a claim that
-- found the tenant's work sets the exact next due time (or removes the row) only if seq is
-- still what it read first, so a concurrent wake-up is never overwritten.
CREATE TABLE tenant_work (
    tenant text PRIMARY KEY REFERENCES tenants (name) ON DELETE CASCADE,
    due_at timestamptz NOT NULL,
    seq    bigint NOT NULL DEFAULT 1
);
CREATE INDEX tenant_work_due ON tenant_work (due_at);

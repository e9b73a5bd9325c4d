-- The settings a god key gives a tenant. SQLite holds one tenant, 'public'; a missing row or
-- a NULL column means the deployment's default.
CREATE TABLE tenant_settings (
    tenant       TEXT PRIMARY KEY CHECK (tenant = 'public'),
    -- How its tasks reach the network (--task-network): 'host', 'none', or NULL.
    task_network TEXT CHECK (task_network IN ('host', 'none'))
) WITHOUT ROWID;

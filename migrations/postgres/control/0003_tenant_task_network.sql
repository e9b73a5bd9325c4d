-- A tenant's own task network, set by a god key: 'host', 'none', or NULL for the
-- deployment's default (--task-network). Read by every claim, with the login role.
ALTER TABLE tenants ADD COLUMN task_network text CHECK (task_network IN ('host', 'none'));

-- Executions and the engine's queue (docs/engine.md), in the tenant's own schema.
CREATE TABLE executions (
    id              uuid PRIMARY KEY,
    workflow        text NOT NULL,
    package_id      uuid NOT NULL,          -- the package version in force when accepted
    package_version text NOT NULL,
    status          text NOT NULL CHECK (status IN ('pending', 'running', 'succeeded', 'failed', 'cancelled')),
    plan            jsonb NOT NULL,         -- the tasks as they were when accepted
    context         jsonb NOT NULL,         -- the initial context
    error           text,
    origin          text NOT NULL,          -- 'api' or 'trigger:<name>'
    idempotency_key text UNIQUE,
    created_at      timestamptz NOT NULL,
    started_at      timestamptz,
    finished_at     timestamptz,
    created_by      uuid                    -- public.api_keys(id); the tenant cannot reference it
);
CREATE INDEX executions_created ON executions (created_at);
CREATE INDEX executions_status ON executions (status, created_at);
CREATE INDEX executions_workflow ON executions (workflow, created_at);
CREATE INDEX executions_unfinished_package ON executions (package_id) WHERE status IN ('pending', 'running');
CREATE INDEX executions_finished ON executions (finished_at) WHERE finished_at IS NOT NULL;

CREATE TABLE execution_tasks (
    execution_id uuid NOT NULL REFERENCES executions (id) ON DELETE CASCADE,
    position     integer NOT NULL,          -- in the plan, dependencies first
    task_id      text NOT NULL,
    status       text NOT NULL CHECK (status IN ('waiting', 'ready', 'running', 'succeeded', 'failed', 'skipped', 'cancelled')),
    attempts     integer NOT NULL DEFAULT 0,
    ready_at     timestamptz,               -- ready tasks: when they may be claimed
    lease_owner  text,
    lease_until  timestamptz,
    started_at   timestamptz,
    finished_at  timestamptz,
    output       jsonb,
    error        text,
    PRIMARY KEY (execution_id, position)
);
-- Claims read only ready rows (finished rows never slow a claim); lease expiry only running ones.
CREATE INDEX execution_tasks_ready ON execution_tasks (ready_at) WHERE status = 'ready';
CREATE INDEX execution_tasks_leased ON execution_tasks (lease_until) WHERE status = 'running';

-- Events and logs carry no foreign key: a key check would lock the execution's row (KEY
-- SHARE) on every insert, making claims wait on whoever records an outcome. Pruning deletes
-- them with their execution.
CREATE TABLE execution_events (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    execution_id uuid NOT NULL,
    at           timestamptz NOT NULL,
    kind         text NOT NULL,
    task         text,
    detail       jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX execution_events_execution ON execution_events (execution_id, id);

CREATE TABLE task_logs (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    execution_id uuid NOT NULL,
    position     integer NOT NULL,
    task_id      text NOT NULL,
    attempt      integer NOT NULL,
    stdout       text NOT NULL,
    stderr       text NOT NULL,
    truncated    boolean NOT NULL,
    at           timestamptz NOT NULL
);
CREATE INDEX task_logs_task ON task_logs (execution_id, task_id, id);

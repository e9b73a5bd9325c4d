-- Executions and the engine's queue (docs/engine.md). Times are RFC 3339 UTC text with
-- microseconds, so they compare correctly as text.
CREATE TABLE executions (
    id              TEXT PRIMARY KEY NOT NULL,
    workflow        TEXT NOT NULL,
    package_id      TEXT NOT NULL,          -- the package version in force when accepted
    package_version TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('pending', 'running', 'succeeded', 'failed', 'cancelled')),
    plan            TEXT NOT NULL,          -- JSON: the tasks as they were when accepted
    context         TEXT NOT NULL,          -- JSON object: the initial context
    error           TEXT,
    origin          TEXT NOT NULL,          -- 'api' or 'trigger:<name>'
    idempotency_key TEXT UNIQUE,
    created_at      TEXT NOT NULL,
    started_at      TEXT,
    finished_at     TEXT,
    created_by      TEXT                    -- api_keys(id)
);
CREATE INDEX executions_created ON executions (created_at);
CREATE INDEX executions_status ON executions (status, created_at);
CREATE INDEX executions_workflow ON executions (workflow, created_at);
CREATE INDEX executions_unfinished_package ON executions (package_id) WHERE status IN ('pending', 'running');
CREATE INDEX executions_finished ON executions (finished_at) WHERE finished_at IS NOT NULL;

CREATE TABLE execution_tasks (
    execution_id TEXT NOT NULL REFERENCES executions (id) ON DELETE CASCADE,
    position     INTEGER NOT NULL,          -- in the plan, dependencies first
    task_id      TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('waiting', 'ready', 'running', 'succeeded', 'failed', 'skipped', 'cancelled')),
    attempts     INTEGER NOT NULL DEFAULT 0,
    ready_at     TEXT,                      -- ready tasks: when they may be claimed
    lease_owner  TEXT,
    lease_until  TEXT,
    started_at   TEXT,
    finished_at  TEXT,
    output       TEXT,                      -- JSON object
    error        TEXT,
    PRIMARY KEY (execution_id, position)
) WITHOUT ROWID;
-- Claims read only ready rows; lease expiry reads only running ones.
CREATE INDEX execution_tasks_ready ON execution_tasks (ready_at) WHERE status = 'ready';
CREATE INDEX execution_tasks_leased ON execution_tasks (lease_until) WHERE status = 'running';

-- Events and logs carry no foreign key: a key check would lock the execution's row (KEY
-- SHARE) on every insert, making claims wait on whoever records an outcome. Pruning deletes
-- them with their execution.
CREATE TABLE execution_events (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    execution_id TEXT NOT NULL,
    at           TEXT NOT NULL,
    kind         TEXT NOT NULL,
    task         TEXT,
    detail       TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX execution_events_execution ON execution_events (execution_id, id);

CREATE TABLE task_logs (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    execution_id TEXT NOT NULL,
    position     INTEGER NOT NULL,
    task_id      TEXT NOT NULL,
    attempt      INTEGER NOT NULL,
    stdout       TEXT NOT NULL,
    stderr       TEXT NOT NULL,
    truncated    INTEGER NOT NULL CHECK (truncated IN (0, 1)),
    at           TEXT NOT NULL
);
CREATE INDEX task_logs_task ON task_logs (execution_id, task_id, id);

-- Cron triggers (docs/triggers.md): one row per trigger of a workflow in force, put in force
-- and taken out with its workflow. A scheduler locks a due row, decides in the domain, and
-- advances next_fire_at in the same transaction as the executions it starts.
CREATE TABLE triggers (
    name              text PRIMARY KEY,
    workflow          text NOT NULL REFERENCES workflows (name) ON DELETE CASCADE,
    package_name      text NOT NULL,
    cron              text NOT NULL,
    timezone          text NOT NULL,
    catchup           text NOT NULL CHECK (catchup IN ('skip', 'latest', 'all')),
    catchup_window_ms bigint NOT NULL CHECK (catchup_window_ms >= 0),
    overlap           text NOT NULL CHECK (overlap IN ('skip', 'allow', 'buffer_one', 'cancel_other')),
    context           jsonb NOT NULL DEFAULT '{}',
    paused            boolean NOT NULL DEFAULT false,
    paused_at         timestamptz,
    next_fire_at      timestamptz,   -- the earliest scheduled time not yet decided
    due_at            timestamptz,   -- when a scheduler must look next (null: paused or done)
    last_fire_at      timestamptz,
    buffered_at       timestamptz,   -- a fire waiting for the running one (overlap buffer_one)
    fired             bigint NOT NULL DEFAULT 0,
    caught_up         bigint NOT NULL DEFAULT 0,
    skipped_overlap   bigint NOT NULL DEFAULT 0,
    skipped_paused    bigint NOT NULL DEFAULT 0,
    skipped_catchup   bigint NOT NULL DEFAULT 0,
    missed            bigint NOT NULL DEFAULT 0,
    created_at        timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL
);
CREATE INDEX triggers_due ON triggers (due_at) WHERE due_at IS NOT NULL;
CREATE INDEX triggers_package ON triggers (package_name);

-- Which trigger started an execution, and for which scheduled time. The scheduled fire's
-- idempotency key ('cloacina:trigger:<name>:<unix seconds>', unique above) is what makes a
-- second execution for one scheduled time impossible.
ALTER TABLE executions ADD COLUMN trigger text, ADD COLUMN scheduled_at timestamptz;
CREATE INDEX executions_trigger ON executions (trigger, created_at) WHERE trigger IS NOT NULL;
CREATE INDEX executions_unfinished_trigger ON executions (trigger) WHERE trigger IS NOT NULL AND status IN ('pending', 'running');

-- Cron triggers (docs/triggers.md); see migrations/postgres/tenant/0006_triggers.sql. Times are
-- RFC 3339 UTC text with microseconds.
CREATE TABLE triggers (
    name              TEXT PRIMARY KEY NOT NULL,
    workflow          TEXT NOT NULL REFERENCES workflows (name) ON DELETE CASCADE,
    package_name      TEXT NOT NULL,
    cron              TEXT NOT NULL,
    timezone          TEXT NOT NULL,
    catchup           TEXT NOT NULL CHECK (catchup IN ('skip', 'latest', 'all')),
    catchup_window_ms INTEGER NOT NULL CHECK (catchup_window_ms >= 0),
    overlap           TEXT NOT NULL CHECK (overlap IN ('skip', 'allow', 'buffer_one', 'cancel_other')),
    context           TEXT NOT NULL DEFAULT '{}',
    paused            INTEGER NOT NULL DEFAULT 0 CHECK (paused IN (0, 1)),
    paused_at         TEXT,
    next_fire_at      TEXT,
    due_at            TEXT,
    last_fire_at      TEXT,
    buffered_at       TEXT,
    fired             INTEGER NOT NULL DEFAULT 0,
    caught_up         INTEGER NOT NULL DEFAULT 0,
    skipped_overlap   INTEGER NOT NULL DEFAULT 0,
    skipped_paused    INTEGER NOT NULL DEFAULT 0,
    skipped_catchup   INTEGER NOT NULL DEFAULT 0,
    missed            INTEGER NOT NULL DEFAULT 0,
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL
);
CREATE INDEX triggers_due ON triggers (due_at) WHERE due_at IS NOT NULL;
CREATE INDEX triggers_package ON triggers (package_name);

ALTER TABLE executions ADD COLUMN trigger TEXT;
ALTER TABLE executions ADD COLUMN scheduled_at TEXT;
CREATE INDEX executions_trigger ON executions (trigger, created_at) WHERE trigger IS NOT NULL;
CREATE INDEX executions_unfinished_trigger ON executions (trigger) WHERE trigger IS NOT NULL AND status IN ('pending', 'running');

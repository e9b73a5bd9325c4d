-- The workflows the (single) tenant can run, each declared by the newest version of one package.
CREATE TABLE workflows (
    name         TEXT PRIMARY KEY NOT NULL,
    package_name TEXT NOT NULL,
    version      TEXT NOT NULL,
    description  TEXT,
    tasks        TEXT NOT NULL DEFAULT '[]',   -- JSON array of task ids, in dependency order
    paused       INTEGER NOT NULL DEFAULT 0 CHECK (paused IN (0, 1)),
    updated_at   TEXT NOT NULL
);
CREATE INDEX workflows_package ON workflows (package_name);

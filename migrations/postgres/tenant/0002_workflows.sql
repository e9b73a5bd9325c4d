-- The workflows a tenant can run, each declared by the newest version of one package.
CREATE TABLE workflows (
    name         text PRIMARY KEY,
    package_name text NOT NULL,
    version      text NOT NULL,
    description  text,
    tasks        jsonb NOT NULL DEFAULT '[]',   -- task ids, in dependency order
    paused       boolean NOT NULL DEFAULT false,
    updated_at   timestamptz NOT NULL
);
CREATE INDEX workflows_package ON workflows (package_name);

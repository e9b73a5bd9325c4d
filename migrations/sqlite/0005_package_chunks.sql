-- Archives are stored in 1 MiB chunks, written and read one at a time, so a large upload
-- never sits in the server's memory whole. packages.archive stays for versions uploaded
-- before this migration (new rows leave it empty).
CREATE TABLE package_chunks (
    package_id TEXT NOT NULL REFERENCES packages (id) ON DELETE CASCADE,
    seq        INTEGER NOT NULL,
    bytes      BLOB NOT NULL,
    PRIMARY KEY (package_id, seq)
) WITHOUT ROWID;

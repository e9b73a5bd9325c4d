-- Single-use tickets for WebSocket clients that cannot set headers (docs/live.md): only the
-- SHA-256 of a ticket is kept, with the key it stands for, for 60 seconds. Any replica can
-- redeem a ticket another issued.
CREATE TABLE ws_tickets (
    digest     bytea PRIMARY KEY,
    key_id     uuid NOT NULL,
    expires_at timestamptz NOT NULL
);
CREATE INDEX ws_tickets_expiry ON ws_tickets (expires_at);

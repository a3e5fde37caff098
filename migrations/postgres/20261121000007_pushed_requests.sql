-- Pushed authorization requests (RFC 9126), kept under the SHA-256 of the random part of the
-- request_uri handed back (the request_uri itself is never stored), until the authorization uses
-- them up or they expire. A request goes with the client that pushed it.
CREATE TABLE pushed_requests (
    handle      BYTEA       PRIMARY KEY CHECK (length(handle) = 32),
    client_id   TEXT        NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    parameters  JSONB       NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX pushed_requests_by_expiry ON pushed_requests (expires_at);

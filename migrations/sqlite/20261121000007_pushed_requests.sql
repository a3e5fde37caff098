-- Pushed authorization requests (RFC 9126), kept under the SHA-256 of the random part of the
-- request_uri handed back (the request_uri itself is never stored), until the authorization uses
-- them up or they expire. A request goes with the client that pushed it.
CREATE TABLE pushed_requests (
    handle      BLOB    PRIMARY KEY NOT NULL CHECK (length(handle) = 32),
    client_id   TEXT    NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    parameters  TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
) STRICT;
CREATE INDEX pushed_requests_by_expiry ON pushed_requests (expires_at);

-- The customers' browser sessions, kept under the SHA-256 of the session cookie's value (the
-- cookie itself is never stored). A session ends at expires_at whatever happens; idle time is
-- judged by the caller from last_seen_at. A session goes with its customer.
CREATE TABLE sessions (
    handle        BYTEA       PRIMARY KEY CHECK (length(handle) = 32),
    user_id       UUID        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    auth_time     TIMESTAMPTZ NOT NULL,
    acr           TEXT,
    amr           JSONB       NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    last_seen_at  TIMESTAMPTZ NOT NULL,
    expires_at    TIMESTAMPTZ NOT NULL
);
CREATE INDEX sessions_by_user ON sessions (user_id);
CREATE INDEX sessions_by_expiry ON sessions (expires_at);

-- Authorizations in progress, kept under the SHA-256 of the interaction's identifier. state is
-- moved on by compare-and-set (`UPDATE … WHERE state = expected`; JSONB equality ignores key
-- order). request_handle names the pushed request it completes, without a foreign key: the
-- request is consumed when the interaction completes. An interaction goes with its client.
CREATE TABLE interactions (
    handle          BYTEA       PRIMARY KEY CHECK (length(handle) = 32),
    request_handle  BYTEA       NOT NULL CHECK (length(request_handle) = 32),
    client_id       TEXT        NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    state           JSONB       NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    expires_at      TIMESTAMPTZ NOT NULL
);
CREATE INDEX interactions_by_expiry ON interactions (expires_at);
-- Deleting a client finds its rows without a scan.
CREATE INDEX interactions_by_client ON interactions (client_id);

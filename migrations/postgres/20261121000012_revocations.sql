-- Revocation: the epoch every replica's caches are checked against, the deny list of access
-- token jtis, and the durable feed of Security Event Tokens the resource servers poll (RFC 8936).

-- The revocation epoch: a single counter row. Every revoking transaction increments it under its
-- row lock, as its last write, so epochs are committed in increasing order.
CREATE TABLE revocation_epoch (
    id     SMALLINT PRIMARY KEY CHECK (id = 1),
    value  BIGINT   NOT NULL
);
INSERT INTO revocation_epoch (id, value) VALUES (1, 0);

-- Access tokens denied before their expiry, by jti (a JWT access token is not stored anywhere
-- else). An entry is denied once; it stays until the token it names has expired.
CREATE TABLE denied_access_tokens (
    jti         TEXT        PRIMARY KEY,
    expires_at  TIMESTAMPTZ NOT NULL,
    denied_at   TIMESTAMPTZ NOT NULL
);
CREATE INDEX denied_access_tokens_by_expiry ON denied_access_tokens (expires_at);

-- The event feed: one signed SET per revocation, enqueued in the revoking transaction. `seq`
-- orders the feed and is never reused. grant_id has no foreign key: the feed outlives grants.
CREATE TABLE revocation_events (
    seq         BIGSERIAL   PRIMARY KEY,
    jti         TEXT        NOT NULL UNIQUE,
    kind        TEXT        NOT NULL,
    grant_id    TEXT,
    token_jti   TEXT,
    set_jwt     TEXT        NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX revocation_events_by_creation ON revocation_events (created_at);

-- An event not yet acknowledged by one of its recipients: acknowledging deletes the row. A
-- delivery goes with its event and with its recipient client. The primary key serves a
-- recipient's poll in feed order.
CREATE TABLE revocation_deliveries (
    client_id   TEXT        NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    event_seq   BIGINT      NOT NULL REFERENCES revocation_events (seq) ON DELETE CASCADE,
    created_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (client_id, event_seq)
);
-- Counting an event's pending deliveries, and deleting an event, find its rows without a scan.
CREATE INDEX revocation_deliveries_by_event ON revocation_deliveries (event_seq);
CREATE INDEX revocation_deliveries_by_creation ON revocation_deliveries (created_at);

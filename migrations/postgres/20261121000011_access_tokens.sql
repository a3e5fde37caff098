-- Opaque access tokens, kept under the SHA-256 of the token (the token itself is never stored),
-- with the claims a JWT access token would carry. A revocation sets revoked_at, once. Revoked
-- tokens stay until they expire. A token goes with its client and, when it has one, with its
-- grant (client_credentials tokens have none).
CREATE TABLE access_tokens (
    handle      BYTEA       PRIMARY KEY CHECK (length(handle) = 32),
    client_id   TEXT        NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    grant_id    TEXT        REFERENCES grants (grant_id) ON DELETE CASCADE,
    claims      JSONB       NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL,
    revoked_at  TIMESTAMPTZ
);
CREATE INDEX access_tokens_by_expiry ON access_tokens (expires_at);
-- Revoking a grant's tokens, and deleting a client or a grant, find their rows without a scan.
CREATE INDEX access_tokens_by_grant ON access_tokens (grant_id);
CREATE INDEX access_tokens_by_client ON access_tokens (client_id);

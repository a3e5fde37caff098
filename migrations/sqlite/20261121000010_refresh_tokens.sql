-- Refresh tokens, kept under the SHA-256 of the token (the token itself is never stored). A
-- rotation sets rotated_at on the old token, once, in the transaction that stores its successor;
-- a revocation sets revoked_at, once. Rotated and revoked tokens stay until they expire, so that
-- a reuse is recognised. A token goes with its client and with its grant.
CREATE TABLE refresh_tokens (
    handle      BLOB    PRIMARY KEY NOT NULL CHECK (length(handle) = 32),
    client_id   TEXT    NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    grant_id    TEXT    NOT NULL REFERENCES grants (grant_id) ON DELETE CASCADE,
    content     TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    rotated_at  INTEGER,
    revoked_at  INTEGER
) STRICT;
CREATE INDEX refresh_tokens_by_expiry ON refresh_tokens (expires_at);
-- Revoking a grant's tokens, and deleting a client or a grant, find their rows without a scan.
CREATE INDEX refresh_tokens_by_grant ON refresh_tokens (grant_id);
CREATE INDEX refresh_tokens_by_client ON refresh_tokens (client_id);

-- Grants (FAPI Grant Management): what a customer consented to give a client, under the
-- grant_id the client may later query, extend or revoke. A revoked grant is kept, with the
-- instant of its first revocation. A grant goes with the client it was given to; subject is the
-- customer's users.id, without a foreign key.
CREATE TABLE grants (
    grant_id    TEXT        PRIMARY KEY,
    client_id   TEXT        NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    subject     UUID        NOT NULL,
    content     JSONB       NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL,
    expires_at  TIMESTAMPTZ,
    revoked_at  TIMESTAMPTZ
);
CREATE INDEX grants_by_subject ON grants (subject, created_at DESC);

-- Authorization codes, kept under the SHA-256 of the code (the code itself is never stored).
-- Redeeming one sets consumed_at, once; the row stays until it expires, so that a second
-- redemption is recognised as a replay. A code goes with its client and with its grant.
CREATE TABLE authorization_codes (
    handle       BYTEA       PRIMARY KEY CHECK (length(handle) = 32),
    client_id    TEXT        NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    grant_id     TEXT        NOT NULL REFERENCES grants (grant_id) ON DELETE CASCADE,
    content      JSONB       NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    expires_at   TIMESTAMPTZ NOT NULL,
    consumed_at  TIMESTAMPTZ
);
CREATE INDEX authorization_codes_by_expiry ON authorization_codes (expires_at);
-- Deleting a client or a grant finds its rows without a scan.
CREATE INDEX grants_by_client ON grants (client_id);
CREATE INDEX authorization_codes_by_grant ON authorization_codes (grant_id);
CREATE INDEX authorization_codes_by_client ON authorization_codes (client_id);

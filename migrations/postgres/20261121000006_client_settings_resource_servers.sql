-- Operator-only client settings (token format and lifetimes, rate-limit tier, admin scopes) and,
-- for dynamically registered clients, the SHA-256 of the RFC 7592 registration access token.
ALTER TABLE clients ADD COLUMN settings JSONB NOT NULL DEFAULT '{}'::jsonb;
ALTER TABLE clients ADD COLUMN registration_token_hash BYTEA
    CHECK (registration_token_hash IS NULL OR length(registration_token_hash) = 32);
CREATE UNIQUE INDEX clients_by_registration_token ON clients (registration_token_hash)
    WHERE registration_token_hash IS NOT NULL;

-- The bank's APIs (DESIGN.md, Resource servers): the RFC 8707 resource identifier that becomes a
-- token's aud, the token format it accepts, what it serves, and the client it authenticates as.
CREATE TABLE resource_servers (
    resource    TEXT        PRIMARY KEY NOT NULL,
    metadata    JSONB       NOT NULL,
    client_id   TEXT        REFERENCES clients (client_id) ON DELETE RESTRICT,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX resource_servers_by_client ON resource_servers (client_id)
    WHERE client_id IS NOT NULL;

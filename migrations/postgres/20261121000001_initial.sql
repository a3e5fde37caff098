-- Portcullis: the first tables. Signing keys, the client registry and customer accounts.
-- Timestamps are TIMESTAMPTZ (microseconds); JSON is JSONB.

CREATE TABLE signing_keys (
    kid                    TEXT        PRIMARY KEY,
    alg                    TEXT        NOT NULL CHECK (alg IN ('PS256', 'ES256', 'EdDSA')),
    public_jwk             JSONB       NOT NULL,
    -- AES-256-GCM under the key-encryption key, with the kid as associated data.
    encrypted_private_jwk  BYTEA       NOT NULL,
    created_at             TIMESTAMPTZ NOT NULL,
    activates_at           TIMESTAMPTZ NOT NULL,
    CHECK (activates_at >= created_at)
);
CREATE INDEX signing_keys_by_activation ON signing_keys (activates_at, kid);

CREATE TABLE clients (
    client_id   TEXT        PRIMARY KEY,
    profile     TEXT        NOT NULL CHECK (profile IN ('fapi2', 'fapi2-message-signing', 'oauth')),
    metadata    JSONB       NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);

CREATE TABLE users (
    id             UUID        PRIMARY KEY,
    username       TEXT        NOT NULL UNIQUE,
    password_hash  TEXT        NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL,
    disabled_at    TIMESTAMPTZ
);

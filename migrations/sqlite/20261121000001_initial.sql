-- Portcullis: the first tables. Signing keys, the client registry and customer accounts.
-- Timestamps are INTEGER microseconds since the Unix epoch (UTC), so that comparisons in SQL are
-- numeric; JSON is TEXT; UUIDs are TEXT in hyphenated form.

CREATE TABLE signing_keys (
    kid                    TEXT    PRIMARY KEY NOT NULL,
    alg                    TEXT    NOT NULL CHECK (alg IN ('PS256', 'ES256', 'EdDSA')),
    public_jwk             TEXT    NOT NULL,
    -- AES-256-GCM under the key-encryption key, with the kid as associated data.
    encrypted_private_jwk  BLOB    NOT NULL,
    created_at             INTEGER NOT NULL,
    activates_at           INTEGER NOT NULL,
    CHECK (activates_at >= created_at)
) STRICT;
CREATE INDEX signing_keys_by_activation ON signing_keys (activates_at, kid);

CREATE TABLE clients (
    client_id   TEXT    PRIMARY KEY NOT NULL,
    profile     TEXT    NOT NULL CHECK (profile IN ('fapi2', 'fapi2-message-signing', 'oauth')),
    metadata    TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
) STRICT;

CREATE TABLE users (
    id             TEXT    PRIMARY KEY NOT NULL,
    username       TEXT    NOT NULL UNIQUE,
    password_hash  TEXT    NOT NULL,
    created_at     INTEGER NOT NULL,
    disabled_at    INTEGER
) STRICT;

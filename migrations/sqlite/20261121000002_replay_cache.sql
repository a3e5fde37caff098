-- Single-use identifiers (client assertion, DPoP proof, software statement and request object
-- jti values). The primary key makes a second use fail in the database.
CREATE TABLE replay_cache (
    scope       TEXT    NOT NULL,
    id          TEXT    NOT NULL,
    expires_at  INTEGER NOT NULL,
    PRIMARY KEY (scope, id)
) STRICT;
CREATE INDEX replay_cache_by_expiry ON replay_cache (expires_at);

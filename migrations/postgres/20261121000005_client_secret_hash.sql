-- oauth-profile clients authenticating with client_secret_basic/_post: the SHA-256 of the
-- server-made 256-bit secret. The secret itself is shown once and never stored.
ALTER TABLE clients ADD COLUMN secret_hash BYTEA CHECK (secret_hash IS NULL OR length(secret_hash) = 32);

-- Customers: OIDC claims (name, email, phone_number, address, ...) and the TOTP second factor.
-- The TOTP secret is AES-256-GCM under the key-encryption key; totp_last_step makes each code
-- single-use through a conditional update.
ALTER TABLE users ADD COLUMN claims JSONB NOT NULL DEFAULT '{}'::jsonb;
ALTER TABLE users ADD COLUMN totp_secret_encrypted BYTEA;
ALTER TABLE users ADD COLUMN totp_last_step BIGINT;

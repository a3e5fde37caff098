-- Brute-force protection of the customer's login: one row per counter of failed attempts (per
-- account and source, per source, per account, per customer's second factor). The key is an
-- HMAC under a key derived from the KEK: no username or address is stored in clear. Rows change
-- by compare-and-set on `version`; housekeeping deletes them once `expires_at` has passed. Times
-- are microseconds since the Unix epoch.
CREATE TABLE login_throttle (
    kind               TEXT    NOT NULL,
    key                TEXT    NOT NULL,
    failures           INTEGER NOT NULL CHECK (failures >= 0),
    window_started_at  INTEGER NOT NULL,
    last_failure_at    INTEGER NOT NULL,
    locked_until       INTEGER,
    trusted_until      INTEGER,
    version            INTEGER NOT NULL,
    expires_at         INTEGER NOT NULL,
    PRIMARY KEY (kind, key)
) STRICT;
CREATE INDEX login_throttle_by_expiry ON login_throttle (expires_at);

-- Rate-limit buckets ([rate_limits] backend = "database"): one row per bucket (per source
-- address and endpoint, per client and endpoint, ...) holding its GCRA theoretical arrival time
-- in microseconds since the Unix epoch. A row whose time has passed is a full bucket, the same as
-- no row, and housekeeping deletes it.
CREATE TABLE rate_limits (
    key     TEXT    PRIMARY KEY,
    tat_us  INTEGER NOT NULL
) STRICT;
CREATE INDEX rate_limits_by_tat ON rate_limits (tat_us);

-- Rate-limit buckets shared by the replicas ([rate_limits] backend = "database"): one row per
-- bucket (per source address and endpoint, per client and endpoint, ...) holding its GCRA
-- theoretical arrival time in microseconds since the Unix epoch. A row whose time has passed is a
-- full bucket, the same as no row, and housekeeping deletes it.
--
-- UNLOGGED: the rows change on almost every request and are worth nothing after a crash (losing
-- them refills every bucket once), so they skip the write-ahead log. A standby does not have
-- them either: after a failover the limits start again from full buckets.
CREATE UNLOGGED TABLE rate_limits (
    key     TEXT   PRIMARY KEY,
    tat_us  BIGINT NOT NULL
);
CREATE INDEX rate_limits_by_tat ON rate_limits (tat_us);

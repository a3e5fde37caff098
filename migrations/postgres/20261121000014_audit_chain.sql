-- Tamper evidence of the security-event trail (crates/core/src/audit). Every store instance (one
-- per replica process) appends to a hash chain of its own, registered here with its first
-- events; each event records its chain, its position in it (1, 2, 3…), the previous event's hash
-- and its own. The chain heads are sealed at intervals with an HMAC under a key derived from the
-- key-encryption key, which is never in the database. Events written before this migration have
-- no chain; `portcullis audit verify` reports them as outside the chains.
CREATE TABLE audit_chains (
    chain_id    UUID        PRIMARY KEY,
    started_at  TIMESTAMPTZ NOT NULL,
    host        TEXT        NOT NULL
);

ALTER TABLE security_events
    ADD COLUMN chain_id   UUID,
    ADD COLUMN chain_seq  BIGINT,
    ADD COLUMN client_id  TEXT;
CREATE UNIQUE INDEX security_events_chain_position ON security_events (chain_id, chain_seq);

-- The admin API's filters, each paged by seq.
CREATE INDEX security_events_by_time ON security_events (occurred_at, seq);
CREATE INDEX security_events_by_client ON security_events (client_id, seq);
CREATE INDEX security_events_by_action ON security_events (action, seq);

CREATE TABLE audit_seals (
    chain_id    UUID        NOT NULL,
    chain_seq   BIGINT      NOT NULL,
    head_hash   BYTEA       NOT NULL,
    sealed_at   TIMESTAMPTZ NOT NULL,
    prev_mac    BYTEA       NOT NULL,
    mac         BYTEA       NOT NULL,
    PRIMARY KEY (chain_id, chain_seq)
);

-- Append-only, like the events.
CREATE TRIGGER audit_chains_no_update BEFORE UPDATE OR DELETE ON audit_chains
    FOR EACH ROW EXECUTE FUNCTION security_events_append_only();
CREATE TRIGGER audit_chains_no_truncate BEFORE TRUNCATE ON audit_chains
    FOR EACH STATEMENT EXECUTE FUNCTION security_events_append_only();
CREATE TRIGGER audit_seals_no_update BEFORE UPDATE OR DELETE ON audit_seals
    FOR EACH ROW EXECUTE FUNCTION security_events_append_only();
CREATE TRIGGER audit_seals_no_truncate BEFORE TRUNCATE ON audit_seals
    FOR EACH STATEMENT EXECUTE FUNCTION security_events_append_only();

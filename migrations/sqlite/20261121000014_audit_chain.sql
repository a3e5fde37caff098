-- Tamper evidence of the security-event trail (crates/core/src/audit). Every store instance
-- appends to a hash chain of its own, registered here with its first events; each event records
-- its chain, its position in it (1, 2, 3…), the previous event's hash and its own. The chain
-- heads are sealed at intervals with an HMAC under a key derived from the key-encryption key,
-- which is never in the database. Events written before this migration have no chain;
-- `portcullis audit verify` reports them as outside the chains. Chain ids are hyphenated UUID
-- text, timestamps microseconds since the Unix epoch, as elsewhere in this schema.
CREATE TABLE audit_chains (
    chain_id    TEXT    PRIMARY KEY,
    started_at  INTEGER NOT NULL,
    host        TEXT    NOT NULL
);

ALTER TABLE security_events ADD COLUMN chain_id TEXT;
ALTER TABLE security_events ADD COLUMN chain_seq INTEGER;
ALTER TABLE security_events ADD COLUMN client_id TEXT;
CREATE UNIQUE INDEX security_events_chain_position ON security_events (chain_id, chain_seq);

-- The admin API's filters, each paged by seq.
CREATE INDEX security_events_by_time ON security_events (occurred_at, seq);
CREATE INDEX security_events_by_client ON security_events (client_id, seq);
CREATE INDEX security_events_by_action ON security_events (action, seq);

CREATE TABLE audit_seals (
    chain_id    TEXT    NOT NULL,
    chain_seq   INTEGER NOT NULL,
    head_hash   BLOB    NOT NULL,
    sealed_at   INTEGER NOT NULL,
    prev_mac    BLOB    NOT NULL,
    mac         BLOB    NOT NULL,
    PRIMARY KEY (chain_id, chain_seq)
);

-- Append-only, like the events.
CREATE TRIGGER audit_chains_no_update BEFORE UPDATE ON audit_chains
BEGIN
    SELECT RAISE(ABORT, 'audit_chains is append-only');
END;
CREATE TRIGGER audit_chains_no_delete BEFORE DELETE ON audit_chains
BEGIN
    SELECT RAISE(ABORT, 'audit_chains is append-only');
END;
CREATE TRIGGER audit_seals_no_update BEFORE UPDATE ON audit_seals
BEGIN
    SELECT RAISE(ABORT, 'audit_seals is append-only');
END;
CREATE TRIGGER audit_seals_no_delete BEFORE DELETE ON audit_seals
BEGIN
    SELECT RAISE(ABORT, 'audit_seals is append-only');
END;

-- The security-event trail: every admin change and, later, every security event. Append-only:
-- updates and deletes are refused by the database itself. `seq` orders events; the audit issue
-- chains them (hash of the previous event) for tamper evidence in the reserved columns.
CREATE TABLE security_events (
    seq          BIGSERIAL   PRIMARY KEY,
    occurred_at  TIMESTAMPTZ NOT NULL,
    actor        TEXT        NOT NULL,
    action       TEXT        NOT NULL,
    subject      TEXT,
    details      JSONB       NOT NULL,
    request_id   TEXT,
    prev_hash    BYTEA,
    hash         BYTEA
);
CREATE INDEX security_events_by_subject ON security_events (subject, seq);

CREATE FUNCTION security_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'security_events is append-only';
END;
$$;
CREATE TRIGGER security_events_no_update BEFORE UPDATE OR DELETE ON security_events
    FOR EACH ROW EXECUTE FUNCTION security_events_append_only();
CREATE TRIGGER security_events_no_truncate BEFORE TRUNCATE ON security_events
    FOR EACH STATEMENT EXECUTE FUNCTION security_events_append_only();

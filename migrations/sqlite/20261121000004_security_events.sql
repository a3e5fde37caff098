-- The security-event trail: every admin change and, later, every security event. Append-only:
-- updates and deletes are refused by the database itself. `seq` orders events; the audit issue
-- chains them (hash of the previous event) for tamper evidence in the reserved columns.
CREATE TABLE security_events (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    occurred_at  INTEGER NOT NULL,
    actor        TEXT    NOT NULL,
    action       TEXT    NOT NULL,
    subject      TEXT,
    details      TEXT    NOT NULL,
    request_id   TEXT,
    prev_hash    BLOB,
    hash         BLOB
);
CREATE INDEX security_events_by_subject ON security_events (subject, seq);

CREATE TRIGGER security_events_no_update BEFORE UPDATE ON security_events
BEGIN
    SELECT RAISE(ABORT, 'security_events is append-only');
END;
CREATE TRIGGER security_events_no_delete BEFORE DELETE ON security_events
BEGIN
    SELECT RAISE(ABORT, 'security_events is append-only');
END;

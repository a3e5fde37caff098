-- The events written before chaining began, counted once when it began: `portcullis audit
-- verify` refuses any event outside the chains that is not one of these (a row inserted later
-- with a low or negative seq, or into a gap, would otherwise pass as "written before chaining").
CREATE TABLE audit_baseline (
    last_seq  INTEGER NOT NULL,
    count     INTEGER NOT NULL
);
INSERT INTO audit_baseline (last_seq, count)
    SELECT COALESCE(MAX(seq), 0), COUNT(*) FROM security_events WHERE chain_id IS NULL;

CREATE TRIGGER audit_baseline_no_update BEFORE UPDATE ON audit_baseline
BEGIN
    SELECT RAISE(ABORT, 'audit_baseline is append-only');
END;
CREATE TRIGGER audit_baseline_no_delete BEFORE DELETE ON audit_baseline
BEGIN
    SELECT RAISE(ABORT, 'audit_baseline is append-only');
END;

-- The events written before chaining began, counted once when it began: `portcullis audit
-- verify` refuses any event outside the chains that is not one of these (a row inserted later
-- with a low or negative seq, or into a gap, would otherwise pass as "written before chaining").
CREATE TABLE audit_baseline (
    last_seq  BIGINT NOT NULL,
    count     BIGINT NOT NULL
);
INSERT INTO audit_baseline (last_seq, count)
    SELECT COALESCE(MAX(seq), 0), COUNT(*) FROM security_events WHERE chain_id IS NULL;

CREATE TRIGGER audit_baseline_no_update BEFORE UPDATE OR DELETE ON audit_baseline
    FOR EACH ROW EXECUTE FUNCTION security_events_append_only();
CREATE TRIGGER audit_baseline_no_truncate BEFORE TRUNCATE ON audit_baseline
    FOR EACH STATEMENT EXECUTE FUNCTION security_events_append_only();

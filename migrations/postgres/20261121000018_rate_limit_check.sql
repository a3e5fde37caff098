-- One round trip for every bucket of a request ([rate_limits] backend = "database"): the GCRA
-- step of portcullis_core::ratelimit (Cell::decide and check_all) for several buckets at once,
-- in one statement and so one transaction.
--
-- p_ops[i]: 0 probe (read only), 1 spend, 2 refund. The spends are all or nothing: when any
-- spend or probe refuses, no spend is written. A refund (giving back a token reserved earlier)
-- is written either way, and is always allowed. Rows that may change are locked in key order,
-- so two calls cannot deadlock; a probe takes no lock. Returns one row per bucket, in the order
-- given: whether it allowed, and its TAT after the call (the stored one when nothing was
-- written; now_us for a full bucket).
--
-- The arithmetic is that of the Rust code, in whole microseconds; keep the two in step (the
-- store conformance test compares them).
CREATE FUNCTION rate_limit_check(
    p_keys      TEXT[],
    p_emission  BIGINT[],
    p_tolerance BIGINT[],
    p_ops       SMALLINT[],
    p_now       BIGINT
) RETURNS TABLE (allowed BOOLEAN, tat_us BIGINT)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    n       INT := COALESCE(cardinality(p_keys), 0);
    stored  BIGINT;
    base    BIGINT[] := '{}';
    ok      BOOLEAN[] := '{}';
    out_tat BIGINT[] := '{}';
    all_ok  BOOLEAN := TRUE;
    i       INT;
BEGIN
    -- The table is UNLOGGED: its rows do not survive a crash anyway, so waiting for the commit
    -- record to reach the disk buys nothing. For this call's transaction only.
    PERFORM set_config('synchronous_commit', 'off', true);
    IF cardinality(p_emission) IS DISTINCT FROM n OR cardinality(p_tolerance) IS DISTINCT FROM n
       OR cardinality(p_ops) IS DISTINCT FROM n THEN
        RAISE EXCEPTION 'rate_limit_check: % keys but % intervals, % tolerances, % ops',
            n, cardinality(p_emission), cardinality(p_tolerance), cardinality(p_ops);
    END IF;
    FOR i IN 1..n LOOP
        base[i] := p_now;
        ok[i] := TRUE;
    END LOOP;
    -- Read (and lock, for writers) in key order.
    FOR i IN SELECT s.i FROM generate_subscripts(p_keys, 1) AS s(i) ORDER BY p_keys[s.i], s.i LOOP
        IF p_ops[i] = 1 THEN
            -- A spend needs the row to lock: a missing bucket is full, stored as now.
            INSERT INTO rate_limits AS r (key, tat_us) VALUES (p_keys[i], p_now)
                ON CONFLICT (key) DO NOTHING;
        END IF;
        IF p_ops[i] = 0 THEN
            SELECT r.tat_us INTO stored FROM rate_limits AS r WHERE r.key = p_keys[i];
        ELSE
            SELECT r.tat_us INTO stored FROM rate_limits AS r WHERE r.key = p_keys[i] FOR UPDATE;
        END IF;
        IF FOUND THEN
            base[i] := GREATEST(stored, p_now);
        END IF;
        IF p_ops[i] <> 2 THEN
            ok[i] := base[i] + p_emission[i] - p_now <= p_tolerance[i];
            all_ok := all_ok AND ok[i];
        END IF;
    END LOOP;
    FOR i IN 1..n LOOP
        out_tat[i] := base[i];
        IF p_ops[i] = 1 AND all_ok THEN
            out_tat[i] := base[i] + p_emission[i];
            UPDATE rate_limits AS r SET tat_us = out_tat[i] WHERE r.key = p_keys[i];
        ELSIF p_ops[i] = 2 THEN
            out_tat[i] := GREATEST(base[i] - p_emission[i], p_now);
            UPDATE rate_limits AS r SET tat_us = out_tat[i] WHERE r.key = p_keys[i];
        END IF;
    END LOOP;
    FOR i IN 1..n LOOP
        allowed := ok[i];
        tat_us := out_tat[i];
        RETURN NEXT;
    END LOOP;
END;
$$;

-- The app's response cache in PostgreSQL: one row per cache key in
-- response_cache, with expiry, hit counts and least-recently-used eviction.
--
-- The functions are PL/pgSQL so that their plans are cached per session; the
-- counters behind council_cache_stats() live in shared memory (Rust, see
-- src/cache/stats.rs). Parameters are referred to as $n: their names are also
-- column names. Every function pins search_path, so a caller's search_path
-- cannot redirect a name.

-- How many entries response_cache holds, kept by the table's own statement
-- triggers, so that a bounded put learns the count without counting: the
-- rows ever inserted less the rows ever removed, each a sequence. A
-- sequence is shared memory with no row versions: no writer waits for
-- another, and nothing bloats however many puts run. Sequences are not
-- rolled back, so a put that fails after its insert counts until
-- council_cache_expire() (and so the expiry worker) reconciles the count
-- with the table, as it also does should a writer bypass the triggers
-- (pg_restore --disable-triggers).
CREATE SEQUENCE @extschema@.response_cache_inserted MINVALUE 0 START 1;
CREATE SEQUENCE @extschema@.response_cache_removed MINVALUE 0 START 1;
SELECT pg_catalog.setval('@extschema@.response_cache_inserted', count(*))
FROM @extschema@.response_cache HAVING count(*) > 0;

-- The count is no secret: it is what council_cache_stats() reports.
GRANT SELECT ON @extschema@.response_cache_inserted, @extschema@.response_cache_removed TO PUBLIC;

-- Owned by the extension's owner and run with its rights: a role that may
-- write response_cache keeps the count without the right to change it.
CREATE FUNCTION @extschema@.council_cache_size_count() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF TG_OP OPERATOR(pg_catalog.=) 'INSERT' THEN
        PERFORM pg_catalog.nextval('@extschema@.response_cache_inserted') FROM inserted;
    ELSIF TG_OP OPERATOR(pg_catalog.=) 'DELETE' THEN
        PERFORM pg_catalog.nextval('@extschema@.response_cache_removed') FROM deleted;
    ELSE
        -- TRUNCATE: everything inserted is gone.
        PERFORM pg_catalog.setval('@extschema@.response_cache_removed',
            COALESCE(pg_catalog.pg_sequence_last_value('@extschema@.response_cache_inserted'), 0));
    END IF;
    RETURN NULL;
END
$$;

-- Makes the count agree with the table again; returns the correction.
-- Writers running meanwhile may leave it off by their own rows, which the
-- next call corrects.
CREATE FUNCTION @extschema@.council_cache_size_reconcile() RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    inserted bigint := coalesce(pg_sequence_last_value('@extschema@.response_cache_inserted'), 0);
    removed bigint := coalesce(pg_sequence_last_value('@extschema@.response_cache_removed'), 0);
    entries bigint := (SELECT count(*) FROM @extschema@.response_cache);
BEGIN
    IF entries <> inserted - removed THEN
        PERFORM setval('@extschema@.response_cache_inserted', entries + removed);
    END IF;
    RETURN entries - (inserted - removed);
END
$$;

CREATE TRIGGER response_cache_size_insert AFTER INSERT ON @extschema@.response_cache
REFERENCING NEW TABLE AS inserted
FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.council_cache_size_count();
CREATE TRIGGER response_cache_size_delete AFTER DELETE ON @extschema@.response_cache
REFERENCING OLD TABLE AS deleted
FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.council_cache_size_count();
CREATE TRIGGER response_cache_size_truncate AFTER TRUNCATE ON @extschema@.response_cache
FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.council_cache_size_count();

-- Stores an entry (replacing one under the same key, whose hits start
-- again from zero), then evicts the least recently used entries beyond
-- llm_council.cache_max_entries (0 = no bound). ttl NULL takes the default
-- TTL; a negative ttl means the entry never expires.
CREATE FUNCTION @extschema@.council_cache_put(
    cache_key text,
    query_hash text,
    stage1 jsonb,
    stage2 jsonb,
    stage3 jsonb,
    metadata jsonb,
    ttl interval DEFAULT NULL
) RETURNS @extschema@.response_cache
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    -- NULL ttl: llm_council.cache_default_ttl, an interval ('1h', '30 min'),
    -- seconds ('3600'), or '-1' / 'infinity' / 'never' for no expiry.
    setting text := coalesce(nullif(current_setting('llm_council.cache_default_ttl', true), ''), '1h');
    lifetime interval := $7;
    max_entries integer := coalesce(nullif(current_setting('llm_council.cache_max_entries', true), '')::integer, 0);
    entry @extschema@.response_cache;
    total bigint;
    evicted bigint;
BEGIN
    IF $1 IS NULL OR $2 IS NULL THEN
        RAISE EXCEPTION 'cache_key and query_hash must not be NULL'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF lifetime IS NULL AND lower(setting) NOT IN ('-1', 'infinity', 'never') THEN
        BEGIN
            lifetime := CASE WHEN setting ~ '^\d+$' THEN make_interval(secs => setting::double precision)
                             ELSE setting::interval END;
        EXCEPTION WHEN invalid_datetime_format OR datetime_field_overflow OR interval_field_overflow THEN
            RAISE EXCEPTION 'llm_council.cache_default_ttl is not a time span: "%"', setting
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'use an interval (''1h'', ''30 min''), seconds (''3600''), or ''-1'' for never';
        END;
    END IF;
    INSERT INTO @extschema@.response_cache AS c
        (cache_key, query_hash, stage1_data, stage2_data, stage3_data, metadata, created_at, expires_at)
    VALUES ($1, $2, $3, $4, $5, $6, now(),
            CASE WHEN lifetime IS NULL OR lifetime < interval '0' THEN NULL ELSE now() + lifetime END)
    ON CONFLICT ON CONSTRAINT response_cache_cache_key_key DO UPDATE SET
        query_hash = excluded.query_hash,
        stage1_data = excluded.stage1_data,
        stage2_data = excluded.stage2_data,
        stage3_data = excluded.stage3_data,
        metadata = excluded.metadata,
        created_at = excluded.created_at,
        expires_at = excluded.expires_at,
        hit_count = 0,
        last_hit_at = NULL
    RETURNING c.* INTO entry;

    IF max_entries > 0 THEN
        total := coalesce(pg_sequence_last_value('@extschema@.response_cache_inserted'), 0)
                 - coalesce(pg_sequence_last_value('@extschema@.response_cache_removed'), 0);
    END IF;
    -- Evictions come in batches: a put evicts once the cache is a 64th of
    -- its bound (at most 64 entries) over it, and takes it back to the
    -- bound, so that the puts between pay nothing for it. One put evicts at
    -- a time: two would each evict the same excess. The lock is the
    -- transaction's, keyed by response_cache's oid.
    IF max_entries > 0 AND total > max_entries + least(max_entries / 64, 64)
       AND pg_try_advisory_xact_lock('@extschema@.response_cache'::regclass::oid::integer, 0) THEN
        -- The least recently used go, oldest first along idx_cache_lru: the
        -- cost grows with the entries evicted, not with the cache. Rows
        -- another session holds are being hit right now: not least recently
        -- used. At most 1000 per put, so that lowering the bound never
        -- makes one put slow; the puts after it evict the rest. EXECUTE
        -- plans it for the LIMIT at hand: a cached generic plan guesses a
        -- tenth of the table, and sorts all of it.
        EXECUTE 'WITH victims AS (
                     SELECT c.id FROM @extschema@.response_cache c
                     WHERE c.id <> $1
                     ORDER BY coalesce(c.last_hit_at, c.created_at), c.id
                     LIMIT $2
                     FOR UPDATE SKIP LOCKED
                 ), gone AS (
                     DELETE FROM @extschema@.response_cache c USING victims v
                     WHERE c.id = v.id RETURNING 1
                 )
                 SELECT count(*) FROM gone'
        INTO evicted USING entry.id, least(total - max_entries, 1000);
        IF evicted > 0 THEN
            PERFORM @extschema@.council_cache_count_event('eviction', evicted);
        END IF;
    END IF;
    RETURN entry;
END
$$;

-- The live entry for a key, counting the hit; no row on a miss or when the
-- entry has expired. On a hot standby it reads without counting.
CREATE FUNCTION @extschema@.council_cache_get(cache_key text)
RETURNS SETOF @extschema@.response_cache
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    entry @extschema@.response_cache;
BEGIN
    IF pg_is_in_recovery() THEN
        SELECT c.* INTO entry FROM @extschema@.response_cache c
        WHERE c.cache_key = $1 AND (c.expires_at IS NULL OR c.expires_at > now());
    ELSE
        UPDATE @extschema@.response_cache c
        SET hit_count = c.hit_count + 1, last_hit_at = now()
        WHERE c.cache_key = $1 AND (c.expires_at IS NULL OR c.expires_at > now())
        RETURNING c.* INTO entry;
    END IF;
    IF FOUND THEN
        PERFORM @extschema@.council_cache_count_event('hit', 1);
        RETURN NEXT entry;
    ELSE
        PERFORM @extschema@.council_cache_count_event('miss', 1);
    END IF;
END
$$;

-- Removes one entry; true when there was one.
CREATE FUNCTION @extschema@.council_cache_invalidate(cache_key text) RETURNS boolean
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    DELETE FROM @extschema@.response_cache c WHERE c.cache_key = $1;
    RETURN FOUND;
END
$$;

-- Removes every entry; returns how many there were.
CREATE FUNCTION @extschema@.council_cache_clear() RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    removed bigint;
BEGIN
    WITH gone AS (DELETE FROM @extschema@.response_cache RETURNING 1)
    SELECT count(*) INTO removed FROM gone;
    RETURN removed;
END
$$;

-- Deletes the expired entries and returns how many, and reconciles the
-- entry count. Entries another session has locked are left for the next
-- run, so expiry never waits on, or deadlocks with, gets and puts.
CREATE FUNCTION @extschema@.council_cache_expire() RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    removed bigint;
BEGIN
    WITH victims AS (
        SELECT c.id FROM @extschema@.response_cache c
        WHERE c.expires_at <= now()
        FOR UPDATE SKIP LOCKED
    ), gone AS (
        DELETE FROM @extschema@.response_cache c USING victims v WHERE c.id = v.id RETURNING 1
    )
    SELECT count(*) INTO removed FROM gone;
    IF removed > 0 THEN
        PERFORM @extschema@.council_cache_count_event('expiration', removed);
    END IF;
    PERFORM @extschema@.council_cache_size_reconcile();
    RETURN removed;
END
$$;

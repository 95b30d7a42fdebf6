-- llm_council 0.1.0 -> 0.2.0
\echo Use "ALTER EXTENSION llm_council UPDATE TO '0.2.0'" to load this file. \quit

-- Streamed uploads: the client appends a council.db in chunks to a temporary
-- file of its transaction, then imports or verifies it. Backend memory holds
-- one chunk, whatever the file's size.
CREATE FUNCTION "council_upload"(
	"chunk" bytea
) RETURNS bigint
STRICT VOLATILE PARALLEL UNSAFE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c
AS 'MODULE_PATHNAME', 'council_upload_wrapper';

-- psql's route: \lo_import the file, then append the large object.
CREATE FUNCTION "council_upload_large_object"(
	"large_object" oid
) RETURNS bigint
STRICT VOLATILE PARALLEL UNSAFE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c
AS 'MODULE_PATHNAME', 'council_upload_large_object_wrapper';

CREATE FUNCTION "council_import_upload"(
	"mode" TEXT DEFAULT 'strict',
	"dry_run" bool DEFAULT false
) RETURNS TABLE (
	"table_name" TEXT,
	"source_rows" bigint,
	"imported" bigint,
	"skipped" bigint,
	"rejected" bigint,
	"updated" bigint,
	"deleted" bigint
)
STRICT VOLATILE PARALLEL UNSAFE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c
AS 'MODULE_PATHNAME', 'council_import_streamed_wrapper';

CREATE FUNCTION "council_verify_upload"() RETURNS TABLE (
	"table_name" TEXT,
	"source_rows" bigint,
	"identical" bigint,
	"missing" bigint,
	"differing" bigint
)
STRICT VOLATILE PARALLEL UNSAFE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c
AS 'MODULE_PATHNAME', 'council_verify_streamed_wrapper';

-- The streamed route for clients: COPY council_upload_stream FROM STDIN
-- (FORMAT binary), one bytea per row, appends to this transaction's upload.
-- Anyone may insert; the trigger checks the privileges on the council tables.
CREATE FUNCTION "council_upload_stream_append"() RETURNS trigger
SET search_path TO pg_catalog, pg_temp
LANGUAGE c
AS 'MODULE_PATHNAME', 'council_upload_stream_append_wrapper';

CREATE VIEW council_upload_stream (chunk) AS SELECT NULL::bytea WHERE false;

CREATE TRIGGER council_upload_stream_append
INSTEAD OF INSERT ON council_upload_stream
FOR EACH ROW EXECUTE FUNCTION council_upload_stream_append();

GRANT INSERT ON council_upload_stream TO PUBLIC;

-- Every SQL text the import, verify and upload functions run resolves names
-- in pg_catalog first: a caller's search_path (a temporary schema's domain
-- named jsonb, an operator) can no longer run the caller's code inside them.
ALTER FUNCTION "council_verify"(text) SET search_path TO pg_catalog, pg_temp;
ALTER FUNCTION "council_verify"(bytea) SET search_path TO pg_catalog, pg_temp;

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

-- Internal cache functions are no longer exposed: the default TTL is read
-- inside council_cache_put, the counters inside council_cache_stats.
-- council_cache_count_event stays, and refuses roles that could not cause
-- the event they would count. A bounded put reads the entry count and
-- evicts along idx_cache_lru: its cost no longer grows with the cache.
CREATE OR REPLACE FUNCTION @extschema@.council_cache_put(
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

-- Expiry also reconciles the entry count.
CREATE OR REPLACE FUNCTION @extschema@.council_cache_expire() RETURNS bigint
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

DROP FUNCTION "council_cache_default_ttl"();
DROP FUNCTION "council_cache_stats"();
DROP FUNCTION "council_cache_counters"();

CREATE FUNCTION "council_cache_stats"() RETURNS TABLE (
	"entries" bigint,
	"expired_entries" bigint,
	"total_hit_count" bigint,
	"hits" bigint,
	"misses" bigint,
	"evictions" bigint,
	"expirations" bigint,
	"hit_rate" double precision
)
STRICT STABLE PARALLEL SAFE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c
AS 'MODULE_PATHNAME', 'council_cache_stats_wrapper';

-- Model output and JSON documents compress with lz4: at import, pglz took a
-- third of the time, and the app's writes pay the same. A server built
-- without lz4 keeps pglz.
DO $$
BEGIN
    ALTER TABLE @extschema@.messages ALTER COLUMN content SET COMPRESSION lz4;
    ALTER TABLE @extschema@.stage1_responses ALTER COLUMN response SET COMPRESSION lz4;
    ALTER TABLE @extschema@.stage2_rankings
        ALTER COLUMN raw_ranking SET COMPRESSION lz4,
        ALTER COLUMN parsed_ranking SET COMPRESSION lz4,
        ALTER COLUMN rubric_scores SET COMPRESSION lz4;
    ALTER TABLE @extschema@.stage3_synthesis
        ALTER COLUMN response SET COMPRESSION lz4,
        ALTER COLUMN meta_evaluation SET COMPRESSION lz4;
    ALTER TABLE @extschema@.deliberation_metadata
        ALTER COLUMN label_to_model SET COMPRESSION lz4,
        ALTER COLUMN aggregate_rankings SET COMPRESSION lz4,
        ALTER COLUMN consensus SET COMPRESSION lz4,
        ALTER COLUMN features SET COMPRESSION lz4,
        ALTER COLUMN stage1_consensus SET COMPRESSION lz4,
        ALTER COLUMN debate_history SET COMPRESSION lz4;
    ALTER TABLE @extschema@.response_cache
        ALTER COLUMN stage1_data SET COMPRESSION lz4,
        ALTER COLUMN stage2_data SET COMPRESSION lz4,
        ALTER COLUMN stage3_data SET COMPRESSION lz4,
        ALTER COLUMN metadata SET COMPRESSION lz4;
    ALTER TABLE @extschema@.council_import_rejects ALTER COLUMN row SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
    RAISE NOTICE 'llm_council: this server is built without lz4; long values compress with pglz';
END
$$;

-- Sync (mode => 'sync') reports rows updated and deleted: two more result
-- columns, after the five of 0.1.0, which keep their meaning. A function's
-- result type cannot change in place.
DROP FUNCTION "council_import"(text, text, boolean);
DROP FUNCTION "council_import"(bytea, text, boolean);

CREATE FUNCTION "council_import"(
	"path" TEXT,
	"mode" TEXT DEFAULT 'strict',
	"dry_run" bool DEFAULT false
) RETURNS TABLE (
	"table_name" TEXT,
	"source_rows" bigint,
	"imported" bigint,
	"skipped" bigint,
	"rejected" bigint,
	"updated" bigint,
	"deleted" bigint
)
STRICT VOLATILE PARALLEL UNSAFE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c
AS 'MODULE_PATHNAME', 'council_import_path_wrapper';

REVOKE ALL ON FUNCTION council_import(text, text, boolean) FROM PUBLIC;

CREATE FUNCTION "council_import"(
	"data" bytea,
	"mode" TEXT DEFAULT 'strict',
	"dry_run" bool DEFAULT false
) RETURNS TABLE (
	"table_name" TEXT,
	"source_rows" bigint,
	"imported" bigint,
	"skipped" bigint,
	"rejected" bigint,
	"updated" bigint,
	"deleted" bigint
)
STRICT VOLATILE PARALLEL UNSAFE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c
AS 'MODULE_PATHNAME', 'council_import_upload_wrapper';

-- Every committed import, sync and export: when, by whom, from or to what,
-- and each table's counts. The DBA's audit trail; sync's guard reads the
-- imports' transaction ids to tell the rows an import wrote (their xmin is
-- one of them) from the rows the app wrote since. Only the extension writes
-- it, as its owner.
CREATE TABLE @extschema@.council_imports (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    transaction xid8 NOT NULL,
    finished_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    role        name NOT NULL,
    source      text NOT NULL,
    mode        text NOT NULL
                CHECK (mode IN ('strict', 'quarantine', 'sync', 'export', 'baseline')),
    rows        jsonb NOT NULL,
    duration    interval NOT NULL
);

SELECT pg_catalog.pg_extension_config_dump('@extschema@.council_imports', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.council_imports_id_seq', '');

-- 0.1.0 recorded no imports. The rows this update finds count as imported:
-- sync's guard protects only what is written after it.
INSERT INTO @extschema@.council_imports (transaction, role, source, mode, rows, duration)
VALUES (pg_catalog.pg_current_xact_id(), current_user,
        'the rows present at the update to 0.2.0', 'baseline', '{}', interval '0');

-- The way back: the council tables into a new council.db the app runs on.
-- The path form writes a server file, for the roles COPY … TO lets do so;
-- the stream returns the same file's bytes, for council-loader export.
CREATE FUNCTION @extschema@.council_export(
    "path" text
) RETURNS TABLE (
    "table_name" text,
    "rows" bigint
)
STRICT VOLATILE PARALLEL UNSAFE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c
AS 'MODULE_PATHNAME', 'council_export_path_wrapper';

REVOKE ALL ON FUNCTION @extschema@.council_export(text) FROM PUBLIC;

CREATE FUNCTION @extschema@.council_export_stream() RETURNS SETOF bytea
STRICT VOLATILE PARALLEL UNSAFE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c
AS 'MODULE_PATHNAME', 'council_export_stream_wrapper';

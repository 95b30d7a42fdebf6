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
    -- the file's SHA-256 in hex: the file read (its main database file, as
    -- `sha256sum` prints it), the upload, or the export written
    sha256      text CHECK (sha256 ~ '^[0-9a-f]{64}$'),
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

-- Whether the search triggers skip an insert: only inside the import that
-- indexes the table's rows in bulk.
CREATE FUNCTION "council_search_deferred"(
	"table" oid
) RETURNS bool
STRICT VOLATILE PARALLEL SAFE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c
AS 'MODULE_PATHNAME', 'council_search_deferred_wrapper';

-- Full-text search over what the council deliberated: conversation titles,
-- the users' messages, and the stage 1 and stage 3 responses.
--
-- council_search_documents holds one tsvector per searchable row, kept by
-- row triggers on the four tables: whatever writes them (the app, an
-- import, pg_restore, a replication apply) leaves its rows searchable when
-- it commits, with no job to run. The triggers are ENABLE ALWAYS: they
-- fire also under session_replication_role = replica (an import that
-- checks foreign keys itself, a logical replication subscriber). They are
-- row triggers rather than statement triggers with transition tables: a
-- transition table copies every row a bulk load writes, which cost an
-- import more than the row triggers' calls do.
--
-- The documents are derived data: they are not dumped with the extension
-- (a restore's COPY into the tables rebuilds them through the triggers),
-- and council_search_reindex() rebuilds them from the tables.
--
-- Parsing text costs several times what importing it does, so an import
-- that fills empty tables defers their documents: the triggers skip its
-- inserts (council_search_deferred is true only inside that import), and
-- the import then calls council_search_fill, whose one statement parallel
-- workers share.
--
-- Every function pins search_path, so a caller's search_path cannot
-- redirect a name; the trigger functions run as the extension's owner, so
-- a role that may write the tables needs no right on the documents.

CREATE TABLE @extschema@.council_search_documents (
    kind            text NOT NULL
                    CHECK (kind IN ('title', 'user_message', 'stage1', 'stage3')),
    -- the row's id: messages.id, stage1_responses.id, stage3_synthesis.id;
    -- NULL for a title, whose row is the conversation
    row_id          bigint,
    -- the message a stage belongs to (a user message's own id)
    message_id      bigint,
    conversation_id uuid,
    -- stage 1: the model; stage 3: the chairman
    model           text,
    created_at      timestamptz,
    -- the configuration the document was parsed with
    config          regconfig NOT NULL,
    document        tsvector NOT NULL
);
-- lz4, as for the tables' text (see schema.sql): ranking reads every
-- matching document, and lz4 decompresses several times faster than pglz
DO $$
BEGIN
    ALTER TABLE @extschema@.council_search_documents ALTER COLUMN document SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
    NULL;
END
$$;
CREATE INDEX council_search_documents_document
    ON @extschema@.council_search_documents USING gin (document);
-- a changed or deleted row finds its document
CREATE INDEX council_search_documents_row
    ON @extschema@.council_search_documents (kind, row_id);
-- a deleted conversation finds its title; the conversation filter
CREATE INDEX council_search_documents_conversation
    ON @extschema@.council_search_documents (conversation_id);

-- The text-search configuration documents are parsed with and queries
-- read in: llm_council.search_config, 'english' when unset. A name that
-- is no configuration falls back to 'english' with a WARNING, so that a
-- mistyped setting never fails the app's writes.
CREATE FUNCTION @extschema@.council_search_config() RETURNS regconfig
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    setting text := coalesce(nullif(current_setting('llm_council.search_config', true), ''), 'english');
BEGIN
    RETURN setting::regconfig;
EXCEPTION WHEN undefined_object OR invalid_name OR invalid_schema_name OR syntax_error THEN
    RAISE WARNING 'llm_council.search_config names no text search configuration: "%"', setting
        USING HINT = 'SELECT cfgname FROM pg_ts_config lists them; ''english'' is used instead';
    RETURN 'pg_catalog.english'::regconfig;
END
$$;

-- The triggers' functions, one per table. An update re-parses only when
-- what the document holds changed: the app touches updated_at and
-- message_count on every message, which changes no title's document.
CREATE FUNCTION @extschema@.council_search_index_conversations() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    cfg regconfig;
BEGIN
    IF TG_OP OPERATOR(pg_catalog.=) 'TRUNCATE' THEN
        DELETE FROM @extschema@.council_search_documents WHERE kind OPERATOR(pg_catalog.=) 'title';
        RETURN NULL;
    END IF;
    IF TG_OP OPERATOR(pg_catalog.=) 'INSERT' AND @extschema@.council_search_deferred(TG_RELID) THEN
        RETURN NULL;
    END IF;
    IF TG_OP OPERATOR(pg_catalog.=) 'UPDATE'
       AND NEW.id OPERATOR(pg_catalog.=) OLD.id
       AND NEW.title IS NOT DISTINCT FROM OLD.title
       AND NEW.created_at IS NOT DISTINCT FROM OLD.created_at THEN
        RETURN NULL;
    END IF;
    IF TG_OP OPERATOR(pg_catalog.<>) 'INSERT' THEN
        DELETE FROM @extschema@.council_search_documents
        WHERE kind OPERATOR(pg_catalog.=) 'title' AND conversation_id OPERATOR(pg_catalog.=) OLD.id;
    END IF;
    IF TG_OP OPERATOR(pg_catalog.<>) 'DELETE' AND NEW.title IS NOT NULL THEN
        cfg := @extschema@.council_search_config();
        INSERT INTO @extschema@.council_search_documents
            (kind, conversation_id, created_at, config, document)
        VALUES ('title', NEW.id, NEW.created_at, cfg, to_tsvector(cfg, NEW.title));
    END IF;
    RETURN NULL;
END
$$;

CREATE FUNCTION @extschema@.council_search_index_messages() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    cfg regconfig;
BEGIN
    IF TG_OP OPERATOR(pg_catalog.=) 'TRUNCATE' THEN
        DELETE FROM @extschema@.council_search_documents WHERE kind OPERATOR(pg_catalog.=) 'user_message';
        RETURN NULL;
    END IF;
    IF TG_OP OPERATOR(pg_catalog.=) 'INSERT' AND @extschema@.council_search_deferred(TG_RELID) THEN
        RETURN NULL;
    END IF;
    IF TG_OP OPERATOR(pg_catalog.=) 'UPDATE' AND NEW.id OPERATOR(pg_catalog.=) OLD.id
       AND NEW.conversation_id IS DISTINCT FROM OLD.conversation_id THEN
        -- a message moved to another conversation takes its stages along
        UPDATE @extschema@.council_search_documents SET conversation_id = NEW.conversation_id
        WHERE kind OPERATOR(pg_catalog.=) ANY ('{stage1,stage3}') AND message_id OPERATOR(pg_catalog.=) NEW.id;
    END IF;
    IF TG_OP OPERATOR(pg_catalog.=) 'UPDATE'
       AND NEW.id OPERATOR(pg_catalog.=) OLD.id
       AND NEW.role IS NOT DISTINCT FROM OLD.role
       AND NEW.content IS NOT DISTINCT FROM OLD.content
       AND NEW.conversation_id IS NOT DISTINCT FROM OLD.conversation_id
       AND NEW.created_at IS NOT DISTINCT FROM OLD.created_at THEN
        RETURN NULL;
    END IF;
    IF TG_OP OPERATOR(pg_catalog.<>) 'INSERT' THEN
        DELETE FROM @extschema@.council_search_documents
        WHERE kind OPERATOR(pg_catalog.=) 'user_message' AND row_id OPERATOR(pg_catalog.=) OLD.id;
    END IF;
    IF TG_OP OPERATOR(pg_catalog.<>) 'DELETE'
       AND NEW.role OPERATOR(pg_catalog.=) 'user' AND NEW.content IS NOT NULL THEN
        cfg := @extschema@.council_search_config();
        INSERT INTO @extschema@.council_search_documents
            (kind, row_id, message_id, conversation_id, created_at, config, document)
        VALUES ('user_message', NEW.id, NEW.id, NEW.conversation_id, NEW.created_at, cfg,
                to_tsvector(cfg, NEW.content));
    END IF;
    RETURN NULL;
END
$$;

CREATE FUNCTION @extschema@.council_search_index_stage1() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    cfg regconfig;
BEGIN
    IF TG_OP OPERATOR(pg_catalog.=) 'TRUNCATE' THEN
        DELETE FROM @extschema@.council_search_documents WHERE kind OPERATOR(pg_catalog.=) 'stage1';
        RETURN NULL;
    END IF;
    IF TG_OP OPERATOR(pg_catalog.=) 'INSERT' AND @extschema@.council_search_deferred(TG_RELID) THEN
        RETURN NULL;
    END IF;
    IF TG_OP OPERATOR(pg_catalog.=) 'UPDATE'
       AND NEW.id OPERATOR(pg_catalog.=) OLD.id
       AND NEW.message_id IS NOT DISTINCT FROM OLD.message_id
       AND NEW.model IS NOT DISTINCT FROM OLD.model
       AND NEW.response IS NOT DISTINCT FROM OLD.response
       AND NEW.created_at IS NOT DISTINCT FROM OLD.created_at THEN
        RETURN NULL;
    END IF;
    IF TG_OP OPERATOR(pg_catalog.<>) 'INSERT' THEN
        DELETE FROM @extschema@.council_search_documents
        WHERE kind OPERATOR(pg_catalog.=) 'stage1' AND row_id OPERATOR(pg_catalog.=) OLD.id;
    END IF;
    IF TG_OP OPERATOR(pg_catalog.<>) 'DELETE' THEN
        cfg := @extschema@.council_search_config();
        INSERT INTO @extschema@.council_search_documents
            (kind, row_id, message_id, conversation_id, model, created_at, config, document)
        VALUES ('stage1', NEW.id, NEW.message_id,
                (SELECT m.conversation_id FROM @extschema@.messages m
                 WHERE m.id OPERATOR(pg_catalog.=) NEW.message_id),
                NEW.model, NEW.created_at, cfg, to_tsvector(cfg, NEW.response));
    END IF;
    RETURN NULL;
END
$$;

CREATE FUNCTION @extschema@.council_search_index_stage3() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    cfg regconfig;
BEGIN
    IF TG_OP OPERATOR(pg_catalog.=) 'TRUNCATE' THEN
        DELETE FROM @extschema@.council_search_documents WHERE kind OPERATOR(pg_catalog.=) 'stage3';
        RETURN NULL;
    END IF;
    IF TG_OP OPERATOR(pg_catalog.=) 'INSERT' AND @extschema@.council_search_deferred(TG_RELID) THEN
        RETURN NULL;
    END IF;
    IF TG_OP OPERATOR(pg_catalog.=) 'UPDATE'
       AND NEW.id OPERATOR(pg_catalog.=) OLD.id
       AND NEW.message_id IS NOT DISTINCT FROM OLD.message_id
       AND NEW.chairman_model IS NOT DISTINCT FROM OLD.chairman_model
       AND NEW.response IS NOT DISTINCT FROM OLD.response
       AND NEW.created_at IS NOT DISTINCT FROM OLD.created_at THEN
        RETURN NULL;
    END IF;
    IF TG_OP OPERATOR(pg_catalog.<>) 'INSERT' THEN
        DELETE FROM @extschema@.council_search_documents
        WHERE kind OPERATOR(pg_catalog.=) 'stage3' AND row_id OPERATOR(pg_catalog.=) OLD.id;
    END IF;
    IF TG_OP OPERATOR(pg_catalog.<>) 'DELETE' THEN
        cfg := @extschema@.council_search_config();
        INSERT INTO @extschema@.council_search_documents
            (kind, row_id, message_id, conversation_id, model, created_at, config, document)
        VALUES ('stage3', NEW.id, NEW.message_id,
                (SELECT m.conversation_id FROM @extschema@.messages m
                 WHERE m.id OPERATOR(pg_catalog.=) NEW.message_id),
                NEW.chairman_model, NEW.created_at, cfg, to_tsvector(cfg, NEW.response));
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER council_search AFTER INSERT OR UPDATE OR DELETE ON @extschema@.conversations
FOR EACH ROW EXECUTE FUNCTION @extschema@.council_search_index_conversations();
CREATE TRIGGER council_search_truncate AFTER TRUNCATE ON @extschema@.conversations
FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.council_search_index_conversations();
ALTER TABLE @extschema@.conversations
    ENABLE ALWAYS TRIGGER council_search, ENABLE ALWAYS TRIGGER council_search_truncate;

CREATE TRIGGER council_search AFTER INSERT OR UPDATE OR DELETE ON @extschema@.messages
FOR EACH ROW EXECUTE FUNCTION @extschema@.council_search_index_messages();
CREATE TRIGGER council_search_truncate AFTER TRUNCATE ON @extschema@.messages
FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.council_search_index_messages();
ALTER TABLE @extschema@.messages
    ENABLE ALWAYS TRIGGER council_search, ENABLE ALWAYS TRIGGER council_search_truncate;

CREATE TRIGGER council_search AFTER INSERT OR UPDATE OR DELETE ON @extschema@.stage1_responses
FOR EACH ROW EXECUTE FUNCTION @extschema@.council_search_index_stage1();
CREATE TRIGGER council_search_truncate AFTER TRUNCATE ON @extschema@.stage1_responses
FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.council_search_index_stage1();
ALTER TABLE @extschema@.stage1_responses
    ENABLE ALWAYS TRIGGER council_search, ENABLE ALWAYS TRIGGER council_search_truncate;

CREATE TRIGGER council_search AFTER INSERT OR UPDATE OR DELETE ON @extschema@.stage3_synthesis
FOR EACH ROW EXECUTE FUNCTION @extschema@.council_search_index_stage3();
CREATE TRIGGER council_search_truncate AFTER TRUNCATE ON @extschema@.stage3_synthesis
FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.council_search_index_stage3();
ALTER TABLE @extschema@.stage3_synthesis
    ENABLE ALWAYS TRIGGER council_search, ENABLE ALWAYS TRIGGER council_search_truncate;

-- Gives every row of the tables named that has no document its document.
-- The documents are computed by CREATE TABLE AS, which (unlike INSERT …
-- SELECT) may run in parallel workers, then inserted in one statement.
-- Anyone may call it: it adds only what is missing, and the same
-- documents the triggers would. Returns the documents written.
CREATE FUNCTION @extschema@.council_search_fill(tables regclass[]) RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    cfg regconfig := @extschema@.council_search_config();
    written bigint;
BEGIN
    CREATE TEMP TABLE council_search_fill ON COMMIT DROP AS
    SELECT 'title'::text AS kind, NULL::bigint AS row_id, NULL::bigint AS message_id,
           c.id AS conversation_id, NULL::text AS model, c.created_at, cfg AS config,
           to_tsvector(cfg, c.title) AS document
    FROM @extschema@.conversations c
    WHERE '@extschema@.conversations'::regclass OPERATOR(pg_catalog.=) ANY (tables)
      AND c.title IS NOT NULL
      AND NOT EXISTS (SELECT FROM @extschema@.council_search_documents d
                      WHERE d.kind OPERATOR(pg_catalog.=) 'title'
                        AND d.conversation_id OPERATOR(pg_catalog.=) c.id)
    UNION ALL
    SELECT 'user_message', m.id, m.id, m.conversation_id, NULL, m.created_at, cfg,
           to_tsvector(cfg, m.content)
    FROM @extschema@.messages m
    WHERE '@extschema@.messages'::regclass OPERATOR(pg_catalog.=) ANY (tables)
      AND m.role OPERATOR(pg_catalog.=) 'user' AND m.content IS NOT NULL
      AND NOT EXISTS (SELECT FROM @extschema@.council_search_documents d
                      WHERE d.kind OPERATOR(pg_catalog.=) 'user_message'
                        AND d.row_id OPERATOR(pg_catalog.=) m.id)
    UNION ALL
    SELECT 'stage1', s.id, s.message_id, m.conversation_id, s.model, s.created_at, cfg,
           to_tsvector(cfg, s.response)
    FROM @extschema@.stage1_responses s
    LEFT JOIN @extschema@.messages m ON m.id OPERATOR(pg_catalog.=) s.message_id
    WHERE '@extschema@.stage1_responses'::regclass OPERATOR(pg_catalog.=) ANY (tables)
      AND NOT EXISTS (SELECT FROM @extschema@.council_search_documents d
                      WHERE d.kind OPERATOR(pg_catalog.=) 'stage1'
                        AND d.row_id OPERATOR(pg_catalog.=) s.id)
    UNION ALL
    SELECT 'stage3', s.id, s.message_id, m.conversation_id, s.chairman_model, s.created_at, cfg,
           to_tsvector(cfg, s.response)
    FROM @extschema@.stage3_synthesis s
    LEFT JOIN @extschema@.messages m ON m.id OPERATOR(pg_catalog.=) s.message_id
    WHERE '@extschema@.stage3_synthesis'::regclass OPERATOR(pg_catalog.=) ANY (tables)
      AND NOT EXISTS (SELECT FROM @extschema@.council_search_documents d
                      WHERE d.kind OPERATOR(pg_catalog.=) 'stage3'
                        AND d.row_id OPERATOR(pg_catalog.=) s.id);
    INSERT INTO @extschema@.council_search_documents SELECT * FROM council_search_fill;
    GET DIAGNOSTICS written = ROW_COUNT;
    DROP TABLE council_search_fill;
    RETURN written;
END
$$;

-- Rebuilds every document from the tables, parsed with the configuration
-- in force: after llm_council.search_config changes, or after a restore
-- with --disable-triggers. Returns the documents written. It takes the
-- tables' SHARE lock: the app's writes wait until it commits.
CREATE FUNCTION @extschema@.council_search_reindex() RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    LOCK TABLE @extschema@.conversations, @extschema@.messages,
               @extschema@.stage1_responses, @extschema@.stage3_synthesis IN SHARE MODE;
    TRUNCATE @extschema@.council_search_documents;
    RETURN @extschema@.council_search_fill(ARRAY['@extschema@.conversations', '@extschema@.messages',
        '@extschema@.stage1_responses', '@extschema@.stage3_synthesis']::regclass[]);
END
$$;
-- a rebuild takes the app's tables' locks for as long as it runs
REVOKE EXECUTE ON FUNCTION @extschema@.council_search_reindex() FROM PUBLIC;

-- Ranked search: query is web-search syntax (websearch_to_tsquery: words,
-- "a phrase", or, -word), read in llm_council.search_config. Filters are
-- optional: one conversation, one model (by_model: a stage 1 model or a
-- stage 3 chairman), the time range [since, until) of the row, and the
-- kinds of text. The snippet is ts_headline's, with snippet_options passed through.
-- Runs with the caller's rights: it needs SELECT on
-- council_search_documents, and on the tables whose text it shows.
CREATE FUNCTION @extschema@.council_search(
    query text,
    conversation uuid DEFAULT NULL,
    by_model text DEFAULT NULL,
    since timestamptz DEFAULT NULL,
    until timestamptz DEFAULT NULL,
    kinds text[] DEFAULT NULL,
    "limit" integer DEFAULT 20,
    "offset" integer DEFAULT 0,
    snippet_options text DEFAULT 'MaxFragments=2, MaxWords=20, MinWords=8, FragmentDelimiter=" … "'
) RETURNS TABLE (
    kind text,
    conversation_id uuid,
    message_id bigint,
    row_id bigint,
    model text,
    created_at timestamptz,
    title text,
    rank real,
    snippet text
)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    cfg regconfig := @extschema@.council_search_config();
    tsq tsquery;
    filters text := '';
BEGIN
    IF query IS NULL THEN
        RAISE EXCEPTION 'council_search: query must not be NULL'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF "limit" IS NULL OR "limit" < 0 OR "offset" IS NULL OR "offset" < 0 THEN
        RAISE EXCEPTION 'council_search: limit and offset must be 0 or more'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF kinds IS NOT NULL AND NOT kinds <@ '{title,user_message,stage1,stage3}'::text[] THEN
        RAISE EXCEPTION 'council_search: kinds must be among title, user_message, stage1, stage3'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    tsq := websearch_to_tsquery(cfg, query);
    -- only stop words, or nothing: nothing matches (and @@ would NOTICE)
    IF numnode(tsq) OPERATOR(pg_catalog.=) 0 THEN
        RETURN;
    END IF;
    -- Only the filters given enter the query, so that each call is planned
    -- for what it asks; values are parameters, never text in the query.
    IF conversation IS NOT NULL THEN
        filters := filters || ' AND d.conversation_id OPERATOR(pg_catalog.=) $2';
    END IF;
    IF by_model IS NOT NULL THEN
        filters := filters || ' AND d.model OPERATOR(pg_catalog.=) $3';
    END IF;
    IF since IS NOT NULL THEN
        filters := filters || ' AND d.created_at OPERATOR(pg_catalog.>=) $4';
    END IF;
    IF until IS NOT NULL THEN
        filters := filters || ' AND d.created_at OPERATOR(pg_catalog.<) $5';
    END IF;
    IF kinds IS NOT NULL THEN
        filters := filters || ' AND d.kind OPERATOR(pg_catalog.=) ANY ($6)';
    END IF;
    RETURN QUERY EXECUTE
        'WITH top AS (
             SELECT d.kind, d.row_id, d.message_id, d.conversation_id, d.model, d.created_at,
                    ts_rank(d.document, $1) AS rank
             FROM @extschema@.council_search_documents d
             WHERE d.document OPERATOR(pg_catalog.@@) $1' || filters || '
             ORDER BY rank DESC, d.created_at DESC NULLS LAST, d.kind, d.row_id, d.conversation_id
             LIMIT $7 OFFSET $8)
         SELECT t.kind, t.conversation_id, t.message_id, t.row_id, t.model, t.created_at, c.title, t.rank,
                ts_headline($9, CASE t.kind
                    WHEN ''title'' THEN c.title
                    WHEN ''user_message'' THEN (SELECT m.content FROM @extschema@.messages m
                                               WHERE m.id OPERATOR(pg_catalog.=) t.row_id)
                    WHEN ''stage1'' THEN (SELECT s.response FROM @extschema@.stage1_responses s
                                         WHERE s.id OPERATOR(pg_catalog.=) t.row_id)
                    ELSE (SELECT s.response FROM @extschema@.stage3_synthesis s
                          WHERE s.id OPERATOR(pg_catalog.=) t.row_id)
                END, $1, $10)
         FROM top t
         LEFT JOIN @extschema@.conversations c ON c.id OPERATOR(pg_catalog.=) t.conversation_id
         ORDER BY t.rank DESC, t.created_at DESC NULLS LAST, t.kind, t.row_id, t.conversation_id'
    USING tsq, conversation, by_model, since, until, kinds, "limit", "offset", cfg, snippet_options;
END
$$;

-- The rows already there become searchable.
SELECT @extschema@.council_search_reindex();

CREATE FUNCTION "council_library_preloaded"() RETURNS bool
STRICT STABLE PARALLEL SAFE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c
AS 'MODULE_PATHNAME', 'council_library_preloaded_wrapper';

-- One look at the whole system: what each table holds and takes on disk,
-- the search documents, the cache, the imports, the version, and whether
-- the library is preloaded (the cache's hit counters and the expiry worker
-- need it).
--
-- It runs with the caller's rights: a figure the caller may not read (a
-- table without SELECT, council_imports for a role that is not its owner)
-- is NULL rather than an error, so that any role can call it.
CREATE FUNCTION @extschema@.council_overview(
    OUT extension_version text,
    OUT library_preloaded boolean,
    OUT search_config regconfig,
    -- one object per table: table, rows, table_bytes, index_bytes, total_bytes
    OUT tables jsonb,
    OUT total_bytes bigint,
    OUT index_bytes bigint,
    OUT search_documents bigint,
    -- documents parsed with another configuration than search_config:
    -- council_search_reindex() parses them again
    OUT search_documents_stale bigint,
    OUT search_table_bytes bigint,
    OUT search_index_bytes bigint,
    OUT cache_entries bigint,
    OUT cache_hit_rate double precision,
    OUT imports bigint,
    -- the last committed import, sync or export, as council_imports has it
    OUT last_import jsonb
)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    tbl text;
    relid regclass;
    row_count bigint;
BEGIN
    SELECT e.extversion INTO extension_version FROM pg_extension e WHERE e.extname = 'llm_council';
    library_preloaded := @extschema@.council_library_preloaded();
    search_config := @extschema@.council_search_config();

    tables := '[]';
    total_bytes := 0;
    index_bytes := 0;
    FOREACH tbl IN ARRAY ARRAY['conversations', 'messages', 'stage1_responses', 'stage2_rankings',
                                'stage3_synthesis', 'deliberation_metadata', 'api_keys',
                                'api_key_audit_log', 'response_cache', 'council_import_rejects',
                                'council_imports']
    LOOP
        relid := format('@extschema@.%I', tbl)::regclass;
        row_count := NULL;
        IF has_table_privilege(relid, 'SELECT') THEN
            EXECUTE format('SELECT count(*) FROM %s', relid) INTO row_count;
        END IF;
        tables := tables || jsonb_build_object(
            'table', tbl,
            'rows', row_count,
            'table_bytes', pg_table_size(relid),
            'index_bytes', pg_indexes_size(relid),
            'total_bytes', pg_total_relation_size(relid));
        total_bytes := total_bytes + pg_total_relation_size(relid);
        index_bytes := index_bytes + pg_indexes_size(relid);
    END LOOP;

    relid := '@extschema@.council_search_documents'::regclass;
    search_table_bytes := pg_table_size(relid);
    search_index_bytes := pg_indexes_size(relid);
    IF has_table_privilege(relid, 'SELECT') THEN
        SELECT count(*), count(*) FILTER (WHERE d.config <> search_config)
        INTO search_documents, search_documents_stale
        FROM @extschema@.council_search_documents d;
    END IF;

    IF has_table_privilege('@extschema@.response_cache'::regclass, 'SELECT') THEN
        SELECT s.entries, s.hit_rate INTO cache_entries, cache_hit_rate
        FROM @extschema@.council_cache_stats() s;
    END IF;

    IF has_table_privilege('@extschema@.council_imports'::regclass, 'SELECT') THEN
        SELECT count(*) INTO imports FROM @extschema@.council_imports i WHERE i.mode <> 'baseline';
        SELECT to_jsonb(i) - 'transaction' INTO last_import
        FROM @extschema@.council_imports i
        WHERE i.mode <> 'baseline'
        ORDER BY i.id DESC LIMIT 1;
    END IF;
END
$$;

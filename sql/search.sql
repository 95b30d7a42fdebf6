-- Full-text search over what the council deliberated: conversation titles,
-- the users' messages, and the stage 1 and stage 3 responses.
--
-- council_search_documents holds one document per searchable row, kept by
-- row triggers on the four tables: whatever writes them (the app, an
-- import, pg_restore, a replication apply) leaves its rows searchable when
-- it commits, with no job to run. A document's tsvector is kept there
-- until the search's postings hold it (council_search_analyze(), or a bulk
-- fill at once), and the postings are then its only copy. The triggers are ENABLE ALWAYS: they
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
-- llm_council.search = off (for a database, a role or a session) keeps no
-- documents: no trigger fires (search_triggers.sql), an import indexes nothing,
-- council_search refuses, and council_search_reindex() removes them all;
-- back on, council_search_reindex() catches up with what was written.
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
    -- the tsvector, until council_search_postings holds it: then NULL, the
    -- postings being its only copy (council_search_stored_documents()
    -- shows it again)
    document        tsvector,
    -- the document's id in council_search_postings
    doc             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- whether council_search_postings holds it (council_search_analyze()
    -- sets it, and a bulk fill writes it so); until then, the GIN index
    -- finds it
    indexed         boolean NOT NULL DEFAULT false
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
-- the documents written since the postings were built: few, so kept
-- cheaply by the app's writes, and built in no time by a bulk fill
CREATE INDEX council_search_documents_document
    ON @extschema@.council_search_documents USING gin (document) WHERE NOT indexed;
-- a changed or deleted row finds its document; the row's id first, where
-- nearly every key differs: with the kind first (four values, compared in
-- the database's collation) a bulk fill built it in twice the time
CREATE INDEX council_search_documents_row
    ON @extschema@.council_search_documents (row_id, kind);
-- a deleted conversation finds its title; the conversation filter
CREATE INDEX council_search_documents_conversation
    ON @extschema@.council_search_documents (conversation_id);

-- The search's inverted index (search::postings): for each lexeme of the
-- documents marked indexed, the documents that hold it, each with its
-- length and the lexeme's frequency and positions, so that council_search
-- ranks a word's matches, checks a phrase and makes a snippet without
-- reading the documents, whose only copy it is. Built again whole by
-- council_search_analyze() (from itself and the documents written since)
-- and by a bulk fill (from itself and the documents it parsed), which an
-- import and a reindex run, and the app's writes do not: a document
-- written since is found through the GIN index of the documents not
-- indexed, until the next analyze; a document deleted since stays listed
-- until then, and council_search drops it. The row whose lexeme is ''
-- lists every document. Derived data, not dumped, readable by whom the
-- owner grants, as the documents are. Stored uncompressed: a list is read
-- whole by every search for its word, and compresses little.
--
-- Each row also holds its lexeme's term statistics for ranking (BM25, see
-- council_search_score): the documents that hold it and its occurrences,
-- as ts_stat counts them, beside the list they are counted from, so that
-- building the lists writes them at once. With council_search_statistics
-- (the corpus's size and average length) they are as of the last build:
-- an import that indexes in bulk, council_search_reindex() and
-- council_search_analyze() refresh them; the app's writes do not (a day's
-- new documents barely move an IDF): run council_search_analyze() after
-- many writes, for example nightly with pg_cron. The frequencies tell
-- which words the council's text holds, as the lists do.
CREATE TABLE @extschema@.council_search_postings (
    lexeme      text COLLATE "C" PRIMARY KEY,
    documents   bigint NOT NULL,
    occurrences bigint NOT NULL,
    postings    bytea NOT NULL
);
ALTER TABLE @extschema@.council_search_postings ALTER COLUMN postings SET STORAGE EXTERNAL;

CREATE TABLE @extschema@.council_search_statistics (
    documents      bigint NOT NULL,
    average_length double precision NOT NULL,
    analyzed_at    timestamptz NOT NULL
);
-- one row
CREATE UNIQUE INDEX council_search_statistics_one
    ON @extschema@.council_search_statistics ((true));

-- A configuration llm_council.search_config names, other than
-- council_english: a built-in name is read in pg_catalog alone; any other
-- is schema-qualified. A name that is no configuration falls back to
-- council_english with a WARNING, so that a mistyped setting never fails
-- the app's writes. Its block that catches starts a subtransaction, which
-- only such a setting pays for.
CREATE FUNCTION @extschema@.council_search_config_named(setting text) RETURNS regconfig
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN setting::regconfig;
EXCEPTION WHEN undefined_object OR invalid_name OR invalid_schema_name OR syntax_error THEN
    RAISE WARNING 'llm_council.search_config names no text search configuration: "%"', setting
        USING HINT = 'SELECT cfgname FROM pg_ts_config lists them; ''council_english'' is used instead';
    RETURN '@extschema@.council_english'::regconfig;
END
$$;

-- The text-search configuration documents are parsed with and queries
-- read in: llm_council.search_config, the extension's own council_english
-- (sql/text_search.sql) when unset, any other as
-- council_search_config_named reads it. SQL, with every name qualified and
-- no setting of its own, so that the planner puts its expression in place
-- of each call: the triggers ask for it on every row and council_search on
-- every search, where a PL/pgSQL call, with its search_path pinned, took
-- longer than ranking a rare word.
CREATE FUNCTION @extschema@.council_search_config() RETURNS regconfig
LANGUAGE sql STABLE
AS $$
SELECT CASE WHEN coalesce(pg_catalog.current_setting('llm_council.search_config', true), '')
                 OPERATOR(pg_catalog.=) ANY ('{"",council_english}'::text[])
            THEN '@extschema@.council_english'::regconfig
            ELSE @extschema@.council_search_config_named(
                     pg_catalog.current_setting('llm_council.search_config', true))
       END
$$;

-- A document: to_tsvector(config, text), the same tsvector, made with
-- each distinct word run through the dictionaries once per session where
-- the configuration's parser is council_parser (postgres::dictionaries):
-- to_tsvector stems every word again. Rust; its SQL is here because it
-- returns a tsvector.
CREATE FUNCTION @extschema@.council_search_document(config regconfig, text text)
RETURNS tsvector
-- as to_tsvector's: worth parallel workers in a bulk fill
LANGUAGE c IMMUTABLE PARALLEL SAFE STRICT COST 100
AS 'MODULE_PATHNAME', 'council_search_document_wrapper';

-- The triggers' functions, one per table. Their row triggers' WHEN
-- (search_triggers.sql) has already decided that search is on, that the
-- import has not deferred the table, and that the row's document changes:
-- a function does what the row asks. TRUNCATE's statement trigger has no
-- WHEN, so its branch asks the setting itself.
CREATE FUNCTION @extschema@.council_search_index_conversations() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    cfg regconfig;
BEGIN
    IF TG_OP OPERATOR(pg_catalog.=) 'TRUNCATE' THEN
        IF @extschema@.council_search_enabled() THEN
            DELETE FROM @extschema@.council_search_documents WHERE kind OPERATOR(pg_catalog.=) 'title';
        END IF;
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
        VALUES ('title', NEW.id, NEW.created_at, cfg, @extschema@.council_search_document(cfg, NEW.title));
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
        IF @extschema@.council_search_enabled() THEN
            DELETE FROM @extschema@.council_search_documents WHERE kind OPERATOR(pg_catalog.=) 'user_message';
        END IF;
        RETURN NULL;
    END IF;
    IF TG_OP OPERATOR(pg_catalog.=) 'UPDATE' AND NEW.id OPERATOR(pg_catalog.=) OLD.id
       AND NEW.conversation_id IS DISTINCT FROM OLD.conversation_id THEN
        -- a message moved to another conversation takes its stages along
        UPDATE @extschema@.council_search_documents SET conversation_id = NEW.conversation_id
        WHERE kind OPERATOR(pg_catalog.=) ANY ('{stage1,stage3}') AND message_id OPERATOR(pg_catalog.=) NEW.id;
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
                @extschema@.council_search_document(cfg, NEW.content));
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
        IF @extschema@.council_search_enabled() THEN
            DELETE FROM @extschema@.council_search_documents WHERE kind OPERATOR(pg_catalog.=) 'stage1';
        END IF;
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
                NEW.model, NEW.created_at, cfg, @extschema@.council_search_document(cfg, NEW.response));
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
        IF @extschema@.council_search_enabled() THEN
            DELETE FROM @extschema@.council_search_documents WHERE kind OPERATOR(pg_catalog.=) 'stage3';
        END IF;
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
                NEW.chairman_model, NEW.created_at, cfg, @extschema@.council_search_document(cfg, NEW.response));
    END IF;
    RETURN NULL;
END
$$;

-- The row triggers are in search_triggers.sql. TRUNCATE empties a table's
-- documents at once.
CREATE TRIGGER council_search_truncate AFTER TRUNCATE ON @extschema@.conversations
FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.council_search_index_conversations();
ALTER TABLE @extschema@.conversations ENABLE ALWAYS TRIGGER council_search_truncate;
CREATE TRIGGER council_search_truncate AFTER TRUNCATE ON @extschema@.messages
FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.council_search_index_messages();
ALTER TABLE @extschema@.messages ENABLE ALWAYS TRIGGER council_search_truncate;
CREATE TRIGGER council_search_truncate AFTER TRUNCATE ON @extschema@.stage1_responses
FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.council_search_index_stage1();
ALTER TABLE @extschema@.stage1_responses ENABLE ALWAYS TRIGGER council_search_truncate;
CREATE TRIGGER council_search_truncate AFTER TRUNCATE ON @extschema@.stage3_synthesis
FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.council_search_index_stage3();
ALTER TABLE @extschema@.stage3_synthesis ENABLE ALWAYS TRIGGER council_search_truncate;

-- Builds the postings again, from what they held and the documents
-- written since the last build (whose tsvectors they then keep alone), and
-- counts every lexeme of the documents (beside its list), and the
-- documents and their average length (council_search_statistics), for
-- ranking. Returns the lexemes counted. The searches running meanwhile
-- read the postings and statistics before it; two analyzes run one after
-- the other.
CREATE FUNCTION @extschema@.council_search_analyze() RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    built record;
BEGIN
    LOCK TABLE @extschema@.council_search_postings IN SHARE ROW EXCLUSIVE MODE;
    -- every document that still has its tsvector: those written since the
    -- last build (and, once, those of a release that kept them all)
    CREATE TEMP TABLE council_search_fresh ON COMMIT DROP AS
    SELECT d.doc, d.document FROM @extschema@.council_search_documents d
    WHERE d.document IS NOT NULL;
    UPDATE @extschema@.council_search_documents d SET indexed = true, document = NULL
    FROM council_search_fresh f
    WHERE d.doc OPERATOR(pg_catalog.=) f.doc;
    SELECT * INTO built
    FROM @extschema@.council_search_postings_build('council_search_fresh'::regclass);
    DROP TABLE council_search_fresh;
    PERFORM @extschema@.council_search_statistics_set(built.documents, built.occurrences);
    RETURN built.lexemes;
END
$$;
-- it reads every document; the import and the reindex run it as the owner
REVOKE EXECUTE ON FUNCTION @extschema@.council_search_analyze() FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION @extschema@.council_search_postings_build(oid) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION @extschema@.council_search_fill_postings(oid[], oid) FROM PUBLIC;

-- The corpus's size and average length, for BM25, as of now.
CREATE FUNCTION @extschema@.council_search_statistics_set(documents bigint, occurrences bigint)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    DELETE FROM @extschema@.council_search_statistics;
    INSERT INTO @extschema@.council_search_statistics (documents, average_length, analyzed_at)
    VALUES (documents,
            coalesce(occurrences::double precision OPERATOR(pg_catalog./) nullif(documents, 0), 0),
            now());
END
$$;
REVOKE EXECUTE ON FUNCTION @extschema@.council_search_statistics_set(bigint, bigint) FROM PUBLIC;

-- Gives every row of the tables named that has no document its document.
-- The documents are parsed by one query that parallel workers may share,
-- and the postings built again with them as its rows come, the postings
-- being their only copy (council_search_fill_postings). Anyone may call
-- it: it adds only what is missing, and the same documents the triggers
-- would. The documents' table stays locked against other writers until
-- the transaction ends. Returns the documents written.
CREATE FUNCTION @extschema@.council_search_fill(tables regclass[]) RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    built record;
    rebuilt text[] := '{}';
    relation regclass;
    index regclass;
    index_name name;
    definition text;
    constraint_name name;
    constraint_kind "char";
BEGIN
    IF NOT @extschema@.council_search_enabled() THEN
        RETURN 0;
    END IF;
    -- Into an empty documents' table (a first import, a reindex), the
    -- documents and the postings are written whole, and each of
    -- their indexes is built afterwards from the whole, sorted, two to
    -- three times as fast as keeping it row by row: the indexes (the
    -- primary keys, and a DBA's own index, unique constraint and storage
    -- options) are dropped and made again as they are defined, apart from
    -- one that lives in another tablespace, backs an exclusion or a
    -- deferrable constraint, or that a foreign key relies on, which are
    -- kept. Searches wait meanwhile, for documents that are not there yet.
    IF NOT EXISTS (SELECT FROM @extschema@.council_search_documents) THEN
        FOR relation, index, index_name, definition, constraint_name, constraint_kind IN
            SELECT i.indrelid::regclass, i.indexrelid::regclass, c.relname, pg_get_indexdef(i.indexrelid),
                   k.conname, k.contype
            FROM pg_index i
            JOIN pg_class c ON c.oid OPERATOR(pg_catalog.=) i.indexrelid
            LEFT JOIN pg_constraint k ON k.conindid OPERATOR(pg_catalog.=) i.indexrelid
                                     AND k.conrelid OPERATOR(pg_catalog.=) i.indrelid
                                     AND k.contype OPERATOR(pg_catalog.=) ANY ('{p,u,x}')
            WHERE i.indrelid OPERATOR(pg_catalog.=) ANY (ARRAY[
                      '@extschema@.council_search_documents',
                      '@extschema@.council_search_postings']::regclass[])
              AND c.reltablespace OPERATOR(pg_catalog.=) 0
              AND (k.oid IS NULL
                   OR (k.contype OPERATOR(pg_catalog.=) ANY ('{p,u}') AND NOT k.condeferrable))
              AND NOT EXISTS (SELECT FROM pg_constraint f
                              WHERE f.conindid OPERATOR(pg_catalog.=) i.indexrelid
                                AND f.contype OPERATOR(pg_catalog.=) 'f')
        LOOP
            rebuilt := rebuilt OPERATOR(pg_catalog.||) definition;
            IF constraint_name IS NULL THEN
                EXECUTE format('DROP INDEX %s', index);
            ELSE
                -- the index made again, with its options, becomes the
                -- constraint's again
                rebuilt := rebuilt OPERATOR(pg_catalog.||)
                    format('ALTER TABLE %s ADD CONSTRAINT %I %s USING INDEX %I', relation, constraint_name,
                           CASE constraint_kind WHEN 'p' THEN 'PRIMARY KEY' ELSE 'UNIQUE' END, index_name);
                EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', relation, constraint_name);
            END IF;
        END LOOP;
    END IF;
    -- the postings are built one build at a time, as by an analyze
    LOCK TABLE @extschema@.council_search_postings IN SHARE ROW EXCLUSIVE MODE;
    SELECT * INTO built
    FROM @extschema@.council_search_fill_postings(tables::oid[], @extschema@.council_search_config()::oid);
    FOREACH definition IN ARRAY rebuilt LOOP
        EXECUTE definition;
    END LOOP;
    IF built.written OPERATOR(pg_catalog.>) 0 THEN
        PERFORM @extschema@.council_search_statistics_set(built.documents, built.occurrences);
    END IF;
    RETURN built.written;
END
$$;

-- Rebuilds every document from the tables, parsed with the configuration
-- in force: after llm_council.search_config changes, after a restore with
-- --disable-triggers, or after llm_council.search was off (with it off,
-- it removes every document: none are kept). Returns the documents
-- written. It takes the tables' SHARE lock: the app's writes wait until it
-- commits.
CREATE FUNCTION @extschema@.council_search_reindex() RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    LOCK TABLE @extschema@.conversations, @extschema@.messages,
               @extschema@.stage1_responses, @extschema@.stage3_synthesis IN SHARE MODE;
    -- TRUNCATE rather than DELETE: the fill then writes the postings into
    -- an empty table, where a DELETE would leave each lexeme's old version
    -- for its unique index to check; searches wait for the documents
    -- anyway
    TRUNCATE @extschema@.council_search_documents, @extschema@.council_search_postings;
    DELETE FROM @extschema@.council_search_statistics;
    IF NOT @extschema@.council_search_enabled() THEN
        RETURN 0;
    END IF;
    RETURN @extschema@.council_search_fill(ARRAY['@extschema@.conversations', '@extschema@.messages',
        '@extschema@.stage1_responses', '@extschema@.stage3_synthesis']::regclass[]);
END
$$;
-- a rebuild takes the app's tables' locks for as long as it runs
REVOKE EXECUTE ON FUNCTION @extschema@.council_search_reindex() FROM PUBLIC;

-- council_search's snippet of a text parsed with council_english, from
-- its stored document (search::snippet): ts_headline's own, without
-- stemming every word again. Rust (council_search_snippet_wrapper); its
-- SQL is here because it takes a tsvector and a tsquery at once.
CREATE FUNCTION @extschema@.council_search_snippet(text text, document tsvector, query tsquery, options text)
RETURNS text
LANGUAGE c IMMUTABLE PARALLEL SAFE STRICT
AS 'MODULE_PATHNAME', 'council_search_snippet_wrapper';
-- The same snippet of a document the postings alone hold, from its terms:
-- the query's lexemes and their positions, as council_search_matches gives
-- them, in a tsvector's bytes.
CREATE FUNCTION @extschema@.council_search_snippet_of_terms(text text, terms bytea, query tsquery, options text)
RETURNS text
LANGUAGE c IMMUTABLE PARALLEL SAFE STRICT
AS 'MODULE_PATHNAME', 'council_search_snippet_of_terms_wrapper';

-- Every document the postings hold, as its tsvector again (Rust,
-- council_search_stored_documents_wrapper): what council_search_documents
-- no longer stores once a document is indexed, to look at. It reads every
-- list and holds every document in memory: for inspection, not for the
-- app. Needs SELECT on council_search_postings.
CREATE FUNCTION @extschema@.council_search_stored_documents()
RETURNS TABLE (doc bigint, document tsvector)
LANGUAGE c STABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'council_search_stored_documents_wrapper';

-- council_search's query made ready for BM25: its lexemes, each with its
-- IDF from its document frequency in `postings`, and the corpus's
-- statistics from `statistics`, read with the caller's rights. Rust
-- (council_search_prepare_wrapper); its SQL is here because it names the
-- tables.
CREATE FUNCTION @extschema@.council_search_prepare(lexemes text[], postings regclass, statistics regclass)
RETURNS bytea
LANGUAGE c STABLE PARALLEL SAFE STRICT
AS 'MODULE_PATHNAME', 'council_search_prepare_wrapper';

-- council_search's matches among the documents the postings hold, ranked
-- there (search::postings): the `wanted` best, with every tie of the
-- last, each with the number of all, and the terms its snippet is made
-- from; among the documents `within` alone, if given (one conversation's).
-- Rust (council_search_matches_wrapper);
-- its SQL is here because it takes a tsquery. It reads `postings` with the
-- caller's rights.
CREATE FUNCTION @extschema@.council_search_matches(query tsquery, prepared bytea, wanted integer,
                                                  postings regclass, within bigint[] DEFAULT NULL)
RETURNS TABLE (doc bigint, rank real, matches bigint, terms bytea)
LANGUAGE c STABLE PARALLEL SAFE ROWS 100
AS 'MODULE_PATHNAME', 'council_search_matches_wrapper';

-- council_search's statement: every search council_search does not make
-- at once (search::entry) comes here, with its arguments: one with
-- filters, one by a role that may read an app table only through column
-- grants or under a policy, and one whose arguments it refuses. It reads
-- through the executor, which applies them.
CREATE FUNCTION @extschema@.council_search_statement(
    query text,
    conversation uuid,
    by_model text,
    since timestamptz,
    until timestamptz,
    kinds text[],
    "limit" integer,
    "offset" integer,
    snippet_options text
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
-- the unfiltered search's statement is planned once per session (below),
-- and a search runs in one process: starting a parallel worker takes
-- longer than a search that finds a few rows
SET plan_cache_mode = force_generic_plan
SET max_parallel_workers_per_gather = 0
AS $$
DECLARE
    cfg regconfig := @extschema@.council_search_config();
    tsq tsquery;
    filters text := '';
    prepared bytea;
    need bigint;
    wanted integer;
    listed bigint;
    returned bigint;
    total bigint;
    within bigint[];
BEGIN
    IF NOT @extschema@.council_search_enabled() THEN
        RAISE EXCEPTION 'council_search: search is off in this session'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'SET llm_council.search = on (or ALTER DATABASE … SET, ALTER ROLE … SET); '
                         'after a time off, SELECT council_search_reindex() indexes what was written meanwhile';
    END IF;
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
    -- BM25's inputs: the query's lexemes (as the documents hold them) and
    -- the corpus's statistics; none yet ranks by frequency and length alone.
    prepared := @extschema@.council_search_prepare(tsvector_to_array(to_tsvector(cfg, query)),
                                                   '@extschema@.council_search_postings'::regclass,
                                                   '@extschema@.council_search_statistics'::regclass);
    IF "limit" OPERATOR(pg_catalog.=) 0 THEN
        RETURN;
    END IF;
    -- Filters: only those given enter the statement, planned for what it
    -- asks; values are parameters, never text in it.
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
    -- The matches come from two places: the postings, for the documents
    -- they hold (council_search_matches ranks them there, reading no
    -- document), and the GIN index, for the few written since the last
    -- analyze (ranked one by one). From the postings come the best, with
    -- every tie of the last (`wanted`), whose rows are then read: the page
    -- is whole if enough of them are there (a document deleted since, or
    -- one the filters leave out, is not), or if they were all the matches.
    -- Otherwise the statement returns nothing, and more are asked for.
    --
    -- One conversation's search asks the postings for that conversation's
    -- documents alone (`within`, found through its index): a few, whatever
    -- the words.
    --
    -- The page's rows are ranked among every match; their text and title
    -- are read for the page alone. The snippet of a council_english
    -- document comes from its positions (council_search_snippet): those the
    -- postings gave with the match, or, for one written since the last
    -- analyze, those its stored document holds, read by the row's ctid
    -- (carrying the documents through the ranking's sort would copy each);
    -- any other's from ts_headline.
    IF conversation IS NOT NULL THEN
        within := ARRAY(SELECT d.doc FROM @extschema@.council_search_documents d
                        WHERE d.conversation_id OPERATOR(pg_catalog.=) conversation AND d.indexed
                        ORDER BY d.doc);
    END IF;
    need := "limit"::bigint OPERATOR(pg_catalog.+) "offset";
    -- Without filters, the page's own number: only a document deleted
    -- since the last analyze has no row, which is rare, and each one read
    -- for nothing costs a lookup. Filters leave some out: four times as
    -- many, and a few more.
    wanted := least(CASE WHEN filters OPERATOR(pg_catalog.=) '' THEN need
                         ELSE need OPERATOR(pg_catalog.*) 4 OPERATOR(pg_catalog.+) 16 END,
                    2147483647);
    LOOP
        -- without filters, a static statement, whose generic plan PL/pgSQL
        -- keeps for the session
        IF filters OPERATOR(pg_catalog.=) '' THEN
            RETURN QUERY
            WITH hits AS MATERIALIZED (
                SELECT h.doc, h.rank, h.matches, h.terms
                FROM @extschema@.council_search_matches(tsq, prepared, wanted,
                                                        '@extschema@.council_search_postings'::regclass) h),
            listed AS MATERIALIZED (
                SELECT d.ctid AS place, d.kind, d.row_id, d.message_id, d.conversation_id, d.model,
                       d.created_at, d.config, h.rank, h.terms
                FROM hits h
                JOIN @extschema@.council_search_documents d
                  ON d.doc OPERATOR(pg_catalog.=) h.doc AND d.indexed),
            top AS (
                SELECT * FROM listed
                UNION ALL
                SELECT d.ctid, d.kind, d.row_id, d.message_id, d.conversation_id, d.model,
                       d.created_at, d.config, @extschema@.council_search_score(d.document, prepared),
                       NULL::bytea
                FROM @extschema@.council_search_documents d
                WHERE NOT d.indexed AND d.document OPERATOR(pg_catalog.@@) tsq
                ORDER BY rank DESC, created_at DESC NULLS LAST, kind, row_id, conversation_id
                LIMIT "limit" OFFSET "offset")
            SELECT t.kind, t.conversation_id, t.message_id, t.row_id, t.model, t.created_at, s.title, t.rank,
                   CASE WHEN t.config OPERATOR(pg_catalog.<>) '@extschema@.council_english'::regconfig
                        THEN ts_headline(cfg, s.body, tsq, snippet_options)
                        WHEN t.terms IS NOT NULL
                        THEN @extschema@.council_search_snippet_of_terms(s.body, t.terms, tsq, snippet_options)
                        ELSE @extschema@.council_search_snippet(
                                 s.body,
                                 (SELECT d.document FROM @extschema@.council_search_documents d
                                  WHERE d.ctid OPERATOR(pg_catalog.=) t.place),
                                 tsq, snippet_options)
                   END
            FROM top t
            CROSS JOIN LATERAL (
                SELECT c.title, CASE t.kind
                       WHEN 'title' THEN c.title
                       WHEN 'user_message' THEN (SELECT m.content FROM @extschema@.messages m
                                                 WHERE m.id OPERATOR(pg_catalog.=) t.row_id)
                       WHEN 'stage1' THEN (SELECT r.response FROM @extschema@.stage1_responses r
                                           WHERE r.id OPERATOR(pg_catalog.=) t.row_id)
                       ELSE (SELECT r.response FROM @extschema@.stage3_synthesis r
                             WHERE r.id OPERATOR(pg_catalog.=) t.row_id)
                       END AS body
                FROM (SELECT) AS one
                LEFT JOIN @extschema@.conversations c ON c.id OPERATOR(pg_catalog.=) t.conversation_id) s
            WHERE (SELECT count(*) FROM listed) OPERATOR(pg_catalog.>=) need
               OR (SELECT count(*) OPERATOR(pg_catalog.>=) coalesce(max(h.matches), 0) FROM hits h)
            ORDER BY t.rank DESC, t.created_at DESC NULLS LAST, t.kind, t.row_id, t.conversation_id;
            EXIT WHEN FOUND;
            SELECT count(d.doc), count(*), coalesce(max(h.matches), 0) INTO listed, returned, total
            FROM @extschema@.council_search_matches(tsq, prepared, wanted,
                                                    '@extschema@.council_search_postings'::regclass) h
            LEFT JOIN @extschema@.council_search_documents d
                   ON d.doc OPERATOR(pg_catalog.=) h.doc AND d.indexed;
        ELSE
            RETURN QUERY EXECUTE
                'WITH hits AS MATERIALIZED (
                     SELECT h.doc, h.rank, h.matches, h.terms
                     FROM @extschema@.council_search_matches($1, $11, $12,
                                                             ''@extschema@.council_search_postings''::regclass, $14) h),
                 listed AS MATERIALIZED (
                     SELECT d.ctid AS place, d.kind, d.row_id, d.message_id, d.conversation_id, d.model,
                            d.created_at, d.config, h.rank, h.terms
                     FROM hits h
                     JOIN @extschema@.council_search_documents d
                       ON d.doc OPERATOR(pg_catalog.=) h.doc AND d.indexed' || filters || '),
                 top AS (
                     SELECT * FROM listed
                     UNION ALL
                     SELECT d.ctid, d.kind, d.row_id, d.message_id, d.conversation_id, d.model,
                            d.created_at, d.config, @extschema@.council_search_score(d.document, $11),
                            NULL::bytea
                     FROM @extschema@.council_search_documents d
                     WHERE NOT d.indexed AND d.document OPERATOR(pg_catalog.@@) $1' || filters || '
                     ORDER BY rank DESC, created_at DESC NULLS LAST, kind, row_id, conversation_id
                     LIMIT $7 OFFSET $8)
                 SELECT t.kind, t.conversation_id, t.message_id, t.row_id, t.model, t.created_at, s.title, t.rank,
                        CASE WHEN t.config OPERATOR(pg_catalog.<>) ''@extschema@.council_english''::regconfig
                             THEN ts_headline($9, s.body, $1, $10)
                             WHEN t.terms IS NOT NULL
                             THEN @extschema@.council_search_snippet_of_terms(s.body, t.terms, $1, $10)
                             ELSE @extschema@.council_search_snippet(
                                      s.body,
                                      (SELECT d.document FROM @extschema@.council_search_documents d
                                       WHERE d.ctid OPERATOR(pg_catalog.=) t.place),
                                      $1, $10)
                        END
                 FROM top t
                 CROSS JOIN LATERAL (
                     SELECT c.title, CASE t.kind
                            WHEN ''title'' THEN c.title
                            WHEN ''user_message'' THEN (SELECT m.content FROM @extschema@.messages m
                                                       WHERE m.id OPERATOR(pg_catalog.=) t.row_id)
                            WHEN ''stage1'' THEN (SELECT r.response FROM @extschema@.stage1_responses r
                                                 WHERE r.id OPERATOR(pg_catalog.=) t.row_id)
                            ELSE (SELECT r.response FROM @extschema@.stage3_synthesis r
                                  WHERE r.id OPERATOR(pg_catalog.=) t.row_id)
                            END AS body
                     FROM (SELECT) AS one
                     LEFT JOIN @extschema@.conversations c ON c.id OPERATOR(pg_catalog.=) t.conversation_id) s
                 WHERE (SELECT count(*) FROM listed) OPERATOR(pg_catalog.>=) $13
                    OR (SELECT count(*) OPERATOR(pg_catalog.>=) coalesce(max(h.matches), 0) FROM hits h)
                 ORDER BY t.rank DESC, t.created_at DESC NULLS LAST, t.kind, t.row_id, t.conversation_id'
            USING tsq, conversation, by_model, since, until, kinds, "limit", "offset", cfg, snippet_options,
                  prepared, wanted, need, within;
            EXIT WHEN FOUND;
            EXECUTE
                'SELECT count(d.doc), count(*), coalesce(max(h.matches), 0)
                 FROM @extschema@.council_search_matches($1, $8, $7,
                                                         ''@extschema@.council_search_postings''::regclass, $9) h
                 LEFT JOIN @extschema@.council_search_documents d
                        ON d.doc OPERATOR(pg_catalog.=) h.doc AND d.indexed' || filters
            INTO listed, returned, total
            USING tsq, conversation, by_model, since, until, kinds, wanted, prepared, within;
        END IF;
        -- nothing returned: the page is empty, or more are needed
        EXIT WHEN listed OPERATOR(pg_catalog.>=) need OR returned OPERATOR(pg_catalog.>=) total;
        wanted := least(wanted::bigint OPERATOR(pg_catalog.*) 8, 2147483647);
    END LOOP;
END
$$;

-- Ranked search, by BM25 (council_search_score): query is web-search syntax (websearch_to_tsquery: words,
-- "a phrase", or, -word), read in llm_council.search_config. Filters are
-- optional: one conversation, one model (by_model: a stage 1 model or a
-- stage 3 chairman), the time range [since, until) of the row, and the
-- kinds of text. The snippet is ts_headline's, with snippet_options passed
-- through; for a document parsed with council_english it is made from the
-- document's positions (council_search_snippet), the same snippet without
-- parsing the text again.
-- Runs with the caller's rights: it needs SELECT on
-- council_search_documents, and on the tables whose text it shows.
-- A search without filters, by a caller who may read the tables whole,
-- is made at once in Rust (search::entry): the page below the executor,
-- with no PL/pgSQL call between; any other goes to
-- council_search_statement.
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
LANGUAGE c STABLE
AS 'MODULE_PATHNAME', 'council_search_wrapper';

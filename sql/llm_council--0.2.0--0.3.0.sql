-- Generated from sql/upgrade/0.2.0--0.3.0.sql by tests/schema.rs; edit the template, then
-- LLM_COUNCIL_WRITE_UPGRADES=1 cargo test --features cluster-tests --test schema every_upgrade_script
-- llm_council 0.2.0 -> 0.3.0
\echo Use "ALTER EXTENSION llm_council UPDATE TO '0.3.0'" to load this file. \quit

-- llm_council.search: whether search documents are kept. The triggers,
-- the bulk fill, the reindex and council_search ask it first.
CREATE  FUNCTION "council_search_enabled"() RETURNS bool /* bool */
STRICT STABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'council_search_enabled_wrapper';
-- The triggers ask it for every row: it looks no name up, and a pinned
-- search_path cost each call a GUC save and restore.
ALTER FUNCTION @extschema@.council_search_deferred(oid) RESET search_path;

-- BM25 ranking: the corpus's statistics (each lexeme's are kept beside
-- its list, below), their refresh, and the score.
CREATE TABLE @extschema@.council_search_statistics (
    documents      bigint NOT NULL,
    average_length double precision NOT NULL,
    analyzed_at    timestamptz NOT NULL
);
CREATE UNIQUE INDEX council_search_statistics_one
    ON @extschema@.council_search_statistics ((true));

-- The search's own inverted index: the documents get an id, and whether
-- the postings hold them; the GIN index keeps the rest. The documents
-- there are go into the postings the analyze at the end builds, so the
-- GIN index is built empty. The index that finds a row's document is
-- made again with the row's id first, after the table is rewritten.
DROP INDEX @extschema@.council_search_documents_row;
ALTER TABLE @extschema@.council_search_documents
    ADD COLUMN doc bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ADD COLUMN indexed boolean NOT NULL DEFAULT true;
ALTER TABLE @extschema@.council_search_documents ALTER COLUMN indexed SET DEFAULT false;
DROP INDEX @extschema@.council_search_documents_document;
-- A document's tsvector is kept until the postings hold it, which are
-- then its only copy: the analyze at the end moves every one there.
ALTER TABLE @extschema@.council_search_documents ALTER COLUMN document DROP NOT NULL;
CREATE INDEX council_search_documents_document
    ON @extschema@.council_search_documents USING gin (document) WHERE NOT indexed;
CREATE INDEX council_search_documents_row
    ON @extschema@.council_search_documents (row_id, kind);
CREATE TABLE @extschema@.council_search_postings (
    lexeme      text COLLATE "C" PRIMARY KEY,
    documents   bigint NOT NULL,
    occurrences bigint NOT NULL,
    postings    bytea NOT NULL
);
ALTER TABLE @extschema@.council_search_postings ALTER COLUMN postings SET STORAGE EXTERNAL;
CREATE  FUNCTION "council_search_postings_build"(
	"fresh" oid /* pg_sys :: Oid */
) RETURNS TABLE (
	"lexemes" bigint,  /* i64 */
	"documents" bigint,  /* i64 */
	"occurrences" bigint  /* i64 */
)
STRICT VOLATILE PARALLEL UNSAFE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'council_search_postings_build_wrapper';
CREATE  FUNCTION "council_search_fill_postings"(
	"tables" oid[], /* Vec < pg_sys :: Oid > */
	"config" oid /* pg_sys :: Oid */
) RETURNS TABLE (
	"written" bigint,  /* i64 */
	"lexemes" bigint,  /* i64 */
	"documents" bigint,  /* i64 */
	"occurrences" bigint  /* i64 */
)
STRICT VOLATILE PARALLEL UNSAFE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'council_search_fill_postings_wrapper';
CREATE FUNCTION @extschema@.council_search_matches(query tsquery, prepared bytea, wanted integer,
                                                  postings regclass, within bigint[] DEFAULT NULL)
RETURNS TABLE (doc bigint, rank real, matches bigint, terms bytea)
LANGUAGE c STABLE PARALLEL SAFE ROWS 100
AS 'MODULE_PATHNAME', 'council_search_matches_wrapper';
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
REVOKE EXECUTE ON FUNCTION @extschema@.council_search_analyze() FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION @extschema@.council_search_postings_build(oid) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION @extschema@.council_search_fill_postings(oid[], oid) FROM PUBLIC;
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
CREATE FUNCTION @extschema@.council_search_prepare(lexemes text[], postings regclass, statistics regclass)
RETURNS bytea
LANGUAGE c STABLE PARALLEL SAFE STRICT
AS 'MODULE_PATHNAME', 'council_search_prepare_wrapper';
CREATE  FUNCTION "council_search_score"(
	"document" anyelement, /* AnyElement */
	"query" bytea /* & [u8] */
) RETURNS real /* Result < f32, ErrorReport > */
IMMUTABLE STRICT PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'council_search_score_wrapper';

-- council_english: a text search configuration whose parser splits as
-- SQLite FTS5's unicode61 does.
CREATE  FUNCTION "council_parser_start"(
	"text" internal, /* Internal */
	"length" INT /* i32 */
) RETURNS internal /* Internal */
IMMUTABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'council_parser_start_wrapper';
CREATE  FUNCTION "council_parser_gettoken"(
	"state" internal, /* Internal */
	"token" internal, /* Internal */
	"length" internal /* Internal */
) RETURNS internal /* Internal */
IMMUTABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'council_parser_gettoken_wrapper';
CREATE  FUNCTION "council_parser_end"(
	"_state" internal /* Internal */
) RETURNS void
IMMUTABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'council_parser_end_wrapper';
CREATE  FUNCTION "council_parser_lextype"(
	"_unused" internal /* Internal */
) RETURNS internal /* Internal */
IMMUTABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'council_parser_lextype_wrapper';
-- council_english: English as SQLite FTS5's unicode61 tokenizer splits it.
-- Its parser, council_parser, makes a token of every run of letters and
-- digits, so that the words inside code (tls.createSecureContext), paths,
-- host names, URLs and e-mail addresses are found, which the default
-- parser keeps whole. Words are stemmed as the built-in english does, with
-- its stop words; numbers are kept as they are. Headlines come from
-- PostgreSQL's own prsd_headline, reading the same tokens. It is the
-- search's configuration unless llm_council.search_config names another.

CREATE TEXT SEARCH PARSER @extschema@.council_parser (
    START = @extschema@.council_parser_start,
    GETTOKEN = @extschema@.council_parser_gettoken,
    END = @extschema@.council_parser_end,
    LEXTYPES = @extschema@.council_parser_lextype,
    HEADLINE = pg_catalog.prsd_headline
);

CREATE TEXT SEARCH CONFIGURATION @extschema@.council_english (
    PARSER = @extschema@.council_parser
);

ALTER TEXT SEARCH CONFIGURATION @extschema@.council_english
    ADD MAPPING FOR asciiword, word WITH pg_catalog.english_stem;

ALTER TEXT SEARCH CONFIGURATION @extschema@.council_english
    ADD MAPPING FOR numword, uint WITH pg_catalog.simple;
CREATE FUNCTION @extschema@.council_search_snippet(text text, document tsvector, query tsquery, options text)
RETURNS text
LANGUAGE c IMMUTABLE PARALLEL SAFE STRICT
AS 'MODULE_PATHNAME', 'council_search_snippet_wrapper';
CREATE FUNCTION @extschema@.council_search_snippet_of_terms(text text, terms bytea, query tsquery, options text)
RETURNS text
LANGUAGE c IMMUTABLE PARALLEL SAFE STRICT
AS 'MODULE_PATHNAME', 'council_search_snippet_of_terms_wrapper';
CREATE FUNCTION @extschema@.council_search_stored_documents()
RETURNS TABLE (doc bigint, document tsvector)
LANGUAGE c STABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'council_search_stored_documents_wrapper';
CREATE FUNCTION @extschema@.council_search_document(config regconfig, text text)
RETURNS tsvector
-- as to_tsvector's: worth parallel workers in a bulk fill
LANGUAGE c IMMUTABLE PARALLEL SAFE STRICT COST 100
AS 'MODULE_PATHNAME', 'council_search_document_wrapper';
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
CREATE OR REPLACE FUNCTION @extschema@.council_search_config() RETURNS regconfig
LANGUAGE sql STABLE
AS $$
SELECT CASE WHEN coalesce(pg_catalog.current_setting('llm_council.search_config', true), '')
                 OPERATOR(pg_catalog.=) ANY ('{"",council_english}'::text[])
            THEN '@extschema@.council_english'::regconfig
            ELSE @extschema@.council_search_config_named(
                     pg_catalog.current_setting('llm_council.search_config', true))
       END
$$;

CREATE OR REPLACE FUNCTION @extschema@.council_search_index_conversations() RETURNS trigger
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

CREATE OR REPLACE FUNCTION @extschema@.council_search_index_messages() RETURNS trigger
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

CREATE OR REPLACE FUNCTION @extschema@.council_search_index_stage1() RETURNS trigger
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

CREATE OR REPLACE FUNCTION @extschema@.council_search_index_stage3() RETURNS trigger
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

-- One row trigger per table and event, each with its WHEN, in place of
-- one for every row written.
DROP TRIGGER council_search ON @extschema@.conversations;
DROP TRIGGER council_search ON @extschema@.messages;
DROP TRIGGER council_search ON @extschema@.stage1_responses;
DROP TRIGGER council_search ON @extschema@.stage3_synthesis;
-- The row triggers that keep the search documents (search.sql) current:
-- one per table and event, each with a WHEN that PostgreSQL evaluates
-- itself, as the row is written, before it queues anything. A write that
-- changes no document never calls the trigger's function, whose call (a
-- SECURITY DEFINER PL/pgSQL function with its search_path pinned, set up
-- again for every statement) cost the app's writes a fifth of their time
-- with search off:
-- - llm_council.search = off: no trigger fires;
-- - inside an import that deferred the table's documents, an insert fires
--   none (council_search_deferred);
-- - an insert with nothing to search (an assistant's message) fires none;
-- - an update that changes nothing a document holds (the app touches a
--   conversation's updated_at and message_count on every message) fires
--   none.
-- The functions (search.sql) check none of this again.
-- The conditions are parsed here, once, their operators found in
-- pg_catalog (which an extension's script searches first, and `=` names
-- it): the search_path of a later write cannot change them.

CREATE TRIGGER council_search_insert AFTER INSERT ON @extschema@.conversations
FOR EACH ROW
WHEN (@extschema@.council_search_enabled() AND NEW.title IS NOT NULL
      AND NOT @extschema@.council_search_deferred('@extschema@.conversations'::pg_catalog.regclass))
EXECUTE FUNCTION @extschema@.council_search_index_conversations();
CREATE TRIGGER council_search_update AFTER UPDATE ON @extschema@.conversations
FOR EACH ROW
WHEN (@extschema@.council_search_enabled()
      AND (NEW.id IS DISTINCT FROM OLD.id
           OR NEW.title IS DISTINCT FROM OLD.title
           OR NEW.created_at IS DISTINCT FROM OLD.created_at))
EXECUTE FUNCTION @extschema@.council_search_index_conversations();
CREATE TRIGGER council_search_delete AFTER DELETE ON @extschema@.conversations
FOR EACH ROW WHEN (@extschema@.council_search_enabled())
EXECUTE FUNCTION @extschema@.council_search_index_conversations();
ALTER TABLE @extschema@.conversations
    ENABLE ALWAYS TRIGGER council_search_insert,
    ENABLE ALWAYS TRIGGER council_search_update,
    ENABLE ALWAYS TRIGGER council_search_delete;

CREATE TRIGGER council_search_insert AFTER INSERT ON @extschema@.messages
FOR EACH ROW
WHEN (@extschema@.council_search_enabled()
      AND NEW.role OPERATOR(pg_catalog.=) 'user' AND NEW.content IS NOT NULL
      AND NOT @extschema@.council_search_deferred('@extschema@.messages'::pg_catalog.regclass))
EXECUTE FUNCTION @extschema@.council_search_index_messages();
CREATE TRIGGER council_search_update AFTER UPDATE ON @extschema@.messages
FOR EACH ROW
WHEN (@extschema@.council_search_enabled()
      AND (NEW.id IS DISTINCT FROM OLD.id
           OR NEW.role IS DISTINCT FROM OLD.role
           OR NEW.content IS DISTINCT FROM OLD.content
           OR NEW.conversation_id IS DISTINCT FROM OLD.conversation_id
           OR NEW.created_at IS DISTINCT FROM OLD.created_at))
EXECUTE FUNCTION @extschema@.council_search_index_messages();
CREATE TRIGGER council_search_delete AFTER DELETE ON @extschema@.messages
FOR EACH ROW WHEN (@extschema@.council_search_enabled())
EXECUTE FUNCTION @extschema@.council_search_index_messages();
ALTER TABLE @extschema@.messages
    ENABLE ALWAYS TRIGGER council_search_insert,
    ENABLE ALWAYS TRIGGER council_search_update,
    ENABLE ALWAYS TRIGGER council_search_delete;

CREATE TRIGGER council_search_insert AFTER INSERT ON @extschema@.stage1_responses
FOR EACH ROW
WHEN (@extschema@.council_search_enabled()
      AND NOT @extschema@.council_search_deferred('@extschema@.stage1_responses'::pg_catalog.regclass))
EXECUTE FUNCTION @extschema@.council_search_index_stage1();
CREATE TRIGGER council_search_update AFTER UPDATE ON @extschema@.stage1_responses
FOR EACH ROW
WHEN (@extschema@.council_search_enabled()
      AND (NEW.id IS DISTINCT FROM OLD.id
           OR NEW.message_id IS DISTINCT FROM OLD.message_id
           OR NEW.model IS DISTINCT FROM OLD.model
           OR NEW.response IS DISTINCT FROM OLD.response
           OR NEW.created_at IS DISTINCT FROM OLD.created_at))
EXECUTE FUNCTION @extschema@.council_search_index_stage1();
CREATE TRIGGER council_search_delete AFTER DELETE ON @extschema@.stage1_responses
FOR EACH ROW WHEN (@extschema@.council_search_enabled())
EXECUTE FUNCTION @extschema@.council_search_index_stage1();
ALTER TABLE @extschema@.stage1_responses
    ENABLE ALWAYS TRIGGER council_search_insert,
    ENABLE ALWAYS TRIGGER council_search_update,
    ENABLE ALWAYS TRIGGER council_search_delete;

CREATE TRIGGER council_search_insert AFTER INSERT ON @extschema@.stage3_synthesis
FOR EACH ROW
WHEN (@extschema@.council_search_enabled()
      AND NOT @extschema@.council_search_deferred('@extschema@.stage3_synthesis'::pg_catalog.regclass))
EXECUTE FUNCTION @extschema@.council_search_index_stage3();
CREATE TRIGGER council_search_update AFTER UPDATE ON @extschema@.stage3_synthesis
FOR EACH ROW
WHEN (@extschema@.council_search_enabled()
      AND (NEW.id IS DISTINCT FROM OLD.id
           OR NEW.message_id IS DISTINCT FROM OLD.message_id
           OR NEW.chairman_model IS DISTINCT FROM OLD.chairman_model
           OR NEW.response IS DISTINCT FROM OLD.response
           OR NEW.created_at IS DISTINCT FROM OLD.created_at))
EXECUTE FUNCTION @extschema@.council_search_index_stage3();
CREATE TRIGGER council_search_delete AFTER DELETE ON @extschema@.stage3_synthesis
FOR EACH ROW WHEN (@extschema@.council_search_enabled())
EXECUTE FUNCTION @extschema@.council_search_index_stage3();
ALTER TABLE @extschema@.stage3_synthesis
    ENABLE ALWAYS TRIGGER council_search_insert,
    ENABLE ALWAYS TRIGGER council_search_update,
    ENABLE ALWAYS TRIGGER council_search_delete;

CREATE OR REPLACE FUNCTION @extschema@.council_search_fill(tables regclass[]) RETURNS bigint
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

CREATE OR REPLACE FUNCTION @extschema@.council_search_reindex() RETURNS bigint
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

CREATE OR REPLACE FUNCTION @extschema@.council_search(
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

-- Whoever could search before can now: the statistics and postings
-- council_search reads are granted as the documents were.
DO $$
DECLARE
    reader text;
BEGIN
    FOR reader IN
        SELECT CASE a.grantee WHEN 0 THEN 'PUBLIC'
                    ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(a.grantee)) END
        FROM pg_catalog.pg_class c, pg_catalog.aclexplode(c.relacl) a
        WHERE c.oid OPERATOR(pg_catalog.=) '@extschema@.council_search_documents'::pg_catalog.regclass
          AND a.privilege_type OPERATOR(pg_catalog.=) 'SELECT'
          AND a.grantee OPERATOR(pg_catalog.<>) c.relowner
    LOOP
        EXECUTE 'GRANT SELECT ON @extschema@.council_search_statistics, '
                '@extschema@.council_search_postings TO '
                OPERATOR(pg_catalog.||) reader;
    END LOOP;
END
$$;

-- The rows already there are ranked from now on. Where the configuration
-- in force changed (council_english is the default from 0.3.0 on, where
-- none is set), the documents are parsed again, which also refreshes the
-- statistics: no search mixes documents of two parsers.
DO $$
DECLARE
    stale bigint;
BEGIN
    SELECT count(*) INTO stale FROM @extschema@.council_search_documents d
    WHERE d.config OPERATOR(pg_catalog.<>) @extschema@.council_search_config();
    IF stale OPERATOR(pg_catalog.=) 0 THEN
        PERFORM @extschema@.council_search_analyze();
        RETURN;
    END IF;
    RAISE NOTICE 'llm_council: parsing % search documents again with %',
        stale, @extschema@.council_search_config();
    PERFORM @extschema@.council_search_reindex();
END
$$;

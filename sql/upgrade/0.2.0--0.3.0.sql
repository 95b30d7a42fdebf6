-- llm_council 0.2.0 -> 0.3.0
\echo Use "ALTER EXTENSION llm_council UPDATE TO '0.3.0'" to load this file. \quit

-- llm_council.search: whether search documents are kept. The triggers,
-- the bulk fill, the reindex and council_search ask it first.
-- @create llm_council--0.3.0.sql council_search_enabled
-- The triggers ask it for every row: it looks no name up, and a pinned
-- search_path cost each call a GUC save and restore.
ALTER FUNCTION @extschema@.council_search_deferred(oid) RESET search_path;

-- BM25 ranking: the corpus's statistics (each lexeme's are kept beside
-- its list, below), their refresh, and the score.
-- @create search.sql council_search_statistics
-- @create search.sql council_search_statistics_one

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
-- @create search.sql council_search_documents_document
-- @create search.sql council_search_documents_row
-- @create search.sql council_search_postings
ALTER TABLE @extschema@.council_search_postings ALTER COLUMN postings SET STORAGE EXTERNAL;
-- @create llm_council--0.3.0.sql council_search_postings_build
-- @create llm_council--0.3.0.sql council_search_fill_postings
-- @create search.sql council_search_matches
-- @create search.sql council_search_analyze
REVOKE EXECUTE ON FUNCTION @extschema@.council_search_analyze() FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION @extschema@.council_search_postings_build(oid) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION @extschema@.council_search_fill_postings(oid[], oid) FROM PUBLIC;
-- @create search.sql council_search_statistics_set
REVOKE EXECUTE ON FUNCTION @extschema@.council_search_statistics_set(bigint, bigint) FROM PUBLIC;
-- @create search.sql council_search_prepare
-- @create llm_council--0.3.0.sql council_search_score

-- council_english: a text search configuration whose parser splits as
-- SQLite FTS5's unicode61 does.
-- @create llm_council--0.3.0.sql council_parser_start
-- @create llm_council--0.3.0.sql council_parser_gettoken
-- @create llm_council--0.3.0.sql council_parser_end
-- @create llm_council--0.3.0.sql council_parser_lextype
-- @include text_search.sql
-- @create search.sql council_search_snippet
-- @create search.sql council_search_snippet_of_terms
-- @create search.sql council_search_stored_documents
-- @create search.sql council_search_document
-- @create search.sql council_search_config_named
-- @replace search.sql council_search_config

-- @replace search.sql council_search_index_conversations

-- @replace search.sql council_search_index_messages

-- @replace search.sql council_search_index_stage1

-- @replace search.sql council_search_index_stage3

-- One row trigger per table and event, each with its WHEN, in place of
-- one for every row written.
DROP TRIGGER council_search ON @extschema@.conversations;
DROP TRIGGER council_search ON @extschema@.messages;
DROP TRIGGER council_search ON @extschema@.stage1_responses;
DROP TRIGGER council_search ON @extschema@.stage3_synthesis;
-- @include search_triggers.sql

-- @replace search.sql council_search_fill

-- @replace search.sql council_search_reindex

-- @create search.sql council_search_statement

-- @replace search.sql council_search

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

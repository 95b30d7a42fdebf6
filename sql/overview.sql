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

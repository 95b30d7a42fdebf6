-- llm_council 0.2.0 -> 0.3.0
\echo Use "ALTER EXTENSION llm_council UPDATE TO '0.3.0'" to load this file. \quit

-- llm_council.search: whether search documents are kept. The triggers,
-- the bulk fill, the reindex and council_search ask it first.
-- @create llm_council--0.3.0.sql council_search_enabled

-- @replace search.sql council_search_index_conversations

-- @replace search.sql council_search_index_messages

-- @replace search.sql council_search_index_stage1

-- @replace search.sql council_search_index_stage3

-- @replace search.sql council_search_fill

-- @replace search.sql council_search_reindex

-- @replace search.sql council_search

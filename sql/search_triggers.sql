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

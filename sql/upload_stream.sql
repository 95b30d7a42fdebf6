-- The streamed route for clients: COPY council_upload_stream FROM STDIN
-- (FORMAT binary), one bytea per row, appends to this transaction's upload.
-- Anyone may insert; the trigger checks the privileges on the council tables.
CREATE FUNCTION @extschema@.council_upload_stream_append() RETURNS trigger
SET search_path TO pg_catalog, pg_temp
LANGUAGE c
AS 'MODULE_PATHNAME', 'council_upload_stream_append_wrapper';

CREATE VIEW @extschema@.council_upload_stream (chunk) AS SELECT NULL::bytea WHERE false;

CREATE TRIGGER council_upload_stream_append
INSTEAD OF INSERT ON @extschema@.council_upload_stream
FOR EACH ROW EXECUTE FUNCTION @extschema@.council_upload_stream_append();

GRANT INSERT ON @extschema@.council_upload_stream TO PUBLIC;

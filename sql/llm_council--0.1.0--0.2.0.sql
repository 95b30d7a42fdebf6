-- llm_council 0.1.0 -> 0.2.0
\echo Use "ALTER EXTENSION llm_council UPDATE TO '0.2.0'" to load this file. \quit

-- Streamed uploads: the client appends a council.db in chunks to a temporary
-- file of its transaction, then imports or verifies it. Backend memory holds
-- one chunk, whatever the file's size.
CREATE FUNCTION "council_upload"(
	"chunk" bytea
) RETURNS bigint
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'council_upload_wrapper';

-- psql's route: \lo_import the file, then append the large object.
CREATE FUNCTION "council_upload_large_object"(
	"large_object" oid
) RETURNS bigint
STRICT VOLATILE PARALLEL UNSAFE
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
	"rejected" bigint
)
STRICT VOLATILE PARALLEL UNSAFE
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
LANGUAGE c
AS 'MODULE_PATHNAME', 'council_verify_streamed_wrapper';

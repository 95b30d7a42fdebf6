//! Shared pieces of the integration tests: a cluster with the extension
//! installed, rows in every table, and fingerprints to compare databases by.

// Each test binary compiles this module and uses a part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use council_loader::cluster::{Cluster, ClusterOptions};
use council_loader::sample::{self, SampleOptions, SampleSummary};
use postgres::Client;

/// The tables the extension creates, parents before children.
pub mod debian_text;
pub mod listing;

pub use council_app::tables::EXTENSION as TABLES;

pub fn cluster() -> Cluster {
    Cluster::start_temporary(&ClusterOptions::default()).expect("starting a test cluster")
}

/// The process id of `client`'s backend, to cancel, signal or watch it.
pub fn backend_pid(client: &mut Client) -> i32 {
    client
        .query_one("SELECT pg_backend_pid()", &[])
        .expect("pid")
        .get(0)
}

/// A new database in `cluster` with the extension created in it.
pub fn database_with_extension(cluster: &Cluster, name: &str) -> Client {
    let mut client = cluster.create_database(name).expect("creating a database");
    client
        .batch_execute("CREATE EXTENSION llm_council")
        .expect("CREATE EXTENSION llm_council");
    client
}

/// The extension created in `name`, a database that already exists.
pub fn database_with_extension_in(cluster: &Cluster, name: &str) -> Client {
    let mut client = cluster.connect(name).expect("connecting");
    client
        .batch_execute("CREATE EXTENSION llm_council")
        .expect("CREATE EXTENSION llm_council");
    client
}

/// Rows in all of the extension's tables together.
pub fn total_rows(client: &mut Client) -> i64 {
    TABLES
        .iter()
        .map(|t| -> i64 {
            client
                .query_one(&format!("SELECT count(*) FROM {t}"), &[])
                .expect("count")
                .get(0)
        })
        .sum()
}

/// Puts rows into every table through the app's own kind of statements, so
/// the identity sequences advance as they would in production.
pub fn fill_every_table(client: &mut Client) {
    client
        .batch_execute(
            "INSERT INTO conversations (id, legacy_id, title, created_at, updated_at, is_pinned, message_count)
             VALUES ('6f1c1a52-8d3e-4a57-9a0e-1f4b6c2d9e10', NULL, 'Első beszélgetés ✓', '2026-01-17 10:20:30.123456+00', now(), true, 2),
                    ('0b9a2f37-5c4d-5e6f-8a7b-9c0d1e2f3a4b', 'import-2025-0042', NULL, NULL, NULL, false, 0);
             INSERT INTO messages (conversation_id, role, content)
             VALUES ('6f1c1a52-8d3e-4a57-9a0e-1f4b6c2d9e10', 'user', 'What is 2+2? \"quoted\" \\ back'),
                    ('6f1c1a52-8d3e-4a57-9a0e-1f4b6c2d9e10', 'assistant', NULL);
             INSERT INTO stage1_responses (message_id, model, response, confidence, base_model, sample_id)
             SELECT id, 'openai/gpt-5', '4', 0.1 + 0.2, 'gpt-5', 2 FROM messages WHERE role = 'assistant';
             INSERT INTO stage2_rankings (message_id, evaluator_model, raw_ranking, parsed_ranking, debate_round, rubric_scores)
             SELECT id, 'anthropic/claude', 'FINAL RANKING: 1. Response A', '[\"Response A\"]', 2, '{\"accuracy\": 9.5}'
             FROM messages WHERE role = 'assistant';
             INSERT INTO stage3_synthesis (message_id, chairman_model, response, meta_evaluation)
             SELECT id, 'google/gemini', 'Four.', NULL FROM messages WHERE role = 'assistant';
             INSERT INTO deliberation_metadata (message_id, label_to_model, aggregate_rankings, voting_method)
             SELECT id, '{\"Response A\": \"openai/gpt-5\"}', '[{\"model\": \"openai/gpt-5\", \"average_rank\": 1.0}]', 'borda'
             FROM messages WHERE role = 'assistant';
             INSERT INTO api_keys (key_hash, key_prefix, name, metadata)
             VALUES ('$2b$12$abcdefghijklmnopqrstuuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ01', 'llmc_abcdefg', 'ci', '{\"team\": \"data\"}');
             INSERT INTO api_key_audit_log (api_key_id, action, endpoint, ip_address, request_id)
             SELECT id, 'request', '/api/conversations', '127.0.0.1', '3f6c0b1e-2a4d-4e5f-9a8b-7c6d5e4f3a2b' FROM api_keys;
             INSERT INTO response_cache (cache_key, query_hash, stage1_data, expires_at, hit_count)
             VALUES ('9f2c0d1e2f3a4b5c6d7e8f9a0b1c2d3e', 'q', '[{\"model\": \"m\"}]', now() + interval '1 hour', 3);
             INSERT INTO council_import_rejects (source_table, source_id, reason, row)
             VALUES ('messages', '17', 'role ''system'' is neither user nor assistant', '{\"id\": 17, \"role\": \"system\"}');",
        )
        .expect("filling every table");
}

/// Every row of every table, as text in id order: equal fingerprints mean
/// equal contents.
pub fn rows_fingerprint(client: &mut Client) -> Vec<(String, i64, String)> {
    TABLES
        .iter()
        .map(|table| {
            // Table names come from the constant list above, never from input.
            let row = client
                .query_one(
                    &format!(
                        "SELECT count(*), coalesce(md5(string_agg(t::text, E'\\n' ORDER BY t.id::text)), '')
                         FROM {table} t"
                    ),
                    &[],
                )
                .expect("fingerprinting a table");
            ((*table).to_owned(), row.get(0), row.get(1))
        })
        .collect()
}

/// The values of the extension's sequences (the test databases hold no
/// others), but the search documents' own ids: derived rows, numbered
/// anew whenever the documents are written, whose sequence a rolled-back
/// write advances as any sequence's nextval does; no id of the app's
/// rows comes from it.
pub fn sequences(client: &mut Client) -> Vec<(String, Option<i64>)> {
    client
        .query(
            "SELECT sequencename::text, last_value FROM pg_sequences
             WHERE schemaname = current_schema()
               AND sequencename <> 'council_search_documents_doc_seq'
             ORDER BY 1",
            &[],
        )
        .expect("reading the sequences")
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect()
}

/// What the extension consists of, in enough detail that an upgrade script
/// that forgot a column, constraint, index or function body shows up.
pub fn catalog_fingerprint(client: &mut Client) -> Vec<String> {
    let queries = [
        // every member object of the extension
        "SELECT pg_describe_object(classid, objid, objsubid) FROM pg_depend
         WHERE refclassid = 'pg_extension'::regclass AND deptype = 'e'
           AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'llm_council')",
        // every column with its type, default and nullability
        "SELECT format('%s.%s %s %s default %s compression %s', c.relname, a.attname,
                       format_type(a.atttypid, a.atttypmod),
                       CASE WHEN a.attnotnull THEN 'not null' ELSE 'null' END,
                       coalesce(pg_get_expr(d.adbin, d.adrelid), a.attidentity::text),
                       a.attcompression)
         FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
         LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
         WHERE c.relnamespace = (SELECT extnamespace FROM pg_extension WHERE extname = 'llm_council')
           AND c.relkind IN ('r', 'v', 'm') AND a.attnum > 0 AND NOT a.attisdropped",
        // constraints and indexes
        "SELECT format('%s %s %s', conrelid::regclass, conname, pg_get_constraintdef(oid)) FROM pg_constraint
         WHERE connamespace = (SELECT extnamespace FROM pg_extension WHERE extname = 'llm_council')",
        "SELECT pg_get_indexdef(indexrelid) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
         WHERE c.relnamespace = (SELECT extnamespace FROM pg_extension WHERE extname = 'llm_council')",
        // functions with their signatures, bodies and settings
        "SELECT pg_get_functiondef(p.oid) FROM pg_proc p
         WHERE p.pronamespace = (SELECT extnamespace FROM pg_extension WHERE extname = 'llm_council')
           AND p.prokind IN ('f', 'p', 'w')",
        // privileges on everything
        "SELECT format('%s %s', c.relname, c.relacl) FROM pg_class c
         WHERE c.relnamespace = (SELECT extnamespace FROM pg_extension WHERE extname = 'llm_council')
         UNION ALL
         SELECT format('%s %s', p.oid::regprocedure, p.proacl) FROM pg_proc p
         WHERE p.pronamespace = (SELECT extnamespace FROM pg_extension WHERE extname = 'llm_council')",
        // triggers on the extension's relations
        "SELECT pg_get_triggerdef(t.oid) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
         WHERE c.relnamespace = (SELECT extnamespace FROM pg_extension WHERE extname = 'llm_council')
           AND NOT t.tgisinternal",
        // what pg_dump keeps
        "SELECT c::regclass::text FROM pg_extension e, unnest(e.extconfig) c WHERE e.extname = 'llm_council'",
    ];
    let mut lines = Vec::new();
    for query in queries {
        let mut rows: Vec<String> = client
            .query(query, &[])
            .expect("reading the catalog")
            .iter()
            .map(|row| row.get::<_, Option<String>>(0).unwrap_or_default())
            .collect();
        rows.sort();
        lines.extend(rows);
    }
    lines
}

/// A sample council.db in a directory the server can read.
pub fn sample_file(
    cluster: &Cluster,
    name: &str,
    options: &SampleOptions,
) -> (PathBuf, SampleSummary) {
    let dir = cluster.scratch_dir().join(name);
    std::fs::create_dir_all(&dir).expect("fixture directory");
    let path = dir.join("council.db");
    let summary = sample::write(&path, options).expect("writing the sample");
    give_tree(cluster, &dir);
    (path, summary)
}

/// The default sample with this many conversations, where the server can
/// read it.
pub fn sample_of(cluster: &Cluster, name: &str, conversations: u64) -> (PathBuf, SampleSummary) {
    let options = SampleOptions {
        conversations,
        ..SampleOptions::default()
    };
    sample_file(cluster, name, &options)
}

/// Gives a directory and the files in it to the server's OS user.
pub fn give_tree(cluster: &Cluster, dir: &Path) {
    cluster.give_to_server(dir).expect("chown");
    for entry in std::fs::read_dir(dir).expect("read_dir") {
        cluster
            .give_to_server(&entry.expect("entry").path())
            .expect("chown");
    }
}

/// Opens a fixture to spoil it: the app's CHECK and FOREIGN KEY
/// constraints off, as in files other tools wrote.
pub fn spoil(path: &Path) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(path).expect("open");
    conn.execute_batch("PRAGMA foreign_keys = OFF; PRAGMA ignore_check_constraints = ON;")
        .expect("pragmas");
    conn
}

/// `pg_dump -Fc` of `from`, then `pg_restore` into a new database `to`.
pub fn dump_and_restore(cluster: &Cluster, from: &str, to: &str) {
    let dump = cluster.scratch_dir().join(format!("{from}.dump"));
    let port = cluster.port().to_string();
    let connection = ["-h", "127.0.0.1", "-p", port.as_str(), "-U", "postgres"];
    let dumped = Command::new(cluster.bin("pg_dump"))
        .env("PGPASSFILE", cluster.passfile())
        .args(connection)
        .args(["-Fc", "-f"])
        .arg(&dump)
        .arg(from)
        .status()
        .expect("running pg_dump");
    assert!(dumped.success(), "pg_dump failed");
    cluster.create_database(to).expect("create database");
    let restored = Command::new(cluster.bin("pg_restore"))
        .env("PGPASSFILE", cluster.passfile())
        .args(connection)
        .args(["--exit-on-error", "-d", to])
        .arg(&dump)
        .status()
        .expect("running pg_restore");
    assert!(restored.success(), "pg_restore failed");
}

/// The one bigint a query returns, such as a count.
pub fn number(client: &mut impl postgres::GenericClient, query: &str) -> i64 {
    client
        .query_one(query, &[])
        .unwrap_or_else(|err| panic!("{query}: {}", message(&err)))
        .get(0)
}

/// The rows of a query of three columns, as tuples.
pub fn triples<A, B, C>(
    client: &mut impl postgres::GenericClient,
    query: &str,
    params: &[&(dyn postgres::types::ToSql + Sync)],
) -> Vec<(A, B, C)>
where
    A: for<'a> postgres::types::FromSql<'a>,
    B: for<'a> postgres::types::FromSql<'a>,
    C: for<'a> postgres::types::FromSql<'a>,
{
    client
        .query(query, params)
        .unwrap_or_else(|err| panic!("{query}: {}", message(&err)))
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

/// The SQLSTATE of a failed statement, or "" for an error that has none.
pub fn sqlstate(err: &postgres::Error) -> String {
    err.code().map(|c| c.code().to_owned()).unwrap_or_default()
}

/// Asserts that `err` came from the server with this SQLSTATE and a message,
/// detail or hint that says `words`.
pub fn assert_error(err: &postgres::Error, state: &str, words: &str) {
    assert_eq!(sqlstate(err), state, "{}", message(err));
    assert!(message(err).contains(words), "{}", message(err));
}

/// A server error's message, detail and hint, for assertions and their
/// failure messages.
pub fn message(err: &postgres::Error) -> String {
    err.as_db_error()
        .map(|e| format!("{} | {:?} | {:?}", e.message(), e.detail(), e.hint()))
        .unwrap_or_else(|| err.to_string())
}

/// Every search document, as text in a stable order: its tsvector as
/// `council_search_documents` keeps it, or the postings once they hold it.
pub fn search_documents(client: &mut impl postgres::GenericClient) -> Vec<String> {
    client
        .query(
            "SELECT format('%s|%s|%s|%s|%s|%s|%s|%s', d.kind, d.row_id, d.message_id, d.conversation_id,
                           d.model, d.created_at, d.config, coalesce(d.document, s.document))
             FROM council_search_documents d
             LEFT JOIN council_search_stored_documents() s ON s.doc = d.doc
             ORDER BY 1",
            &[],
        )
        .expect("reading the search documents")
        .iter()
        .map(|row| row.get(0))
        .collect()
}

/// The search documents are exactly what a rebuild from the tables makes:
/// one per searchable row, none stale, none left over. Needs a superuser
/// (the rebuild is not for PUBLIC); the rebuild is rolled back.
pub fn assert_search_documents_match_the_tables(client: &mut Client) {
    let held = search_documents(client);
    let mut transaction = client.transaction().expect("begin");
    transaction
        .execute("SELECT council_search_reindex()", &[])
        .expect("council_search_reindex");
    let rebuilt = search_documents(&mut transaction);
    transaction.rollback().expect("rollback");
    assert_eq!(held.len(), rebuilt.len(), "documents held, and rebuilt");
    assert_eq!(held, rebuilt, "the documents are what the tables make");
}

//! council_export: the way back. A file the app runs on, holding every row
//! as the app wrote it, proven by importing it again; refused where COPY …
//! TO would be; never half written, never replacing a file.

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use common::{give_tree, sample_file, sample_of};
use council_app::ddl::SCHEMA;
use council_loader::cluster::Cluster;
use council_loader::sample::{Journal, SampleOptions, SchemaVersion};
use postgres::Client;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

fn export(
    client: &mut impl postgres::GenericClient,
    path: &Path,
) -> Result<Vec<(String, i64)>, postgres::Error> {
    Ok(client
        .query(
            "SELECT table_name, rows FROM council_export($1)",
            &[&path.to_string_lossy().as_ref()],
        )?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect())
}

fn import(client: &mut Client, path: &Path) -> i64 {
    client
        .query_one(
            "SELECT sum(imported)::bigint FROM council_import($1)",
            &[&path.to_string_lossy().as_ref()],
        )
        .expect("council_import")
        .get(0)
}

/// (table, source rows, not identical) for each table council_verify
/// reports on `path`.
fn verify(client: &mut Client, path: &Path) -> Vec<(String, i64, i64)> {
    common::triples(
        client,
        "SELECT table_name, source_rows, source_rows - identical FROM council_verify($1)",
        &[&path.to_string_lossy().as_ref()],
    )
}

fn assert_identical(client: &mut Client, path: &Path, what: &str) {
    for (table, rows, off) in verify(client, path) {
        assert_eq!(
            off, 0,
            "{what}: {table}: {off} of {rows} rows not identical"
        );
    }
}

/// A directory the server may write, for it to export into.
fn server_dir(cluster: &Cluster, name: &str) -> PathBuf {
    let dir = cluster.scratch_dir().join(name);
    std::fs::create_dir_all(&dir).expect("directory");
    give_tree(cluster, &dir);
    dir
}

fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// `sqlite_schema` as the app leaves it: what its `schema.sql` creates.
fn schema_of(conn: &rusqlite::Connection) -> Vec<council_file::layout::SchemaRow> {
    council_file::layout::schema(conn).expect("sqlite_schema")
}

fn apps_schema() -> Vec<council_file::layout::SchemaRow> {
    let conn = rusqlite::Connection::open_in_memory().expect("memory");
    conn.execute_batch(SCHEMA).expect("the app's schema.sql");
    schema_of(&conn)
}

/// The app's layout: its columns in order, foreign keys and indexes.
fn apps_layout() -> Vec<String> {
    let conn = rusqlite::Connection::open_in_memory().expect("memory");
    conn.execute_batch(SCHEMA).expect("the app's schema.sql");
    council_file::layout::describe(&conn).expect("layout")
}

/// Runs the app's start-up script on a copy of the file, as the app's next
/// start runs it: it must find everything there and add nothing.
fn assert_the_apps_start_adds_nothing(path: &Path) {
    let dir = tempfile::tempdir().expect("tempdir");
    let copy = dir.path().join("council.db");
    std::fs::copy(path, &copy).expect("copy the export");
    let conn = rusqlite::Connection::open(&copy).expect("open the copy");
    let before = schema_of(&conn);
    conn.execute_batch(SCHEMA).expect("the app's start");
    assert_eq!(
        schema_of(&conn),
        before,
        "the app's start-up script adds nothing"
    );
}

/// The export opened as immutable, which leaves nothing beside it.
fn read_file(path: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open_with_flags(
        council_file::immutable_uri(path),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_URI,
    )
    .expect("open the export")
}

/// Checks the file as the app would find it: SQLite's own checks pass, the
/// schema is the app's, and the header says WAL.
fn assert_the_app_runs_on(path: &Path) {
    let conn = read_file(path);
    let integrity: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity_check");
    assert_eq!(integrity, "ok");
    let broken: i64 = conn
        .query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| {
            r.get(0)
        })
        .expect("foreign_key_check");
    assert_eq!(broken, 0, "foreign_key_check finds nothing");
    assert_eq!(
        schema_of(&conn),
        apps_schema(),
        "the app's schema, text for text"
    );
    assert_eq!(
        council_file::layout::describe(&conn).expect("layout"),
        apps_layout(),
        "pragma table_info, foreign_key_list, index_list and index_xinfo"
    );
    assert_the_apps_start_adds_nothing(path);
    assert_eq!(
        council_file::journal(path).expect("header"),
        council_file::Journal::Wal,
        "the app's journal mode"
    );
}

/// file → import → export → import into a fresh database: the second
/// database holds the original file, and the export holds the first.
fn round_trip(cluster: &Cluster, name: &str, options: &SampleOptions) {
    let (original, _) = sample_file(cluster, name, options);
    let first = format!("{name}_first");
    let second = format!("{name}_second");
    let mut one = common::database_with_extension(cluster, &first);
    import(&mut one, &original);
    let out = server_dir(cluster, &format!("{name}-export")).join("council.db");
    let exported = export(&mut one, &out).expect("council_export");
    let total: i64 = exported.iter().map(|(_, rows)| rows).sum();
    assert_eq!(
        total,
        common::total_rows(&mut one),
        "every row, counted once"
    );
    assert_the_app_runs_on(&out);
    assert_identical(&mut one, &out, "the export against the first database");
    let mut two = common::database_with_extension(cluster, &second);
    import(&mut two, &out);
    assert_identical(
        &mut two,
        &original,
        "the original against the second database",
    );
}

#[test]
fn an_export_imports_back_row_for_row() {
    let cluster = common::cluster();
    round_trip(
        &cluster,
        "trip",
        &SampleOptions {
            conversations: 30,
            journal: Journal::WalUncheckpointed,
            ..SampleOptions::default()
        },
    );
}

#[test]
fn generated_files_of_either_schema_and_journal_survive_the_round_trip() {
    let cluster = common::cluster();
    let strategy = (
        1u64..120,
        any::<u64>(),
        prop_oneof![Just(SchemaVersion::V1), Just(SchemaVersion::V2)],
        prop_oneof![
            Just(Journal::Wal),
            Just(Journal::Delete),
            Just(Journal::WalUncheckpointed)
        ],
    );
    let mut runner = TestRunner::new(Config {
        cases: 6,
        failure_persistence: None,
        ..Config::default()
    });
    let case = std::cell::Cell::new(0);
    runner
        .run(&strategy, |(conversations, seed, schema, journal)| {
            case.set(case.get() + 1);
            round_trip(
                &cluster,
                &format!("case{}", case.get()),
                &SampleOptions {
                    conversations,
                    schema,
                    seed,
                    journal,
                },
            );
            Ok(())
        })
        .expect("every generated file survives the round trip");
}

#[test]
fn rows_the_app_writes_in_postgres_go_out_and_come_back() {
    let cluster = common::cluster();
    // 50 conversations or more have ids the app was given, not UUIDs.
    let (original, _) = sample_of(&cluster, "app", 60);
    let mut one = common::database_with_extension(&cluster, "app_first");
    import(&mut one, &original);
    // After the cutover: the app's PostgreSQL code writes new conversations
    // (UUID ids), messages and stage rows (identity ids), API keys and their
    // audit, and changes rows it had.
    one.batch_execute(
        "INSERT INTO conversations (id, title, created_at, updated_at, message_count)
         VALUES ('6f1c1a52-8d3e-4a57-9a0e-1f4b6c2d9e10', 'Written in PostgreSQL ✓', now(), now(), 2);
         INSERT INTO messages (conversation_id, role, content, created_at)
         VALUES ('6f1c1a52-8d3e-4a57-9a0e-1f4b6c2d9e10', 'user', 'What is 2+2? \"quoted\" \\ back', now()),
                ('6f1c1a52-8d3e-4a57-9a0e-1f4b6c2d9e10', 'assistant', NULL, now());
         INSERT INTO stage1_responses (message_id, model, response, confidence, sample_id, created_at)
         SELECT max(id), 'openai/gpt-5', '4', 0.1 + 0.2, 2, now() FROM messages;
         INSERT INTO stage2_rankings (message_id, evaluator_model, raw_ranking, parsed_ranking, rubric_scores, created_at)
         SELECT max(id), 'anthropic/claude', 'FINAL RANKING: 1. Response A', '[\"Response A\"]',
                '{\"accuracy\": 9.50, \"clarity\": 1e2}', now() FROM messages;
         INSERT INTO stage3_synthesis (message_id, chairman_model, response, created_at)
         SELECT max(id), 'google/gemini', 'Four.', now() FROM messages;
         INSERT INTO deliberation_metadata (message_id, label_to_model, voting_method, created_at)
         SELECT max(id), '{\"Response A\": \"openai/gpt-5\"}', 'borda', now() FROM messages;
         INSERT INTO api_keys (key_hash, key_prefix, name, metadata, expires_at)
         VALUES ('$2b$12$written-in-postgres', 'llmc_pg00000', 'new key', '{\"team\": \"ops\"}', now() + interval '90 days');
         INSERT INTO api_key_audit_log (api_key_id, action, endpoint, created_at)
         SELECT max(id), 'request', '/api/conversations', now() FROM api_keys;
         UPDATE conversations SET title = 'Renamed in PostgreSQL', updated_at = now(), is_pinned = true
         WHERE id = (SELECT id FROM conversations WHERE legacy_id IS NULL ORDER BY id LIMIT 1);
         UPDATE api_keys SET last_used_at = now(), is_active = false WHERE id = (SELECT min(id) FROM api_keys);",
    )
    .expect("the app's writes");
    let out = server_dir(&cluster, "app-export").join("council.db");
    export(&mut one, &out).expect("council_export");
    assert_the_app_runs_on(&out);
    assert_identical(&mut one, &out, "the export against the database");
    let mut two = common::database_with_extension(&cluster, "app_second");
    import(&mut two, &out);
    // The council tables, not the cache or the quarantine, which stay.
    assert_eq!(
        common::rows_fingerprint(&mut two)[..8],
        common::rows_fingerprint(&mut one)[..8],
        "the second database holds what the first did"
    );
    // The app's next row gets the next id: SQLite's AUTOINCREMENT counter
    // is past every exported id.
    let file = read_file(&out);
    for table in ["messages", "api_keys", "api_key_audit_log"] {
        let (counter, max): (i64, i64) = file
            .query_row(
                &format!(
                    "SELECT (SELECT seq FROM sqlite_sequence WHERE name = '{table}'),
                            (SELECT max(id) FROM {table})"
                ),
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .expect("sqlite_sequence");
        assert_eq!(counter, max, "{table}");
    }
    // Ids the app gave that were not canonical UUIDs go back as given.
    let given: Vec<String> = one
        .query(
            "SELECT legacy_id FROM conversations WHERE legacy_id IS NOT NULL ORDER BY 1",
            &[],
        )
        .expect("legacy ids")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(!given.is_empty(), "the sample has legacy ids");
    for id in &given {
        let found: i64 = file
            .query_row(
                "SELECT count(*) FROM conversations WHERE id = ?1",
                [id],
                |r| r.get(0),
            )
            .expect("count");
        assert_eq!(found, 1, "conversation {id} keeps the app's id");
    }
}

#[test]
fn an_export_never_replaces_a_file_and_leaves_nothing_when_it_fails() {
    let cluster = common::cluster();
    let mut client = common::database_with_extension(&cluster, "council");
    common::fill_every_table(&mut client);
    let dir = server_dir(&cluster, "refusals");
    let existing = dir.join("council.db");
    std::fs::write(&existing, b"the app's own file").expect("write");
    let err = export(&mut client, &existing).expect_err("an existing file");
    assert_eq!(common::sqlstate(&err), "58P02", "{}", common::message(&err));
    assert_eq!(
        std::fs::read(&existing).expect("read"),
        b"the app's own file"
    );

    let err = export(&mut client, Path::new("council.db")).expect_err("a relative path");
    assert_eq!(common::sqlstate(&err), "42602", "{}", common::message(&err));

    // A directory root owns (755): the server may not write there.
    let locked = cluster.scratch_dir().join("root-owned");
    std::fs::create_dir_all(&locked).expect("directory");
    let err = export(&mut client, &locked.join("council.db")).expect_err("no write access");
    assert_eq!(common::sqlstate(&err), "42501", "{}", common::message(&err));
    assert!(listing(&locked).is_empty(), "{:?}", listing(&locked));

    let err = export(&mut client, &dir.join("missing").join("council.db"))
        .expect_err("no such directory");
    assert_eq!(common::sqlstate(&err), "58P01", "{}", common::message(&err));

    // A value the app cannot hold: the export stops, names the row, and
    // leaves nothing behind.
    client
        .batch_execute("UPDATE conversations SET created_at = 'infinity' WHERE legacy_id IS NULL")
        .expect("an infinite time");
    let err = export(&mut client, &dir.join("infinite.db")).expect_err("infinity");
    common::assert_error(&err, "22008", "conversations row");
    assert_eq!(listing(&dir), vec!["council.db".to_owned()]);
}

#[test]
fn the_file_appears_when_the_export_commits_and_never_after_a_rollback() {
    let cluster = common::cluster();
    let mut client = common::database_with_extension(&cluster, "council");
    common::fill_every_table(&mut client);
    let dir = server_dir(&cluster, "transactions");
    let path = dir.join("council.db");

    let mut transaction = client.transaction().expect("begin");
    export(&mut transaction, &path).expect("council_export");
    assert!(
        listing(&dir).iter().all(|name| name != "council.db"),
        "not before COMMIT"
    );
    transaction.rollback().expect("rollback");
    assert!(listing(&dir).is_empty(), "{:?}", listing(&dir));

    let mut transaction = client.transaction().expect("begin");
    export(&mut transaction, &path).expect("council_export");
    // Someone else takes the name meanwhile: COMMIT fails, replacing nothing.
    std::fs::write(&path, b"someone else's").expect("write");
    let err = transaction.commit().expect_err("the name is taken");
    assert_eq!(common::sqlstate(&err), "58P02", "{}", common::message(&err));
    assert_eq!(std::fs::read(&path).expect("read"), b"someone else's");
    assert_eq!(listing(&dir), vec!["council.db".to_owned()]);
    std::fs::remove_file(&path).expect("remove");

    let mut transaction = client.transaction().expect("begin");
    export(&mut transaction, &path).expect("council_export");
    transaction.commit().expect("commit");
    assert_eq!(listing(&dir), vec!["council.db".to_owned()]);
    assert_the_app_runs_on(&path);
    let recorded = common::number(
        &mut client,
        "SELECT count(*) FROM council_imports WHERE mode = 'export'",
    );
    assert_eq!(recorded, 1, "only the committed export is recorded");
}

#[test]
fn exporting_takes_what_copy_to_takes_and_streaming_takes_select() {
    let cluster = common::cluster();
    let mut client = common::database_with_extension(&cluster, "council");
    common::fill_every_table(&mut client);
    let dir = server_dir(&cluster, "roles");
    client
        .batch_execute(
            "CREATE ROLE reader;
             GRANT SELECT ON conversations, messages, stage1_responses, stage2_rankings,
                   stage3_synthesis, deliberation_metadata, api_keys, api_key_audit_log TO reader;
             CREATE ROLE stranger;
             CREATE ROLE writer;
             GRANT pg_write_server_files TO writer;",
        )
        .expect("roles");
    let path = dir.join("council.db");

    client.batch_execute("SET ROLE reader").expect("reader");
    let err = export(&mut client, &path).expect_err("no EXECUTE on the path form");
    assert_eq!(common::sqlstate(&err), "42501", "{}", common::message(&err));
    let streamed: Vec<Vec<u8>> = client
        .query("SELECT council_export_stream()", &[])
        .expect("the stream needs only SELECT")
        .iter()
        .map(|r| r.get(0))
        .collect();
    let bytes: usize = streamed.iter().map(Vec::len).sum();
    assert!(bytes > 0);
    client
        .batch_execute("RESET ROLE; SET ROLE stranger")
        .expect("stranger");
    let err = client
        .query("SELECT council_export_stream()", &[])
        .expect_err("no SELECT");
    common::assert_error(&err, "42501", "conversations");

    // With EXECUTE granted, the path form still wants pg_write_server_files.
    client
        .batch_execute("RESET ROLE; GRANT EXECUTE ON FUNCTION council_export(text) TO reader, writer; SET ROLE reader")
        .expect("grant");
    let err = export(&mut client, &path).expect_err("no pg_write_server_files");
    assert_eq!(common::sqlstate(&err), "42501", "{}", common::message(&err));
    assert!(!path.exists());
    client
        .batch_execute("RESET ROLE; SET ROLE writer")
        .expect("writer");
    let err = export(&mut client, &path).expect_err("no SELECT on the tables");
    assert_eq!(common::sqlstate(&err), "42501", "{}", common::message(&err));
    client
        .batch_execute("RESET ROLE; GRANT reader TO writer; SET ROLE writer")
        .expect("writer reads");
    export(&mut client, &path).expect("pg_write_server_files and SELECT suffice");
    // The stream is the same file.
    let streamed: Vec<u8> = streamed.concat();
    assert_eq!(std::fs::read(&path).expect("read"), streamed);
    client.batch_execute("RESET ROLE").expect("reset");
    let recorded: Vec<(String, String, String)> = common::triples(
        &mut client,
        "SELECT role::text, source, mode FROM council_imports WHERE mode = 'export' ORDER BY id",
        &[],
    );
    assert_eq!(
        recorded,
        vec![
            (
                "reader".to_owned(),
                "download".to_owned(),
                "export".to_owned()
            ),
            (
                "writer".to_owned(),
                path.display().to_string(),
                "export".to_owned()
            ),
        ]
    );
}

#[test]
fn an_export_is_one_snapshot_while_the_app_writes() {
    let cluster = common::cluster();
    let mut client = common::database_with_extension(&cluster, "council");
    let (original, _) = sample_of(&cluster, "busy", 200);
    import(&mut client, &original);
    // The app, meanwhile: each conversation with its message, one
    // transaction each.
    let url = cluster.url("council");
    let writing = Arc::new(AtomicBool::new(true));
    let written = Arc::new(AtomicU64::new(0));
    let (still_writing, commits) = (Arc::clone(&writing), Arc::clone(&written));
    let writer = std::thread::spawn(move || {
        let mut app = Client::connect(&url, postgres::NoTls).expect("connect");
        while still_writing.load(Ordering::SeqCst) {
            app.batch_execute(
                "BEGIN;
                 WITH c AS (INSERT INTO conversations (id, title, created_at, updated_at)
                            VALUES (gen_random_uuid(), 'written during the export', now(), now())
                            RETURNING id)
                 INSERT INTO messages (conversation_id, role, content, created_at)
                 SELECT id, 'user', 'written during the export', now() FROM c;
                 COMMIT;",
            )
            .expect("the app's write");
            commits.fetch_add(1, Ordering::SeqCst);
        }
    });
    // The export starts once the app is writing, and runs while it does.
    while written.load(Ordering::SeqCst) == 0 {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    let out = server_dir(&cluster, "busy-export").join("council.db");
    let exported = export(&mut client, &out);
    writing.store(false, Ordering::SeqCst);
    writer.join().expect("writer");
    exported.expect("council_export");
    assert_the_app_runs_on(&out);
    let file = read_file(&out);
    let (conversations, messages): (i64, i64) = file
        .query_row(
            "SELECT (SELECT count(*) FROM conversations WHERE title = 'written during the export'),
                    (SELECT count(*) FROM messages WHERE content = 'written during the export')",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("counts");
    assert_eq!(
        conversations, messages,
        "each of the app's commits whole, or not at all"
    );
}

#[test]
fn a_cancelled_export_leaves_nothing() {
    let cluster = common::cluster();
    let mut client = common::database_with_extension(&cluster, "council");
    let (original, _) = sample_of(&cluster, "cancel", 600);
    import(&mut client, &original);
    let dir = server_dir(&cluster, "cancel-export");
    let pid = common::backend_pid(&mut client);
    let url = cluster.url("council");
    let watched = dir.clone();
    let canceller = std::thread::spawn(move || {
        let mut other = Client::connect(&url, postgres::NoTls).expect("connect");
        // Cancel once the export is under way: its file of a temporary name
        // is in the directory.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while listing(&watched).is_empty() {
            assert!(
                std::time::Instant::now() < deadline,
                "the export never began"
            );
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        other
            .query_one("SELECT pg_cancel_backend($1)", &[&pid])
            .expect("cancel")
            .get::<_, bool>(0)
    });
    let out = dir.join("council.db");
    let result = export(&mut client, &out);
    canceller.join().expect("canceller");
    // All or nothing, whenever the cancel landed.
    match result {
        Ok(_) => {
            assert_eq!(listing(&dir), vec!["council.db".to_owned()]);
            assert_the_app_runs_on(&out);
        }
        Err(err) => {
            assert_eq!(common::sqlstate(&err), "57014", "{}", common::message(&err));
            // The server sends the error before it aborts the transaction,
            // whose end removes a finished file: the next answer on the
            // same session comes after that.
            client
                .batch_execute("SELECT 1")
                .expect("the session, after the abort");
            assert!(listing(&dir).is_empty(), "{:?}", listing(&dir));
        }
    }
}

//! `council_import(…, mode => 'sync')`, the cutover's catch-up: the council
//! tables become equal to the file (new rows inserted, changed rows
//! updated, rows the file lacks deleted), in one transaction, and never
//! over what the app wrote in PostgreSQL.

mod common;

use common::{give_tree, message, sample_file, sample_of};

use std::path::Path;

use council_loader::sample::SampleOptions;
use postgres::Client;

/// Per table: source_rows, imported, skipped, rejected, updated, deleted.
type Report = Vec<(String, [i64; 6])>;

fn sync(client: &mut Client, path: &Path, dry_run: bool) -> Result<Report, postgres::Error> {
    run(client, path, "sync", dry_run)
}

fn run(
    client: &mut Client,
    path: &Path,
    mode: &str,
    dry_run: bool,
) -> Result<Report, postgres::Error> {
    Ok(client
        .query(
            "SELECT table_name, source_rows, imported, skipped, rejected, updated, deleted
             FROM council_import($1, $2, $3)",
            &[&path.to_string_lossy().as_ref(), &mode, &dry_run],
        )?
        .iter()
        .map(|r| {
            (
                r.get(0),
                [r.get(1), r.get(2), r.get(3), r.get(4), r.get(5), r.get(6)],
            )
        })
        .collect())
}

fn counts_of(report: &Report, table: &str) -> [i64; 6] {
    report
        .iter()
        .find(|(name, _)| name == table)
        .map(|(_, counts)| *counts)
        .unwrap_or_else(|| panic!("{table} is not in the report {report:?}"))
}

fn imports_recorded(client: &mut Client) -> i64 {
    client
        .query_one("SELECT count(*) FROM council_imports", &[])
        .expect("counting council_imports")
        .get(0)
}

/// Every file row identical in the database, and nothing more there.
fn assert_equal_to_the_file(client: &mut Client, path: &Path) {
    let rows = client
        .query(
            "SELECT table_name, source_rows, identical, missing, differing FROM council_verify($1)",
            &[&path.to_string_lossy().as_ref()],
        )
        .expect("council_verify");
    for row in rows {
        let table: String = row.get(0);
        let (source, identical, missing, differing): (i64, i64, i64, i64) =
            (row.get(1), row.get(2), row.get(3), row.get(4));
        assert_eq!(
            (identical, missing, differing),
            (source, 0, 0),
            "{table}: every row identical"
        );
        let held: i64 = client
            .query_one(&format!("SELECT count(*) FROM {table}"), &[])
            .expect("count")
            .get(0);
        assert_eq!(held, source, "{table} holds the file's rows and no others");
    }
}

/// The app's own kinds of change, each in its own row, and one change to a
/// column of every other table; what each table should then report as
/// (imported, updated, deleted).
fn change_like_the_app(path: &Path) -> Vec<(&'static str, [i64; 3])> {
    let file = rusqlite::Connection::open(path).expect("open the file");
    file.execute_batch("PRAGMA foreign_keys = ON")
        .expect("pragma");
    let count = |sql: &str| -> i64 { file.query_row(sql, [], |r| r.get(0)).expect(sql) };
    let nth_conversation =
        |n: u32| format!("(SELECT id FROM conversations ORDER BY id LIMIT 1 OFFSET {n})");
    let message_of = |n: u32| {
        format!(
            "(SELECT min(id) FROM messages WHERE role = 'assistant' AND conversation_id = {})",
            nth_conversation(n)
        )
    };

    // The deleted conversation's rows go with it (ON DELETE CASCADE), so
    // they are counted first.
    let doomed = nth_conversation(6);
    let doomed_messages = format!("(SELECT id FROM messages WHERE conversation_id = {doomed})");
    let gone = |table: &str| {
        count(&format!(
            "SELECT count(*) FROM {table} WHERE message_id IN {doomed_messages}"
        ))
    };
    let deleted_messages = count(&format!("SELECT count(*) FROM {doomed_messages} m"));
    let deleted = [
        gone("stage1_responses"),
        gone("stage2_rankings"),
        gone("stage3_synthesis"),
        gone("deliberation_metadata"),
    ];
    let doomed_key = "(SELECT max(id) FROM api_keys)";
    let deleted_audit = count(&format!(
        "SELECT count(*) FROM api_key_audit_log WHERE api_key_id = {doomed_key}"
    ));
    let keys = count("SELECT count(*) FROM api_keys");
    assert!(
        keys >= 3,
        "the sample has three api keys or more, has {keys}"
    );

    let statements = [
        // what the app changes
        format!("UPDATE conversations SET title = 'Renamed by the user' WHERE id = {}", nth_conversation(0)),
        format!("UPDATE conversations SET updated_at = '2026-11-20T10:00:00.123456' WHERE id = {}", nth_conversation(1)),
        format!("UPDATE conversations SET message_count = message_count + 2 WHERE id = {}", nth_conversation(2)),
        format!("UPDATE conversations SET is_pinned = 1 WHERE id = {}", nth_conversation(3)),
        format!("UPDATE conversations SET is_hidden = 1 WHERE id = {}", nth_conversation(4)),
        "UPDATE api_keys SET last_used_at = '2026-11-21 08:30:00' WHERE id = (SELECT min(id) FROM api_keys)".into(),
        "UPDATE api_keys SET is_active = 0 WHERE id = (SELECT min(id) + 1 FROM api_keys)".into(),
        // a column of every other table
        format!("UPDATE messages SET content = 'edited' WHERE id = {}", message_of(0)),
        format!("UPDATE stage1_responses SET confidence = 0.125 WHERE id = (SELECT min(id) FROM stage1_responses WHERE message_id = {})", message_of(0)),
        format!("UPDATE stage2_rankings SET parsed_ranking = '[\"Response B\", \"Response A\"]' WHERE id = (SELECT min(id) FROM stage2_rankings WHERE message_id = {})", message_of(0)),
        format!("UPDATE stage3_synthesis SET meta_evaluation = 'revised' WHERE id = (SELECT min(id) FROM stage3_synthesis WHERE message_id = {})", message_of(0)),
        format!("UPDATE deliberation_metadata SET consensus = '{{\"level\": \"low\"}}' WHERE message_id = {}", message_of(0)),
        "UPDATE api_key_audit_log SET endpoint = '/v2/moved' WHERE id =
         (SELECT min(id) FROM api_key_audit_log WHERE api_key_id = (SELECT min(id) FROM api_keys))".into(),
        // what the app deletes (the key before a new one takes the highest id)
        format!("DELETE FROM conversations WHERE id = {doomed}"),
        format!("DELETE FROM api_keys WHERE id = {doomed_key}"),
        // what the app adds
        "INSERT INTO conversations (id, title, created_at, updated_at, message_count)
         VALUES ('6a1f0c1e-3b0a-4a57-9d59-5a8e2d0c7f11', 'New', '2026-11-22T09:00:00', '2026-11-22T09:01:00', 2)".into(),
        "INSERT INTO messages (conversation_id, role, content, created_at) VALUES
         ('6a1f0c1e-3b0a-4a57-9d59-5a8e2d0c7f11', 'user', 'a new question', '2026-11-22T09:00:00'),
         ('6a1f0c1e-3b0a-4a57-9d59-5a8e2d0c7f11', 'assistant', NULL, '2026-11-22T09:01:00')".into(),
        "INSERT INTO stage1_responses (message_id, model, response, created_at)
         VALUES ((SELECT max(id) FROM messages), 'model-a', 'an answer', '2026-11-22T09:00:30')".into(),
        "INSERT INTO api_keys (key_hash, key_prefix, name) VALUES ('hash-of-a-new-key', 'llmc_new0000', 'new key')".into(),
        "INSERT INTO api_key_audit_log (api_key_id, action, endpoint)
         VALUES ((SELECT max(id) FROM api_keys), 'created', '/v1/keys')".into(),
    ];
    for statement in &statements {
        let changed = file.execute(statement, []).expect(statement);
        let rows = if statement.contains("'a new question'") {
            2
        } else {
            1
        };
        assert_eq!(changed, rows, "{statement}");
    }
    drop(file);
    vec![
        ("conversations", [1, 5, 1]),
        ("messages", [2, 1, deleted_messages]),
        ("stage1_responses", [1, 1, deleted[0]]),
        ("stage2_rankings", [0, 1, deleted[1]]),
        ("stage3_synthesis", [0, 1, deleted[2]]),
        ("deliberation_metadata", [0, 1, deleted[3]]),
        ("api_keys", [1, 2, 1]),
        ("api_key_audit_log", [1, 1, deleted_audit]),
    ]
}

/// A role with the privileges an importer needs, and no more: not a
/// superuser, no rights on council_imports.
fn become_importer(client: &mut Client) {
    client
        .batch_execute(
            "CREATE ROLE importer;
             GRANT pg_read_server_files TO importer;
             GRANT SELECT, INSERT, UPDATE, DELETE ON conversations, messages, stage1_responses,
                   stage2_rankings, stage3_synthesis, deliberation_metadata, api_keys,
                   api_key_audit_log TO importer;
             GRANT SELECT, INSERT ON council_import_rejects TO importer;
             GRANT SELECT ON response_cache TO importer;
             GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO importer;
             REVOKE ALL ON council_imports FROM importer;
             GRANT EXECUTE ON FUNCTION council_import(text, text, boolean),
                   council_verify(text) TO importer;
             SET ROLE importer;",
        )
        .expect("becoming a non-superuser importer");
}

#[test]
fn a_sync_carries_every_change_the_app_makes_and_only_those() {
    let cluster = common::cluster();
    let mut client = common::database_with_extension(&cluster, "council");
    let options = SampleOptions {
        conversations: 12,
        ..SampleOptions::default()
    };
    let (path, _) = sample_file(&cluster, "sync", &options);
    become_importer(&mut client);
    run(&mut client, &path, "strict", false).expect("the first import");

    let expected = change_like_the_app(&path);
    give_tree(&cluster, path.parent().unwrap_or(Path::new("/")));

    let planned = sync(&mut client, &path, true).expect("the dry run");
    let before = common::rows_fingerprint(&mut client);
    let report = sync(&mut client, &path, false).expect("the sync");
    assert_eq!(planned, report, "the dry run shows the plan");
    assert_ne!(before, common::rows_fingerprint(&mut client));
    for (table, [imported, updated, deleted]) in &expected {
        let [source, got_imported, skipped, rejected, got_updated, got_deleted] =
            counts_of(&report, table);
        assert_eq!(
            (got_imported, got_updated, got_deleted, rejected),
            (*imported, *updated, *deleted, 0),
            "{table}: imported, updated, deleted, rejected in {report:?}"
        );
        assert_eq!(
            source,
            got_imported + got_updated + skipped,
            "{table}: every row of the file is accounted for"
        );
    }
    assert_equal_to_the_file(&mut client, &path);

    // The rows the sync wrote count as imported: the next sync finds
    // nothing to do and its guard lets it.
    let again = sync(&mut client, &path, false).expect("a second sync");
    for (table, [source, imported, skipped, rejected, updated, deleted]) in &again {
        assert_eq!(
            (*imported, *skipped, *rejected, *updated, *deleted),
            (0, *source, 0, 0, 0),
            "{table}: nothing left to do"
        );
    }
    client.batch_execute("RESET ROLE").expect("reset role");
    // every change reached the search documents
    common::assert_search_documents_match_the_tables(&mut client);
    let recorded: Vec<(String, String, i64)> = common::triples(
        &mut client,
        "SELECT mode, role::text, (rows -> 'conversations' ->> 'deleted')::bigint
             FROM council_imports ORDER BY id",
        &[],
    );
    assert_eq!(
        recorded,
        vec![
            ("strict".to_owned(), "importer".to_owned(), 0),
            ("sync".to_owned(), "importer".to_owned(), 1),
            ("sync".to_owned(), "importer".to_owned(), 0),
        ],
        "each committed import and sync is recorded, dry runs are not"
    );
    let next_message = common::number(
        &mut client,
        "SELECT nextval('messages_id_seq') - (SELECT max(id) FROM messages)",
    );
    assert!(next_message > 0, "the sequence is past the synced ids");
}

#[test]
fn the_guard_refuses_to_erase_what_the_app_wrote_in_postgres() {
    let cluster = common::cluster();
    let mut client = common::database_with_extension(&cluster, "council");
    let (path, _) = sample_of(&cluster, "guard", 5);
    run(&mut client, &path, "strict", false).expect("the first import");
    let recorded = imports_recorded(&mut client);

    // The app, pointed at PostgreSQL, adds a message: the file lacks it.
    let id = common::number(
        &mut client,
        "INSERT INTO messages (conversation_id, role, content)
             SELECT id, 'user', 'asked after the cutover' FROM conversations ORDER BY id LIMIT 1
             RETURNING id",
    );
    let rows = common::rows_fingerprint(&mut client);
    for dry_run in [true, false] {
        let err = sync(&mut client, &path, dry_run).expect_err("a sync would delete it");
        common::assert_error(&err, "55000", &format!("would delete messages row {id}"));
    }
    assert_eq!(
        common::rows_fingerprint(&mut client),
        rows,
        "nothing changed"
    );
    client
        .batch_execute(&format!("DELETE FROM messages WHERE id = {id}"))
        .expect("undo");

    // The app renames a conversation: the file has the old title.
    client
        .batch_execute(
            "UPDATE conversations SET title = 'renamed in PostgreSQL'
             WHERE id = (SELECT id FROM conversations ORDER BY id LIMIT 1)",
        )
        .expect("the app's update");
    let err = sync(&mut client, &path, false).expect_err("a sync would overwrite it");
    common::assert_error(&err, "55000", "would overwrite conversations row");
    let title: String = client
        .query_one("SELECT title FROM conversations ORDER BY id LIMIT 1", &[])
        .expect("title")
        .get(0);
    assert_eq!(title, "renamed in PostgreSQL");
    assert_eq!(imports_recorded(&mut client), recorded, "no sync recorded");

    // Adding the file's new rows stays possible, without touching the
    // app's: quarantine keeps the changed row as it is.
    let report = run(&mut client, &path, "quarantine", false).expect("quarantine");
    assert_eq!(counts_of(&report, "conversations")[3], 1, "{report:?}");
}

#[test]
fn a_file_of_another_deployment_is_refused() {
    let cluster = common::cluster();
    let mut client = common::database_with_extension(&cluster, "council");
    let ours = SampleOptions {
        conversations: 5,
        ..SampleOptions::default()
    };
    let theirs = SampleOptions {
        seed: 2,
        ..ours.clone()
    };
    let (path, _) = sample_file(&cluster, "ours", &ours);
    let (other, _) = sample_file(&cluster, "theirs", &theirs);
    run(&mut client, &path, "strict", false).expect("the first import");
    let rows = common::rows_fingerprint(&mut client);

    let err = sync(&mut client, &other, false).expect_err("another deployment's file");
    common::assert_error(&err, "55000", "none of the database's 5 conversations");
    assert_eq!(
        common::rows_fingerprint(&mut client),
        rows,
        "nothing changed"
    );
}

#[test]
fn a_sync_that_fails_partway_leaves_everything_as_it_was() {
    let cluster = common::cluster();
    let mut client = common::database_with_extension(&cluster, "council");
    let (path, _) = sample_of(&cluster, "partway", 12);
    run(&mut client, &path, "strict", false).expect("the first import");
    change_like_the_app(&path);
    // The last table read holds a time that is no time: every table before
    // it has been written when the sync meets it.
    let file = common::spoil(&path);
    file.execute(
        "UPDATE api_key_audit_log SET created_at = 'last tuesday' WHERE id = (SELECT max(id) FROM api_key_audit_log)",
        [],
    )
    .expect("spoil");
    drop(file);
    give_tree(&cluster, path.parent().unwrap_or(Path::new("/")));
    let rows = common::rows_fingerprint(&mut client);
    let sequences = common::sequences(&mut client);
    let recorded = imports_recorded(&mut client);

    let err = sync(&mut client, &path, false).expect_err("a bad row");
    common::assert_error(&err, "22007", "api_key_audit_log");
    assert!(
        message(&err).contains("every row or none"),
        "{}",
        message(&err)
    );
    assert_eq!(common::rows_fingerprint(&mut client), rows);
    assert_eq!(common::sequences(&mut client), sequences);
    assert_eq!(imports_recorded(&mut client), recorded);
}

#[test]
fn rows_in_any_order_compare_alike() {
    let cluster = common::cluster();
    let mut client = common::database_with_extension(&cluster, "council");
    let (path, _) = sample_of(&cluster, "order", 8);
    run(&mut client, &path, "strict", false).expect("the first import");
    // A table without INTEGER PRIMARY KEY is read in the order its rows
    // were written: here, ids descending. A sync finds the rows such a
    // table lacks otherwise than for a table read in id order, whose last
    // row goes here too.
    let file = common::spoil(&path);
    file.execute_batch(
        "CREATE TABLE reversed AS SELECT * FROM messages ORDER BY id DESC;
         DROP TABLE messages;
         ALTER TABLE reversed RENAME TO messages;
         UPDATE messages SET content = 'edited' WHERE id = (SELECT min(id) FROM messages WHERE role = 'user');
         CREATE TABLE reversed AS SELECT * FROM stage1_responses ORDER BY id DESC;
         DROP TABLE stage1_responses;
         ALTER TABLE reversed RENAME TO stage1_responses;
         DELETE FROM stage1_responses WHERE id = (SELECT min(id) + 1 FROM stage1_responses);
         DELETE FROM stage2_rankings WHERE id = (SELECT max(id) FROM stage2_rankings);",
    )
    .expect("reversing messages and stage1_responses");
    drop(file);
    give_tree(&cluster, path.parent().unwrap_or(Path::new("/")));

    let verified = client
        .query(
            "SELECT source_rows, identical, missing, differing FROM council_verify($1)
             WHERE table_name = 'messages'",
            &[&path.to_string_lossy().as_ref()],
        )
        .expect("council_verify");
    let (source, identical, missing, differing): (i64, i64, i64, i64) = (
        verified[0].get(0),
        verified[0].get(1),
        verified[0].get(2),
        verified[0].get(3),
    );
    assert_eq!((identical, missing, differing), (source - 1, 0, 1));
    let report = sync(&mut client, &path, false).expect("the sync");
    let [source, imported, skipped, _, updated, deleted] = counts_of(&report, "messages");
    assert_eq!(
        (imported, skipped, updated, deleted),
        (0, source - 1, 1, 0),
        "{report:?}"
    );
    for table in ["stage1_responses", "stage2_rankings"] {
        let [source, imported, skipped, _, updated, deleted] = counts_of(&report, table);
        assert_eq!(
            (imported, skipped, updated, deleted),
            (0, source, 0, 1),
            "{table}: {report:?}"
        );
    }
    assert_equal_to_the_file(&mut client, &path);
}

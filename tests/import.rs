//! council_import against real clusters and real SQLite files: every row
//! arrives, or is skipped or rejected with a reason; failures leave the
//! database as it was.

mod common;

use common::{give_tree, message, sample_file, sample_of, spoil, sqlstate};

use std::path::Path;

use council_loader::sample::{Journal, SampleOptions, SchemaVersion};
use postgres::Client;

type Report = Vec<(String, i64, i64, i64, i64)>;

fn import(client: &mut Client, path: &Path, mode: &str) -> Result<Report, postgres::Error> {
    Ok(client
        .query(
            "SELECT table_name, source_rows, imported, skipped, rejected
             FROM council_import($1, $2)",
            &[&path.to_string_lossy().as_ref(), &mode],
        )?
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
        .collect())
}

/// A connection whose NOTICEs are kept, in the order they came.
fn connect_keeping_notices(
    cluster: &council_loader::cluster::Cluster,
    database: &str,
) -> (Client, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    let notices = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let seen = notices.clone();
    let mut config: postgres::Config = cluster.url(database).parse().expect("url");
    config.notice_callback(move |notice| {
        seen.lock().expect("lock").push(notice.message().to_owned())
    });
    (config.connect(postgres::NoTls).expect("connect"), notices)
}

fn assert_unchanged(client: &mut Client) {
    assert!(
        counts(client).iter().all(|(_, n)| *n == 0),
        "the target is unchanged"
    );
}

fn counts(client: &mut Client) -> Vec<(String, i64)> {
    common::TABLES
        .iter()
        .map(|t| {
            let n: i64 = client
                .query_one(&format!("SELECT count(*) FROM {t}"), &[])
                .expect("count")
                .get(0);
            ((*t).to_owned(), n)
        })
        .collect()
}

#[test]
fn every_row_of_a_v2_file_arrives_and_a_second_import_skips_them_all() {
    let cluster = common::cluster();
    let mut client = common::database_with_extension(&cluster, "council");
    let options = SampleOptions {
        conversations: 60,
        ..SampleOptions::default()
    };
    let (path, summary) = sample_file(&cluster, "v2", &options);

    let report = import(&mut client, &path, "strict").expect("import");
    let expected: Report = summary
        .tables
        .iter()
        .map(|(t, n)| ((*t).to_owned(), *n as i64, *n as i64, 0, 0))
        .collect();
    assert_eq!(report, expected);
    for (table, rows) in &summary.tables {
        let n: i64 = client
            .query_one(&format!("SELECT count(*) FROM {table}"), &[])
            .expect("count")
            .get(0);
        assert_eq!(n, *rows as i64, "rows in {table}");
    }
    // Legacy ids are kept, and '' became NULL rather than a made-up time.
    let legacy = common::number(
        &mut client,
        "SELECT count(*) FROM conversations WHERE legacy_id IS NOT NULL",
    );
    assert!(legacy >= 1, "the sample has caller-supplied ids");
    let undated = common::number(
        &mut client,
        "SELECT count(*) FROM conversations WHERE created_at IS NULL",
    );
    assert!(undated >= 1, "the sample has '' timestamps");

    let again = import(&mut client, &path, "strict").expect("second import");
    let skipped_all: Report = summary
        .tables
        .iter()
        .map(|(t, n)| ((*t).to_owned(), *n as i64, 0, *n as i64, 0))
        .collect();
    assert_eq!(again, skipped_all);

    // The app's next inserts get fresh ids.
    client
        .batch_execute(
            "INSERT INTO messages (conversation_id, role, content) SELECT id, 'user', 'next' FROM conversations LIMIT 1;
             INSERT INTO api_keys (key_hash, key_prefix, name) VALUES ('new-hash', 'llmc_newkey1', 'next');",
        )
        .expect("the app's next insert after an import");
}

#[test]
fn a_v1_file_imports_with_empty_api_key_tables() {
    let cluster = common::cluster();
    let mut client = common::database_with_extension(&cluster, "council");
    let options = SampleOptions {
        conversations: 20,
        schema: SchemaVersion::V1,
        ..SampleOptions::default()
    };
    let (path, summary) = sample_file(&cluster, "v1", &options);
    let report = import(&mut client, &path, "strict").expect("import");
    assert_eq!(report.len(), 8);
    assert_eq!(
        &report[6..],
        &[
            ("api_keys".to_owned(), 0, 0, 0, 0),
            ("api_key_audit_log".to_owned(), 0, 0, 0, 0)
        ]
    );
    let total: i64 = report.iter().map(|r| r.2).sum();
    assert_eq!(total as u64, summary.rows());
}

/// A copy of the council.db at `from` in another layout: every table's
/// columns in reverse order, no index but the key's, no foreign keys.
fn with_columns_reversed(from: &Path, to: &Path) {
    let conn = rusqlite::Connection::open(from).expect("open the sample");
    conn.execute("ATTACH DATABASE ?1 AS other", [to.to_string_lossy()])
        .expect("attach");
    for table in council_app::tables::COUNCIL {
        let mut statement = conn
            .prepare("SELECT name, type FROM pragma_table_info(?1) ORDER BY cid DESC")
            .expect("table_info");
        let columns: Vec<(String, String)> = statement
            .query_map([table], |r| Ok((r.get(0)?, r.get(1)?)))
            .expect("columns")
            .collect::<Result<_, _>>()
            .expect("columns");
        // Names come from the app's table list and the file's own catalog.
        let declared: Vec<String> = columns
            .iter()
            .map(|(name, ty)| match name.as_str() {
                "id" => format!("{name} {ty} PRIMARY KEY"),
                _ => format!("{name} {ty}"),
            })
            .collect();
        let names: Vec<&str> = columns.iter().map(|(name, _)| name.as_str()).collect();
        conn.execute_batch(&format!(
            "CREATE TABLE other.{table} ({}); INSERT INTO other.{table} SELECT {} FROM main.{table};",
            declared.join(", "),
            names.join(", ")
        ))
        .expect("copy the table");
    }
}

#[test]
fn the_column_order_and_the_indexes_of_a_file_do_not_matter() {
    let cluster = common::cluster();
    let (path, _) = sample_file(&cluster, "apps-layout", &SampleOptions::default());
    let other = path.with_file_name("reversed.db");
    with_columns_reversed(&path, &other);
    give_tree(&cluster, path.parent().expect("dir"));
    let mut apps = common::database_with_extension(&cluster, "apps_layout");
    let mut reversed = common::database_with_extension(&cluster, "reversed_layout");
    let first = import(&mut apps, &path, "strict").expect("the app's layout");
    let second = import(&mut reversed, &other, "strict").expect("reversed columns");
    assert_eq!(first, second);
    assert_eq!(
        common::rows_fingerprint(&mut apps),
        common::rows_fingerprint(&mut reversed)
    );
}

#[test]
fn rows_only_in_the_wal_file_arrive() {
    let cluster = common::cluster();
    let mut client = common::database_with_extension(&cluster, "council");
    let options = SampleOptions {
        conversations: 30,
        journal: Journal::WalUncheckpointed,
        ..SampleOptions::default()
    };
    let (path, summary) = sample_file(&cluster, "live", &options);
    assert!(path
        .with_file_name("council.db-wal")
        .metadata()
        .map(|m| m.len() > 0)
        .unwrap_or(false));
    let report = import(&mut client, &path, "strict").expect("import");
    assert_eq!(report[0], ("conversations".to_owned(), 30, 30, 0, 0));
    let total: i64 = report.iter().map(|r| r.2).sum();
    assert_eq!(total as u64, summary.rows());
}

#[test]
fn a_dry_run_reports_and_leaves_nothing() {
    let cluster = common::cluster();
    let mut client = common::database_with_extension(&cluster, "council");
    let (path, summary) = sample_of(&cluster, "dry", 10);
    let imported: i64 = client
        .query_one(
            "SELECT sum(imported)::bigint FROM council_import($1, dry_run => true)",
            &[&path.to_string_lossy().as_ref()],
        )
        .expect("dry run")
        .get(0);
    assert_eq!(imported as u64, summary.rows());
    assert!(
        counts(&mut client).iter().all(|(_, n)| *n == 0),
        "{:?}",
        counts(&mut client)
    );
    // and the session goes on normally
    import(&mut client, &path, "strict").expect("a real import after a dry run");
}

#[test]
fn the_upload_form_needs_only_table_privileges_and_the_path_form_needs_file_access() {
    let cluster = common::cluster();
    let mut admin = common::database_with_extension(&cluster, "council");
    let (path, summary) = sample_of(&cluster, "upload", 10);
    admin
        .batch_execute(
            "CREATE ROLE app LOGIN PASSWORD 'app-secret';
             GRANT INSERT, SELECT, UPDATE ON ALL TABLES IN SCHEMA public TO app;
             GRANT UPDATE, USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO app;",
        )
        .expect("roles");
    let mut app = cluster
        .connect_as("council", "app", "app-secret")
        .expect("connect as app");

    let err = import(&mut app, &path, "strict").expect_err("a plain role cannot read server files");
    assert_eq!(sqlstate(&err), "42501", "{}", message(&err));

    admin
        .batch_execute("GRANT EXECUTE ON FUNCTION council_import(text, text, boolean) TO app")
        .expect("grant");
    let err =
        import(&mut app, &path, "strict").expect_err("EXECUTE alone does not open server files");
    assert_eq!(sqlstate(&err), "42501", "{}", message(&err));

    let bytes = std::fs::read(&path).expect("read the file");
    admin
        .batch_execute("CREATE ROLE nobody LOGIN PASSWORD 'nobody-secret'")
        .expect("role");
    let mut nobody = cluster
        .connect_as("council", "nobody", "nobody-secret")
        .expect("connect as nobody");
    let err = nobody
        .query_one(
            "SELECT sum(imported)::bigint FROM council_import($1::bytea)",
            &[&bytes],
        )
        .expect_err("no INSERT privilege");
    assert_eq!(sqlstate(&err), "42501", "{}", message(&err));

    let imported: i64 = app
        .query_one(
            "SELECT sum(imported)::bigint FROM council_import($1::bytea)",
            &[&bytes],
        )
        .expect("upload")
        .get(0);
    assert_eq!(imported as u64, summary.rows());
}

#[test]
fn a_bad_value_in_strict_mode_names_its_row_and_changes_nothing() {
    let cluster = common::cluster();
    let mut client = common::database_with_extension(&cluster, "council");
    let (path, _) = sample_of(&cluster, "bad", 10);
    let conn = spoil(&path);
    let id: i64 = conn
        .query_row(
            "SELECT max(id) FROM messages WHERE role = 'user'",
            [],
            |r| r.get(0),
        )
        .expect("id");
    conn.execute("UPDATE messages SET role = 'system' WHERE id = ?1", [id])
        .expect("update");
    drop(conn);

    let err = import(&mut client, &path, "strict").expect_err("a role outside user/assistant");
    assert_eq!(sqlstate(&err), "23514", "{}", message(&err));
    let db = err.as_db_error().expect("db error");
    assert!(
        db.message().contains(&format!("messages row {id}")),
        "{}",
        db.message()
    );
    assert!(db.message().contains("column role"), "{}", db.message());
    assert!(db.hint().unwrap_or_default().contains("quarantine"));
    assert_unchanged(&mut client);
}

/// An import into empty tables reads and decides each table's rows on a
/// thread of its own while COPY writes the ones before. A bad row deep in a
/// table, read long after COPY began, still stops a strict import whole;
/// quarantine keeps that row alone; progress comes once per 10,000 rows,
/// in order, from the backend.
#[test]
fn a_bad_row_deep_in_a_table_read_beside_copy_stops_it_whole_and_progress_comes_in_order() {
    let cluster = common::cluster();
    let mut client = common::database_with_extension(&cluster, "council");
    let (path, _) = sample_of(&cluster, "deep", 3);
    let conn = spoil(&path);
    let message_id: i64 = conn
        .query_row(
            "SELECT min(id) FROM messages WHERE role = 'assistant'",
            [],
            |r| r.get(0),
        )
        .expect("an assistant message");
    // about 6 MB of COPY stream: many pieces, the bad row in one of the last
    conn.execute(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 25000)
         INSERT INTO stage1_responses (message_id, model, response, created_at)
         SELECT ?1, 'model ' || (i % 7), 'response ' || i || ' ' || hex(randomblob(100)),
                '2025-01-02 03:04:05'
         FROM n",
        [message_id],
    )
    .expect("many stage 1 rows");
    let (rows, bad): (i64, i64) = conn
        .query_row(
            "SELECT count(*), max(id) - 10 FROM stage1_responses",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("count");
    conn.execute(
        "UPDATE stage1_responses SET created_at = 'not a time' WHERE id = ?1",
        [bad],
    )
    .expect("spoil");
    drop(conn);

    let err = import(&mut client, &path, "strict").expect_err("a bad timestamp");
    assert!(
        message(&err).contains(&format!("stage1_responses row {bad}"))
            && message(&err).contains("created_at"),
        "{}",
        message(&err)
    );
    assert_unchanged(&mut client);

    let (mut noticed, notices) = connect_keeping_notices(&cluster, "council");
    let report = import(&mut noticed, &path, "quarantine").expect("quarantine import");
    let stage1 = report
        .iter()
        .find(|r| r.0 == "stage1_responses")
        .expect("stage1_responses reported");
    assert_eq!(
        (stage1.1, stage1.2, stage1.3, stage1.4),
        (rows, rows - 1, 0, 1),
        "{report:?}"
    );
    assert_eq!(
        common::number(
            &mut client,
            &format!(
                "SELECT count(*) FROM council_import_rejects
                 WHERE source_table = 'stage1_responses' AND source_id = '{bad}'"
            )
        ),
        1
    );
    let progress: Vec<String> = notices
        .lock()
        .expect("lock")
        .iter()
        .filter(|n| n.starts_with("llm_council import: stage1_responses "))
        .cloned()
        .collect();
    assert_eq!(
        progress,
        vec![
            format!("llm_council import: stage1_responses 0/{rows}"),
            format!("llm_council import: stage1_responses 10000/{rows}"),
            format!("llm_council import: stage1_responses 20000/{rows}"),
            format!(
                "llm_council import: stage1_responses done: {} imported, 0 skipped, 1 rejected",
                rows - 1
            ),
        ]
    );
}

/// Each recipe spoils a good sample in one way; quarantine keeps the spoilt
/// row (and the rows that depend on it) in council_import_rejects.
#[test]
fn quarantine_rejects_exactly_the_bad_rows_and_imports_the_rest() {
    let cluster = common::cluster();
    let mut client = common::database_with_extension(&cluster, "council");
    let (path, summary) = sample_of(&cluster, "quarantine", 20);
    let conn = spoil(&path);
    let one = |sql: &str| -> i64 { conn.query_row(sql, [], |r| r.get(0)).expect(sql) };
    // a message whose conversation is rejected takes its stage rows along
    let conversation: String = conn
        .query_row(
            "SELECT id FROM conversations ORDER BY id LIMIT 1",
            [],
            |r| r.get(0),
        )
        .expect("conversation");
    conn.execute(
        "UPDATE conversations SET updated_at = 'not a time' WHERE id = ?1",
        [&conversation],
    )
    .expect("u");
    let dependents = one(&format!(
        "SELECT (SELECT count(*) FROM messages WHERE conversation_id = '{conversation}')
              + (SELECT count(*) FROM stage1_responses WHERE message_id IN (SELECT id FROM messages WHERE conversation_id = '{conversation}'))
              + (SELECT count(*) FROM stage2_rankings WHERE message_id IN (SELECT id FROM messages WHERE conversation_id = '{conversation}'))
              + (SELECT count(*) FROM stage3_synthesis WHERE message_id IN (SELECT id FROM messages WHERE conversation_id = '{conversation}'))
              + (SELECT count(*) FROM deliberation_metadata WHERE message_id IN (SELECT id FROM messages WHERE conversation_id = '{conversation}'))"
    ));
    let other = "(SELECT id FROM conversations ORDER BY id DESC LIMIT 1)";
    let stage = |table: &str| {
        format!("(SELECT max(id) FROM {table} WHERE message_id IN (SELECT id FROM messages WHERE conversation_id = {other}))")
    };
    conn.execute_batch(&format!(
        "UPDATE stage1_responses SET response = CAST(x'61006200' AS TEXT) WHERE id = {s1};
         UPDATE stage1_responses SET model = CAST(x'ff' AS TEXT) WHERE id = (SELECT min(id) FROM stage1_responses WHERE message_id IN (SELECT id FROM messages WHERE conversation_id = {other}));
         UPDATE stage2_rankings SET parsed_ranking = '[\"Response A\"' WHERE id = {s2};
         UPDATE stage2_rankings SET rubric_scores = '{{\"a\": \"\\u0000\"}}' WHERE id = (SELECT min(id) FROM stage2_rankings WHERE message_id IN (SELECT id FROM messages WHERE conversation_id = {other}));
         UPDATE api_keys SET key_prefix = 'llmc_toolong1' WHERE id = (SELECT min(id) FROM api_keys);
         INSERT INTO stage3_synthesis (message_id, chairman_model, response, created_at) VALUES (999999999, 'm', 'orphan', '');
         INSERT INTO messages (id, conversation_id, role, content, created_at) VALUES (3000000000, {other}, 'user', 'big id', '1760000000');",
        s1 = stage("stage1_responses"),
        s2 = stage("stage2_rankings"),
    ))
    .expect("spoiling the sample");
    let audit_of_first_key = one(
        "SELECT count(*) FROM api_key_audit_log WHERE api_key_id = (SELECT min(id) FROM api_keys)",
    );
    drop(conn);

    let report = import(&mut client, &path, "quarantine").expect("quarantine import");
    for (table, source, imported, skipped, rejected) in &report {
        assert_eq!(
            source,
            &(imported + skipped + rejected),
            "nothing lost in {table}"
        );
    }
    let rejected: i64 = report.iter().map(|r| r.4).sum();
    // 1 conversation + its dependents, 2 stage1, 2 stage2, 1 api key + its audit rows, 1 orphan
    assert_eq!(
        rejected,
        1 + dependents + 2 + 2 + 1 + audit_of_first_key + 1,
        "{report:?}"
    );
    let kept = common::number(&mut client, "SELECT count(*) FROM council_import_rejects");
    assert_eq!(kept, rejected);
    let total: i64 = report.iter().map(|r| r.1).sum();
    assert_eq!(total as u64, summary.rows() + 2);
    // the big id arrived and the sequence moved past it
    let next = common::number(&mut client, "INSERT INTO messages (conversation_id, role) SELECT id, 'user' FROM conversations LIMIT 1 RETURNING id");
    assert!(next > 3_000_000_000);
    // verbatim rows: text jsonb cannot hold is kept byte for byte
    let hex = common::number(&mut client, "SELECT count(*) FROM council_import_rejects WHERE row->'response' ? 'hex' OR row->'model' ? 'hex'");
    assert_eq!(hex, 2);
}

#[test]
fn broken_files_fail_with_a_clear_error_and_change_nothing() {
    let cluster = common::cluster();
    let mut client = common::database_with_extension(&cluster, "council");
    let dir = cluster.scratch_dir().join("broken");
    std::fs::create_dir_all(&dir).expect("dir");
    let (good, _) = sample_of(&cluster, "good", 5);
    let bytes = std::fs::read(&good).expect("read");

    std::fs::write(dir.join("empty.db"), b"").expect("write");
    std::fs::write(dir.join("text.db"), "not a database at all\n".repeat(100)).expect("write");
    std::fs::write(dir.join("truncated.db"), &bytes[..bytes.len() / 3]).expect("write");
    let other = rusqlite::Connection::open(dir.join("other.db")).expect("open");
    other
        .execute_batch("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
        .expect("create");
    drop(other);
    std::fs::create_dir_all(dir.join("a-directory.db")).expect("dir");
    give_tree(&cluster, &dir);

    let cases: [(&str, &[&str]); 6] = [
        ("missing.db", &["58P01"]),
        ("a-directory.db", &["42809"]),
        ("empty.db", &["42P01"]),
        ("text.db", &["XX001"]),
        ("truncated.db", &["XX001", "42P01"]),
        ("other.db", &["42P01"]),
    ];
    for (name, codes) in cases {
        let err = import(&mut client, &dir.join(name), "strict").expect_err(name);
        assert!(
            codes.contains(&sqlstate(&err).as_str()),
            "{name}: {} {}",
            sqlstate(&err),
            message(&err)
        );
        assert!(
            message(&err).contains(name),
            "{name}: the error names the file: {}",
            message(&err)
        );
    }
    assert!(counts(&mut client).iter().all(|(_, n)| *n == 0));
}

#[test]
fn a_row_changed_in_the_target_is_a_conflict_never_overwritten() {
    let cluster = common::cluster();
    let mut client = common::database_with_extension(&cluster, "council");
    let (path, _) = sample_of(&cluster, "conflict", 5);
    import(&mut client, &path, "strict").expect("first import");
    client.batch_execute("UPDATE messages SET content = 'edited in PostgreSQL' WHERE id = (SELECT min(id) FROM messages WHERE role = 'user')").expect("edit");

    let err = import(&mut client, &path, "strict").expect_err("conflict");
    assert_eq!(sqlstate(&err), "23505", "{}", message(&err));
    let report = import(&mut client, &path, "quarantine").expect("quarantine");
    assert_eq!(report[1].4, 1, "{report:?}");
    let content: String = client
        .query_one("SELECT content FROM messages WHERE id = (SELECT min(id) FROM messages WHERE role = 'user')", &[])
        .expect("q")
        .get(0);
    assert_eq!(content, "edited in PostgreSQL");
}

fn verify(client: &mut Client, path: &Path) -> Report {
    client
        .query(
            "SELECT table_name, source_rows, identical, missing, differing FROM council_verify($1)",
            &[&path.to_string_lossy().as_ref()],
        )
        .expect("council_verify")
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
        .collect()
}

#[test]
fn verify_compares_content_not_counts() {
    let cluster = common::cluster();
    let mut client = common::database_with_extension(&cluster, "council");
    let (path, summary) = sample_of(&cluster, "verify", 8);
    let before = verify(&mut client, &path);
    assert!(before
        .iter()
        .all(|(_, n, identical, missing, differing)| *identical == 0
            && missing == n
            && *differing == 0));

    import(&mut client, &path, "strict").expect("import");
    let after = verify(&mut client, &path);
    let all_identical: Report = summary
        .tables
        .iter()
        .map(|(t, n)| ((*t).to_owned(), *n as i64, *n as i64, 0, 0))
        .collect();
    assert_eq!(after, all_identical);

    // Same counts, different content: one changed, one replaced by another row.
    client
        .batch_execute(
            "UPDATE stage2_rankings SET parsed_ranking = '[\"Response Z\"]' WHERE id = (SELECT min(id) FROM stage2_rankings);
             DELETE FROM stage3_synthesis WHERE id = (SELECT min(id) FROM stage3_synthesis);
             INSERT INTO stage3_synthesis (message_id, chairman_model, response)
             SELECT message_id, 'someone else', 'not from the file' FROM stage1_responses LIMIT 1;",
        )
        .expect("edits");
    let edited = verify(&mut client, &path);
    assert_eq!(
        (edited[3].3, edited[3].4),
        (0, 1),
        "stage2: one differs {edited:?}"
    );
    assert_eq!(
        (edited[4].3, edited[4].4),
        (1, 0),
        "stage3: one missing {edited:?}"
    );
}

#[test]
fn every_timestamp_form_and_unusual_id_imports_in_strict_mode() {
    let cluster = common::cluster();
    let mut client = common::database_with_extension(&cluster, "council");
    let (path, summary) = sample_of(&cluster, "forms", 6);
    let conn = spoil(&path);
    let first = "(SELECT min(id) FROM messages)";
    conn.execute_batch(&format!(
        "UPDATE messages SET created_at = '1760000000' WHERE id = {first};
         UPDATE messages SET created_at = '1760000000.25' WHERE id = {first} + 1;
         UPDATE messages SET created_at = '2026-01-17T10:20:30Z' WHERE id = {first} + 2;
         UPDATE messages SET created_at = '2026-01-17 10:20:30' WHERE id = {first} + 3;
         UPDATE messages SET created_at = '2026-01-17T10:20:30.123456' WHERE id = {first} + 4;
         UPDATE messages SET created_at = 1760000001 WHERE id = {first} + 5;
         INSERT INTO conversations (id, title, created_at, updated_at) VALUES
             ('6F1C1A52-8D3E-4A57-9A0E-1F4B6C2D9E10', 'upper', '2026-01-17T10:20:30.5+02:00', '');"
    ))
    .expect("forms");
    drop(conn);
    let report = import(&mut client, &path, "strict").expect("strict import");
    let total: i64 = report.iter().map(|r| r.2).sum();
    assert_eq!(total as u64, summary.rows() + 1);
    let times: Vec<String> = client
        .query(
            "SELECT to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') FROM messages
             WHERE id BETWEEN (SELECT min(id) FROM messages) AND (SELECT min(id) + 5 FROM messages) ORDER BY id",
            &[],
        )
        .expect("times")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        times,
        [
            "2025-10-09 08:53:20.000000",
            "2025-10-09 08:53:20.250000",
            "2026-01-17 10:20:30.000000",
            "2026-01-17 10:20:30.000000",
            "2026-01-17 10:20:30.123456",
            "2025-10-09 08:53:21.000000",
        ]
    );
    let upper: (String, String, String) = client
        .query_one(
            "SELECT id::text, legacy_id, to_char(created_at AT TIME ZONE 'UTC', 'HH24:MI:SS.MS') FROM conversations WHERE title = 'upper'",
            &[],
        )
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .expect("upper-case id");
    assert_eq!(
        upper,
        (
            "6f1c1a52-8d3e-4a57-9a0e-1f4b6c2d9e10".into(),
            "6F1C1A52-8D3E-4A57-9A0E-1F4B6C2D9E10".into(),
            "08:20:30.500".into()
        )
    );
}

#[test]
fn extra_columns_stop_a_strict_import_and_extra_tables_and_triggers_are_ignored() {
    let cluster = common::cluster();
    let mut client = common::database_with_extension(&cluster, "council");
    let (path, summary) = sample_of(&cluster, "extra", 5);
    let conn = spoil(&path);
    conn.execute_batch(
        "CREATE TABLE user_settings (id INTEGER PRIMARY KEY, theme TEXT);
         INSERT INTO user_settings VALUES (1, 'dark');
         CREATE TRIGGER conversations_touch AFTER UPDATE ON conversations BEGIN SELECT 1; END;
         ALTER TABLE messages ADD COLUMN tokens INTEGER;
         UPDATE messages SET tokens = 42 WHERE id IN (SELECT id FROM messages LIMIT 3);",
    )
    .expect("extras");
    drop(conn);
    let err = import(&mut client, &path, "strict").expect_err("extra column");
    assert_eq!(sqlstate(&err), "42P10", "{}", message(&err));
    assert!(message(&err).contains("tokens"));

    let (mut noticed, notices) = connect_keeping_notices(&cluster, "council");
    let report = import(&mut noticed, &path, "quarantine").expect("quarantine import");
    // Nothing is lost: the three messages whose tokens have no column in
    // PostgreSQL are quarantined whole, with the rows that hang off them.
    for (table, source, imported, skipped, rejected) in &report {
        assert_eq!(
            source,
            &(imported + skipped + rejected),
            "{table}: {report:?}"
        );
    }
    let total_source: i64 = report.iter().map(|r| r.1).sum();
    assert_eq!(total_source as u64, summary.rows());
    assert_eq!(report[1].4, 3, "three messages with tokens: {report:?}");
    let kept: Vec<(String, i64)> = client
        .query(
            "SELECT reason, (row->>'tokens')::bigint FROM council_import_rejects
             WHERE source_table = 'messages' ORDER BY source_id",
            &[],
        )
        .expect("rejects")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(kept.len(), 3, "{kept:?}");
    assert!(
        kept.iter()
            .all(|(reason, tokens)| reason.contains("tokens") && *tokens == 42),
        "{kept:?}"
    );
    let dependents = common::number(
        &mut client,
        "SELECT count(*) FROM council_import_rejects WHERE source_table <> 'messages'",
    );
    assert_eq!(
        dependents,
        report.iter().skip(2).map(|r| r.4).sum::<i64>(),
        "the rows that hang off them are quarantined too"
    );
    let notices = notices.lock().expect("lock").clone();
    // progress reaches the client as NOTICEs, one per table at least
    assert!(
        notices
            .iter()
            .any(|w| w.starts_with("llm_council import: stage1_responses")),
        "{notices:?}"
    );
}

#[test]
fn an_unreadable_file_is_a_privilege_error() {
    use std::os::unix::fs::PermissionsExt as _;
    let cluster = common::cluster();
    let mut client = common::database_with_extension(&cluster, "council");
    let (path, _) = sample_of(&cluster, "locked", 2);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o000)).expect("chmod");
    let err = import(&mut client, &path, "strict").expect_err("unreadable");
    assert_eq!(sqlstate(&err), "42501", "{}", message(&err));
    assert!(message(&err).contains("council.db"));
}

#[test]
fn statement_timeout_stops_an_import_and_nothing_stays() {
    let cluster = common::cluster();
    let mut client = common::database_with_extension(&cluster, "council");
    let (path, _) = sample_of(&cluster, "slow", 400);
    client
        .batch_execute("SET statement_timeout = '100ms'")
        .expect("timeout");
    let started = std::time::Instant::now();
    let err = import(&mut client, &path, "strict").expect_err("timed out");
    let took = started.elapsed();
    assert_eq!(sqlstate(&err), "57014", "{}", message(&err));
    assert!(
        took < std::time::Duration::from_millis(1100),
        "stopped {took:?} after the start, timeout 100 ms"
    );
    client
        .batch_execute("RESET statement_timeout")
        .expect("reset");
    assert!(counts(&mut client).iter().all(|(_, n)| *n == 0));
}

/// The corpus of bad values: each recipe spoils one row of a fresh sample.
/// Strict mode refuses the file naming that row and leaves the database
/// empty; quarantine rejects exactly that row (plus its dependents, which
/// these recipes choose to have none) and imports the rest.
#[test]
fn every_bad_value_is_refused_in_strict_mode_and_quarantined_alone() {
    let cluster = common::cluster();
    let options = SampleOptions {
        conversations: 4,
        ..SampleOptions::default()
    };
    let user_message = "(SELECT max(id) FROM messages WHERE role = 'user')";
    let recipes: &[(&str, &str, &str, String)] = &[
        ("garbage timestamp", "22007", "messages", format!("UPDATE messages SET created_at = 'next tuesday' WHERE id = {user_message}")),
        ("role outside user/assistant", "23514", "messages", format!("UPDATE messages SET role = 'system' WHERE id = {user_message}")),
        ("NUL byte in text", "22021", "messages", format!("UPDATE messages SET content = CAST(x'6869006869' AS TEXT) WHERE id = {user_message}")),
        ("invalid UTF-8", "22021", "messages", format!("UPDATE messages SET content = CAST(x'c328' AS TEXT) WHERE id = {user_message}")),
        ("invalid JSON", "22P02", "stage2_rankings", "UPDATE stage2_rankings SET rubric_scores = '{\"a\": }' WHERE id = (SELECT max(id) FROM stage2_rankings)".into()),
        ("JSON with \\u0000", "22P05", "stage2_rankings", "UPDATE stage2_rankings SET parsed_ranking = '[\"\\u0000\"]' WHERE id = (SELECT max(id) FROM stage2_rankings)".into()),
        ("orphan stage row", "23503", "stage1_responses", "UPDATE stage1_responses SET message_id = 987654321 WHERE id = (SELECT max(id) FROM stage1_responses)".into()),
        ("orphan audit row", "23503", "api_key_audit_log", "UPDATE api_key_audit_log SET api_key_id = 424242 WHERE id = (SELECT max(id) FROM api_key_audit_log)".into()),
        ("empty required JSON", "23502", "deliberation_metadata", "UPDATE deliberation_metadata SET label_to_model = '' WHERE id = (SELECT max(id) FROM deliberation_metadata)".into()),
        // New rows without dependents, so that only they are rejected.
        ("key_prefix too long", "22001", "api_keys", "INSERT INTO api_keys (id, key_hash, key_prefix, name) VALUES (9001, 'h9001', 'llmc_abcdefgh', 'long')".into()),
        ("boolean that is not 0/1", "22P02", "api_keys", "INSERT INTO api_keys (id, key_hash, key_prefix, name, is_active) VALUES (9002, 'h9002', 'llmc_abcdefg', 'seven', 7)".into()),
        ("count past 32 bits", "22003", "conversations", "INSERT INTO conversations (id, created_at, updated_at, message_count) VALUES ('import-huge', '', '', 3000000000)".into()),
        ("text where an integer belongs", "22P02", "stage2_rankings", "UPDATE stage2_rankings SET debate_round = 'second' WHERE id = (SELECT max(id) FROM stage2_rankings)".into()),
    ];
    for (n, (name, code, table, recipe)) in recipes.iter().enumerate() {
        let (path, summary) = sample_file(&cluster, &format!("corpus{n}"), &options);
        let conn = spoil(&path);
        // The recipe must hit exactly one row, or the test proves nothing.
        conn.execute_batch(&format!("{recipe};")).expect(name);
        assert_eq!(conn.changes(), 1, "{name}: the recipe must change one row");
        let added = u64::from(recipe.starts_with("INSERT"));
        drop(conn);

        let mut client = common::database_with_extension(&cluster, &format!("strict{n}"));
        let err = import(&mut client, &path, "strict").expect_err(name);
        assert_eq!(sqlstate(&err), *code, "{name}: {}", message(&err));
        assert!(
            message(&err).contains(table),
            "{name}: names the table: {}",
            message(&err)
        );
        assert!(
            counts(&mut client).iter().all(|(_, n)| *n == 0),
            "{name}: nothing stays"
        );

        let mut client = common::database_with_extension(&cluster, &format!("quarantine{n}"));
        let report = import(&mut client, &path, "quarantine").expect(name);
        let rejected: Vec<(&str, i64)> = report
            .iter()
            .filter(|r| r.4 > 0)
            .map(|r| (r.0.as_str(), r.4))
            .collect();
        assert_eq!(rejected, vec![(*table, 1)], "{name}: {report:?}");
        let imported: i64 = report.iter().map(|r| r.2).sum();
        assert_eq!(imported as u64 + 1, summary.rows() + added, "{name}");
    }
}

/// The import checks foreign keys itself and skips PostgreSQL's per-row
/// triggers only where that is sound: READ COMMITTED and no triggers of the
/// DBA's own on the council tables. Either way every reference holds.
#[test]
fn foreign_keys_hold_and_the_dbas_own_triggers_still_fire() {
    let cluster = common::cluster();
    let (path, summary) = sample_of(&cluster, "fk", 15);
    let references = [
        ("messages", "conversation_id", "conversations"),
        ("stage1_responses", "message_id", "messages"),
        ("stage2_rankings", "message_id", "messages"),
        ("stage3_synthesis", "message_id", "messages"),
        ("deliberation_metadata", "message_id", "messages"),
        ("api_key_audit_log", "api_key_id", "api_keys"),
    ];
    let orphans = |client: &mut Client| -> i64 {
        references
            .iter()
            .map(|(child, column, parent)| -> i64 {
                client
                    .query_one(
                        &format!("SELECT count(*) FROM {child} c WHERE NOT EXISTS (SELECT 1 FROM {parent} p WHERE p.id = c.{column})"),
                        &[],
                    )
                    .expect("orphans")
                    .get(0)
            })
            .sum()
    };

    let mut plain = common::database_with_extension(&cluster, "plain");
    import(&mut plain, &path, "strict").expect("import");
    assert_eq!(orphans(&mut plain), 0);

    let mut audited = common::database_with_extension(&cluster, "audited");
    audited
        .batch_execute(
            "CREATE TABLE seen (n bigint);
             CREATE FUNCTION note_message() RETURNS trigger LANGUAGE plpgsql
                 SET search_path = public AS
                 $$ BEGIN INSERT INTO seen VALUES (NEW.id); RETURN NEW; END $$;
             CREATE TRIGGER note_message AFTER INSERT ON messages FOR EACH ROW EXECUTE FUNCTION note_message();",
        )
        .expect("the DBA's trigger");
    import(&mut audited, &path, "strict").expect("import");
    let seen = common::number(&mut audited, "SELECT count(*) FROM seen");
    let messages = summary
        .tables
        .iter()
        .find(|(t, _)| *t == "messages")
        .map(|(_, n)| *n as i64);
    assert_eq!(Some(seen), messages, "the DBA's trigger saw every message");
    assert_eq!(orphans(&mut audited), 0);

    let mut repeatable = common::database_with_extension(&cluster, "repeatable");
    let mut transaction = repeatable
        .build_transaction()
        .isolation_level(postgres::IsolationLevel::RepeatableRead)
        .start()
        .expect("begin");
    let imported: i64 = transaction
        .query_one(
            "SELECT sum(imported)::bigint FROM council_import($1)",
            &[&path.to_string_lossy().as_ref()],
        )
        .expect("import in REPEATABLE READ")
        .get(0);
    transaction.commit().expect("commit");
    assert_eq!(imported as u64, summary.rows());
    assert_eq!(orphans(&mut repeatable), 0);
}

/// A table the file lacks still has parents in the database: a file with
/// the audit log but not the api_keys it refers to imports against the
/// keys already there.
#[test]
fn parents_already_in_the_database_count_when_the_file_lacks_their_table() {
    let cluster = common::cluster();
    let mut client = common::database_with_extension(&cluster, "council");
    let (path, summary) = sample_of(&cluster, "full", 10);
    import(&mut client, &path, "strict").expect("the whole file");
    client
        .batch_execute("DELETE FROM api_key_audit_log")
        .expect("delete");
    let (partial, _) = sample_of(&cluster, "partial", 10);
    let conn = spoil(&partial);
    conn.execute_batch("DROP TABLE api_keys").expect("drop");
    drop(conn);
    let report = import(&mut client, &partial, "strict").expect("the audit log without its keys");
    let audit = summary
        .tables
        .iter()
        .find(|(t, _)| *t == "api_key_audit_log")
        .map(|(_, n)| *n as i64);
    assert_eq!(report[6], ("api_keys".to_owned(), 0, 0, 0, 0));
    assert_eq!(
        Some(report[7].2),
        audit,
        "every audit row found its key in the database: {report:?}"
    );
}

/// A row rejected as a conflict is no parent: a new row of the file that
/// hangs off it is rejected too, naming it, and never attached to the
/// database's different row of that id. The same for an id two rows of one
/// file share.
#[test]
fn quarantine_never_attaches_a_row_to_the_wrong_parent() {
    let cluster = common::cluster();
    let mut client = common::database_with_extension(&cluster, "council");
    let (a, _) = sample_of(&cluster, "parent-a", 8);
    import(&mut client, &a, "strict").expect("import a");

    let dir = a.parent().expect("dir").with_file_name("parent-b");
    std::fs::create_dir_all(&dir).expect("dir");
    let b = dir.join("council.db");
    std::fs::copy(&a, &b).expect("copy");
    let conn = spoil(&b);
    let message: i64 = conn
        .query_row("SELECT min(message_id) FROM stage1_responses", [], |r| {
            r.get(0)
        })
        .expect("a message with stage 1 rows");
    conn.execute_batch(&format!(
        "UPDATE messages SET content = 'changed since the first import' WHERE id = {message};
         INSERT INTO stage1_responses (id, message_id, model, response, created_at)
         VALUES (999999, {message}, 'openai/gpt-5', 'new', '2026-01-01T00:00:00');"
    ))
    .expect("change b");
    drop(conn);
    give_tree(&cluster, &dir);

    let report = import(&mut client, &b, "quarantine").expect("quarantine import");
    assert_eq!(
        report[1].4, 1,
        "the changed message is a conflict: {report:?}"
    );
    assert_eq!(
        report[2].4, 1,
        "its new stage 1 row is rejected: {report:?}"
    );
    for (table, source, imported, skipped, rejected) in &report {
        assert_eq!(
            source,
            &(imported + skipped + rejected),
            "{table}: {report:?}"
        );
    }
    let attached = common::number(
        &mut client,
        "SELECT count(*) FROM stage1_responses WHERE id = 999999",
    );
    assert_eq!(attached, 0, "attached to the database's other message");
    let reason: String = client
        .query_one(
            "SELECT reason FROM council_import_rejects
             WHERE source_table = 'stage1_responses' AND source_id = '999999'",
            &[],
        )
        .expect("the reject")
        .get(0);
    assert!(
        reason.contains(&format!("messages row {message}")) && reason.contains("rejected"),
        "{reason}"
    );

    // Two rows of one file with ids that map to one UUID: the rows that
    // hang off that id cannot be told apart, so none is attached.
    let mut fresh = common::database_with_extension(&cluster, "fresh");
    let dir = a.parent().expect("dir").with_file_name("parent-c");
    std::fs::create_dir_all(&dir).expect("dir");
    let c = dir.join("council.db");
    std::fs::copy(&a, &c).expect("copy");
    let conn = spoil(&c);
    let conversation: String = conn
        .query_row(
            "SELECT id FROM conversations WHERE length(id) = 36 AND id = lower(id) LIMIT 1",
            [],
            |r| r.get(0),
        )
        .expect("a UUID conversation");
    let upper = conversation.to_uppercase();
    conn.execute_batch(&format!(
        "INSERT INTO conversations (id, title, created_at, updated_at) VALUES ('{upper}', 'twin', '', '');
         INSERT INTO messages (id, conversation_id, role, content, created_at)
         VALUES (888888, '{upper}', 'user', 'whose?', '');"
    ))
    .expect("change c");
    drop(conn);
    give_tree(&cluster, &dir);
    let report = import(&mut fresh, &c, "quarantine").expect("quarantine import");
    assert_eq!(report[0].4, 1, "the twin: {report:?}");
    assert!(report[1].4 >= 1, "its message: {report:?}");
    for (table, source, imported, skipped, rejected) in &report {
        assert_eq!(
            source,
            &(imported + skipped + rejected),
            "{table}: {report:?}"
        );
    }
    let reason: String = fresh
        .query_one(
            "SELECT reason FROM council_import_rejects
             WHERE source_table = 'messages' AND source_id = '888888'",
            &[],
        )
        .expect("the reject")
        .get(0);
    assert!(reason.contains("conversations row"), "{reason}");
}

/// After an import, psql prints every id, parent and text of the file as
/// sqlite3 prints them: the two databases' own clients judge the round
/// trip, with none of the import's code (its reader, its mapping) between
/// them.
#[test]
fn psql_prints_every_id_and_text_as_sqlite3_prints_it() {
    let cluster = common::cluster();
    let mut client = common::database_with_extension(&cluster, "clients");
    let (path, _) = sample_of(&cluster, "clients", 25);
    import(&mut client, &path, "strict").expect("import");
    // Each query means the same in SQLite and in PostgreSQL.
    let queries = [
        "SELECT id || '|' || role || '|' || coalesce(content, '') FROM messages ORDER BY id",
        "SELECT id || '|' || message_id || '|' || model || '|' || coalesce(response, '') \
         FROM stage1_responses ORDER BY id",
        "SELECT id || '|' || message_id || '|' || evaluator_model || '|' || coalesce(raw_ranking, '') \
         FROM stage2_rankings ORDER BY id",
        "SELECT id || '|' || message_id || '|' || chairman_model || '|' || coalesce(response, '') \
         FROM stage3_synthesis ORDER BY id",
        "SELECT id || '|' || key_hash || '|' || key_prefix || '|' || coalesce(name, '') \
         FROM api_keys ORDER BY id",
        "SELECT id || '|' || api_key_id || '|' || action || '|' || coalesce(endpoint, '') \
         FROM api_key_audit_log ORDER BY id",
        "SELECT coalesce(title, '') FROM conversations ORDER BY 1",
    ];
    for query in queries {
        let sqlite3 = std::process::Command::new("sqlite3")
            .arg("-readonly")
            .arg(&path)
            .arg(query)
            .output()
            .expect("running sqlite3");
        assert!(
            sqlite3.status.success(),
            "sqlite3: {}",
            String::from_utf8_lossy(&sqlite3.stderr)
        );
        let psql = std::process::Command::new(cluster.bin("psql"))
            .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", query])
            .arg(cluster.url_with_passfile("clients"))
            .output()
            .expect("running psql");
        assert!(
            psql.status.success(),
            "psql: {}",
            String::from_utf8_lossy(&psql.stderr)
        );
        let printed = |output: &std::process::Output| {
            String::from_utf8_lossy(&output.stdout)
                .trim_end()
                .to_owned()
        };
        assert!(!printed(&sqlite3).is_empty(), "no rows: {query}");
        assert_eq!(printed(&psql), printed(&sqlite3), "{query}");
    }
}

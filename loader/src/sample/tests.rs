use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};

use super::*;

/// A fresh directory per test, removed when dropped.
struct TempDir(tempfile::TempDir);

impl TempDir {
    fn new(name: &str) -> Self {
        TempDir(
            tempfile::Builder::new()
                .prefix(&format!("council-sample-{name}-"))
                .tempdir()
                .expect("create temp dir"),
        )
    }

    fn path(&self, file: &str) -> PathBuf {
        self.0.path().join(file)
    }
}

fn options(conversations: u64, schema: SchemaVersion) -> SampleOptions {
    SampleOptions {
        conversations,
        schema,
        ..SampleOptions::default()
    }
}

fn open_ro(path: &Path) -> Connection {
    Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).expect("open sample")
}

fn count(conn: &Connection, table: &str) -> u64 {
    conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| {
        r.get::<_, i64>(0)
    })
    .expect("count") as u64
}

fn user_tables(conn: &Connection) -> Vec<String> {
    let mut st = conn
        .prepare(
            "SELECT name FROM sqlite_schema WHERE type = 'table' \
             AND name NOT LIKE 'sqlite_%' ORDER BY name",
        )
        .expect("prepare");
    st.query_map([], |r| r.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows")
}

/// Every value of every row, in rowid order, hashed with its type.
fn content_hash(path: &Path, tables: &[&str]) -> u64 {
    let conn = open_ro(path);
    let mut h = DefaultHasher::new();
    for table in tables {
        table.hash(&mut h);
        let mut st = conn
            .prepare(&format!("SELECT * FROM {table} ORDER BY rowid"))
            .expect("prepare");
        let columns = st.column_count();
        let mut rows = st.query([]).expect("query");
        while let Some(row) = rows.next().expect("row") {
            for i in 0..columns {
                match row.get_ref(i).expect("value") {
                    ValueRef::Null => 0u8.hash(&mut h),
                    ValueRef::Integer(v) => (1u8, v).hash(&mut h),
                    ValueRef::Real(v) => (2u8, v.to_bits()).hash(&mut h),
                    ValueRef::Text(v) => (3u8, v).hash(&mut h),
                    ValueRef::Blob(v) => (4u8, v).hash(&mut h),
                }
            }
        }
    }
    h.finish()
}

const JSON_COLUMNS: &[(&str, &str)] = &[
    ("stage2_rankings", "parsed_ranking"),
    ("stage2_rankings", "rubric_scores"),
    ("deliberation_metadata", "label_to_model"),
    ("deliberation_metadata", "aggregate_rankings"),
    ("deliberation_metadata", "consensus"),
    ("deliberation_metadata", "features"),
    ("deliberation_metadata", "stage1_consensus"),
    ("deliberation_metadata", "debate_history"),
    ("api_keys", "permissions"),
    ("api_keys", "metadata"),
];

const TIMESTAMP_COLUMNS: &[(&str, &str)] = &[
    ("conversations", "created_at"),
    ("conversations", "updated_at"),
    ("messages", "created_at"),
    ("stage1_responses", "created_at"),
    ("stage2_rankings", "created_at"),
    ("stage3_synthesis", "created_at"),
    ("deliberation_metadata", "created_at"),
    ("api_keys", "created_at"),
    ("api_keys", "last_used_at"),
    ("api_keys", "expires_at"),
    ("api_key_audit_log", "created_at"),
];

/// `d` is a digit; every other byte must match exactly.
fn shaped(s: &str, pattern: &str) -> bool {
    s.len() == pattern.len()
        && s.bytes().zip(pattern.bytes()).all(|(c, p)| match p {
            b'd' => c.is_ascii_digit(),
            _ => c == p,
        })
}

/// The forms the app writes: see `docs/sqlite-source.md`.
fn app_timestamp_form(s: &str) -> Option<&'static str> {
    const DATE_TIME: &str = "dddd-dd-ddTdd:dd:dd";
    if s.is_empty() {
        return Some("empty");
    }
    if shaped(s, "dddd-dd-dd dd:dd:dd") {
        return Some("sqlite");
    }
    if s.len() < DATE_TIME.len() || !shaped(&s[..DATE_TIME.len()], DATE_TIME) {
        return None;
    }
    let rest = &s[DATE_TIME.len()..];
    let (fraction, zone) = match rest.strip_prefix('.') {
        Some(r) if r.len() >= 6 && shaped(&r[..6], "dddddd") => (true, &r[6..]),
        Some(_) => return None,
        None => (false, rest),
    };
    match (zone, fraction) {
        ("+00:00", true) => Some("aware"),
        ("", true) => Some("naive"),
        ("+00:00", false) => Some("aware-whole-second"),
        ("", false) => Some("naive-whole-second"),
        _ => None,
    }
}

fn column_values(conn: &Connection, table: &str, column: &str) -> Vec<Option<String>> {
    let mut st = conn
        .prepare(&format!("SELECT {column} FROM {table} ORDER BY rowid"))
        .expect("prepare");
    st.query_map([], |r| r.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("values")
}

#[test]
fn same_options_same_content_other_seed_other_content() {
    let dir = TempDir::new("determinism");
    for schema in [SchemaVersion::V1, SchemaVersion::V2] {
        let opts = options(120, schema);
        let a = dir.path(&format!("a-{schema}.db"));
        let b = dir.path(&format!("b-{schema}.db"));
        let c = dir.path(&format!("c-{schema}.db"));
        let sa = write(&a, &opts).expect("write a");
        let sb = write(&b, &opts).expect("write b");
        let sc = write(
            &c,
            &SampleOptions {
                seed: 2,
                ..opts.clone()
            },
        )
        .expect("write c");
        assert_eq!(sa.tables, sb.tables);
        let tables = schema.tables();
        assert_eq!(content_hash(&a, tables), content_hash(&b, tables));
        assert_ne!(content_hash(&a, tables), content_hash(&c, tables));
        assert_ne!(sa.tables, sc.tables, "another seed, other shapes");
    }
}

#[test]
fn journal_mode_does_not_change_content() {
    let dir = TempDir::new("journal-content");
    let mut hashes = Vec::new();
    for (i, journal) in [Journal::Delete, Journal::Wal, Journal::WalUncheckpointed]
        .into_iter()
        .enumerate()
    {
        // The copy keeps the -wal beside it, so all committed rows count.
        let path = dir.path(&format!("{i}.db"));
        write(
            &path,
            &SampleOptions {
                journal,
                ..options(60, SchemaVersion::V2)
            },
        )
        .expect("write");
        hashes.push(content_hash(&path, &COUNCIL));
    }
    assert_eq!(hashes[0], hashes[1]);
    assert_eq!(hashes[0], hashes[2]);
}

#[test]
fn tables_counts_and_values_are_valid() {
    let dir = TempDir::new("valid");
    for (schema, n) in [(SchemaVersion::V1, 150), (SchemaVersion::V2, 400)] {
        let path = dir.path(&format!("{schema}.db"));
        let summary = write(&path, &options(n, schema)).expect("write");
        let conn = open_ro(&path);

        let mut expected: Vec<String> = schema.tables().iter().map(|t| t.to_string()).collect();
        expected.sort();
        assert_eq!(user_tables(&conn), expected, "{schema}: exactly its tables");
        let names: Vec<&str> = summary.tables.iter().map(|(t, _)| *t).collect();
        assert_eq!(names, schema.tables());
        for (table, rows) in &summary.tables {
            assert_eq!(*rows, count(&conn, table), "{schema}: {table}");
            assert!(*rows > 0, "{schema}: {table} is empty");
        }
        assert_eq!(count(&conn, "conversations"), n);

        let violations: i64 = conn
            .query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| {
                r.get(0)
            })
            .expect("fk check");
        assert_eq!(violations, 0, "{schema}: foreign keys");
        let integrity: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .expect("integrity");
        assert_eq!(integrity, "ok");

        let bad_roles = count(
            &conn,
            "messages WHERE role NOT IN ('user', 'assistant') \
             OR (role = 'user' AND content IS NULL) \
             OR (role = 'assistant' AND content IS NOT NULL)",
        );
        assert_eq!(bad_roles, 0, "roles and content");

        // Every conversation's rows are in time order, inside its span.
        let out_of_order = count(
            &conn,
            "messages m JOIN conversations c ON c.id = m.conversation_id \
             WHERE c.created_at <> '' AND (m.created_at < c.created_at OR m.created_at > c.updated_at \
             OR m.created_at <= (SELECT max(p.created_at) FROM messages p \
                                 WHERE p.conversation_id = m.conversation_id AND p.id < m.id))",
        );
        assert_eq!(out_of_order, 0, "message times");

        let tables = schema.tables();
        for (table, column) in JSON_COLUMNS.iter().filter(|(t, _)| tables.contains(t)) {
            let mut non_null = 0;
            for value in column_values(&conn, table, column).into_iter().flatten() {
                non_null += 1;
                assert!(value.is_ascii(), "{table}.{column}: ensure_ascii: {value}");
                serde_json::from_str::<serde_json::Value>(&value)
                    .unwrap_or_else(|e| panic!("{table}.{column}: {e}: {value}"));
                assert!(
                    !value.contains("\",\"") && !value.contains("\":\""),
                    "{table}.{column}: Python separators: {value}"
                );
            }
            assert!(non_null > 0, "{table}.{column} is always NULL");
        }

        let mut forms = std::collections::BTreeSet::new();
        for (table, column) in TIMESTAMP_COLUMNS.iter().filter(|(t, _)| tables.contains(t)) {
            for value in column_values(&conn, table, column).into_iter().flatten() {
                let form = app_timestamp_form(&value)
                    .unwrap_or_else(|| panic!("{table}.{column}: not an app timestamp: {value:?}"));
                if *table == "api_keys" && *column == "created_at" || *table == "api_key_audit_log"
                {
                    assert_eq!(form, "sqlite", "{table}.{column}: {value:?}");
                }
                forms.insert(form);
            }
        }
        for form in ["empty", "aware", "naive", "aware-whole-second"] {
            if schema == SchemaVersion::V1 && form.starts_with("aware") {
                continue;
            }
            assert!(forms.contains(form), "{schema}: no {form} timestamp");
        }

        // Text an importer must carry unchanged.
        for needle in ["\\", "\"", "\n", "é", "東京", "🚀"] {
            let hits = count(
                &conn,
                &format!(
                    "stage1_responses WHERE instr(response, '{}') > 0",
                    needle.replace('\'', "''")
                ),
            );
            assert!(hits > 0, "no stage1 response contains {needle:?}");
        }

        let empty_conversations = count(&conn, "conversations WHERE created_at = ''");
        assert!(empty_conversations >= 1);
        assert_eq!(
            count(
                &conn,
                "messages m JOIN conversations c ON c.id = m.conversation_id \
                 WHERE c.created_at = '' AND m.created_at <> ''"
            ),
            0,
            "migrated conversations have undated messages"
        );
        let drift = count(
            &conn,
            "conversations c WHERE message_count <> \
             (SELECT count(*) FROM messages m WHERE m.conversation_id = c.id)",
        );
        assert!(drift * 20 < n, "message_count drifts rarely: {drift}");

        let ids = column_values(&conn, "conversations", "id");
        let lower_uuid = |s: &str| {
            s.len() == 36
                && s.char_indices().all(|(i, c)| match i {
                    8 | 13 | 18 | 23 => c == '-',
                    14 => c == '4',
                    _ => c.is_ascii_digit() || ('a'..='f').contains(&c),
                })
        };
        let ids: Vec<String> = ids.into_iter().flatten().collect();
        let non_uuid = ids.iter().filter(|s| !lower_uuid(s)).count();
        if schema == SchemaVersion::V1 {
            assert_eq!(non_uuid, 0);
        } else {
            let upper = ids
                .iter()
                .filter(|s| s.len() == 36 && s.chars().any(|c| c.is_ascii_uppercase()))
                .count();
            assert_eq!(upper, 1, "one upper-case UUID");
            assert!(
                (2..=4).contains(&(non_uuid - upper)),
                "about 1 in 200 caller-supplied ids, got {}",
                non_uuid - upper
            );
        }

        let shapes = count(
            &conn,
            "stage2_rankings WHERE instr(raw_ranking, 'FINAL RANKING:') = 0",
        );
        assert_eq!(shapes, 0, "every raw ranking has its final list");
        let confidence = count(
            &conn,
            "stage1_responses WHERE confidence < 0.0 OR confidence > 1.0 \
             OR (confidence IS NOT NULL AND typeof(confidence) <> 'real')",
        );
        assert_eq!(confidence, 0);
        let samples = count(&conn, "stage1_responses WHERE sample_id IS NOT NULL");
        if schema == SchemaVersion::V2 {
            assert!(samples > 0, "self-consistency samples");
            let keys = count(&conn, "api_keys");
            assert!(keys >= 3 && keys == (n / 30).max(3));
            let bad_keys = count(
                &conn,
                "api_keys WHERE key_hash NOT LIKE '$2b$12$%' OR length(key_hash) <> 60 \
                 OR key_prefix NOT LIKE 'llmc_%' OR length(key_prefix) <> 12",
            );
            assert_eq!(bad_keys, 0);
        }
    }
}

#[test]
fn size_and_rows_per_conversation() {
    let dir = TempDir::new("size");
    let n = 300;
    let summary = write(&dir.path("council.db"), &options(n, SchemaVersion::V2)).expect("write");
    let kb_per_conversation = summary.bytes as f64 / 1024.0 / n as f64;
    let rows_per_conversation = summary.rows() as f64 / n as f64;
    assert!(
        (40.0..=80.0).contains(&kb_per_conversation),
        "{kb_per_conversation:.1} KB per conversation"
    );
    assert!(
        (25.0..=50.0).contains(&rows_per_conversation),
        "{rows_per_conversation:.1} rows per conversation"
    );
}

#[test]
fn live_copy_keeps_the_newest_rows_only_in_the_wal() {
    let dir = TempDir::new("live");
    let n = 50;
    let path = dir.path("council.db");
    let summary = write(
        &path,
        &SampleOptions {
            journal: Journal::WalUncheckpointed,
            ..options(n, SchemaVersion::V2)
        },
    )
    .expect("write");

    let wal = dir.path("council.db-wal");
    let wal_len = std::fs::metadata(&wal).expect("-wal exists").len();
    assert!(wal_len > 0, "-wal is empty");
    assert_eq!(summary.wal_bytes, wal_len);
    let header = std::fs::read(&path).expect("read main file");
    assert_eq!(&header[18..20], &[2, 2], "main file is in WAL mode");

    // Only the main file's bytes: what a copy that forgot the -wal sees.
    let main_only = TempDir::new("live-main-only");
    std::fs::copy(&path, main_only.path("council.db")).expect("copy main");
    let main_conn = Connection::open(main_only.path("council.db")).expect("open");

    // All three files, copied so that opening never checkpoints the original.
    let full = TempDir::new("live-full");
    for suffix in ["", "-wal", "-shm"] {
        let name = format!("council.db{suffix}");
        std::fs::copy(dir.path(&name), full.path(&name)).expect("copy");
    }
    let full_conn = Connection::open(full.path("council.db")).expect("open");

    let without_wal = count(&main_conn, "conversations");
    let with_wal = count(&full_conn, "conversations");
    assert_eq!(with_wal, n);
    assert_eq!(without_wal, n - n.div_ceil(10));
    assert!(without_wal < with_wal);
    // The newest conversations come with every dependent row, and the main
    // file alone is still a consistent database.
    for table in COUNCIL.iter().skip(1).filter(|t| **t != "api_keys") {
        assert!(
            count(&main_conn, table) < count(&full_conn, table),
            "{table}: no rows only in the -wal"
        );
    }
    assert_eq!(count(&main_conn, "api_keys"), count(&full_conn, "api_keys"));
    for conn in [&main_conn, &full_conn] {
        let violations: i64 = conn
            .query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| {
                r.get(0)
            })
            .expect("fk check");
        assert_eq!(violations, 0);
    }
}

#[test]
fn clean_wal_leaves_no_wal_file() {
    let dir = TempDir::new("wal");
    let path = dir.path("council.db");
    let summary = write(
        &path,
        &SampleOptions {
            journal: Journal::Wal,
            ..options(20, SchemaVersion::V1)
        },
    )
    .expect("write");
    assert_eq!(summary.wal_bytes, 0);
    let wal = dir.path("council.db-wal");
    assert!(std::fs::metadata(&wal).map_or(true, |m| m.len() == 0));
    let header = std::fs::read(&path).expect("read");
    assert_eq!(&header[18..20], &[2, 2], "WAL mode");
    assert_eq!(count(&open_ro(&path), "conversations"), 20);
}

#[test]
fn refuses_to_overwrite() {
    let dir = TempDir::new("overwrite");
    let path = dir.path("council.db");
    std::fs::write(&path, b"precious").expect("seed file");
    let err = write(&path, &SampleOptions::default()).expect_err("must refuse");
    assert!(matches!(err, SampleError::Exists { .. }));
    assert!(err.to_string().contains("council.db"), "{err}");
    assert_eq!(std::fs::read(&path).expect("read"), b"precious");

    let other = dir.path("other.db");
    std::fs::write(dir.path("other.db-wal"), b"stale").expect("seed -wal");
    let err = write(&other, &SampleOptions::default()).expect_err("stale -wal");
    assert!(matches!(err, SampleError::Sidecar { .. }), "{err}");
    assert!(!other.exists());

    let live = dir.path("empty.db");
    let err = write(
        &live,
        &SampleOptions {
            conversations: 0,
            journal: Journal::WalUncheckpointed,
            ..SampleOptions::default()
        },
    )
    .expect_err("nothing to leave in the -wal");
    assert!(matches!(err, SampleError::NothingForWal { .. }));
    assert!(!live.exists());
}

#[test]
fn zero_conversations_is_an_empty_database_with_the_schema() {
    let dir = TempDir::new("zero");
    let path = dir.path("council.db");
    let summary = write(&path, &options(0, SchemaVersion::V2)).expect("write");
    assert_eq!(summary.tables[0], ("conversations", 0));
    let conn = open_ro(&path);
    assert_eq!(user_tables(&conn).len(), 8);
    assert_eq!(count(&conn, "api_keys"), 3);
}

#[test]
fn options_parse_from_cli_text() {
    assert_eq!("v1".parse::<SchemaVersion>().ok(), Some(SchemaVersion::V1));
    assert_eq!("V2".parse::<SchemaVersion>().ok(), Some(SchemaVersion::V2));
    assert!("v3".parse::<SchemaVersion>().is_err());
    assert_eq!(
        "wal-uncheckpointed".parse::<Journal>().ok(),
        Some(Journal::WalUncheckpointed)
    );
    assert_eq!("delete".parse::<Journal>().ok(), Some(Journal::Delete));
    for j in [Journal::Delete, Journal::Wal, Journal::WalUncheckpointed] {
        assert_eq!(j.to_string().parse::<Journal>().ok(), Some(j));
    }
}

/// Samples of other sizes or seeds share no id in any table, so one imported
/// after another never conflicts; the same options give the same ids.
#[test]
fn ids_never_collide_across_sizes_and_seeds() {
    let dir = TempDir::new("ids");
    let variants = [(30, 1), (300, 1), (30, 2), (31, 1)];
    let mut ids: Vec<Vec<(String, String)>> = Vec::new();
    for (n, seed) in variants {
        let path = dir.path(&format!("c{n}-{seed}.db"));
        write(
            &path,
            &SampleOptions {
                conversations: n,
                seed,
                ..SampleOptions::default()
            },
        )
        .expect("write");
        let conn = open_ro(&path);
        let mut all = Vec::new();
        for table in COUNCIL {
            let mut st = conn
                .prepare(&format!("SELECT CAST(id AS TEXT) FROM {table}"))
                .expect("prepare");
            let rows: Vec<String> = st
                .query_map([], |r| r.get(0))
                .expect("query")
                .collect::<Result<_, _>>()
                .expect("rows");
            all.extend(
                rows.into_iter()
                    .map(|id| (table.to_owned(), id.to_lowercase())),
            );
        }
        ids.push(all);
    }
    for (i, a) in ids.iter().enumerate() {
        for b in ids.iter().skip(i + 1) {
            let shared = a.iter().filter(|id| b.contains(id)).count();
            assert_eq!(shared, 0, "{:?} and another sample share ids", variants[i]);
        }
    }
}

#[test]
fn the_sample_is_laid_out_as_the_apps_schema_sql_lays_it_out() {
    for (schema, script) in [
        (SchemaVersion::V2, council_app::ddl::SCHEMA.to_owned()),
        (SchemaVersion::V1, council_app::ddl::schema_v1()),
    ] {
        let dir = TempDir::new("layout");
        let path = dir.path("council.db");
        write(&path, &options(3, schema)).expect("write");
        let apps = Connection::open_in_memory().expect("memory");
        apps.execute_batch(&script).expect("the app's script");
        let sample = Connection::open(&path).expect("open sample");
        assert_eq!(
            council_file::layout::describe(&sample).expect("sample layout"),
            council_file::layout::describe(&apps).expect("app's layout"),
            "{schema:?}: pragma table_info, foreign_key_list, index_list and index_xinfo"
        );
        // The app's next start runs its script again; it must add nothing.
        let before = council_file::layout::schema(&sample).expect("sqlite_schema");
        sample.execute_batch(&script).expect("the app's start");
        assert_eq!(
            council_file::layout::schema(&sample).expect("sqlite_schema"),
            before,
            "{schema:?}"
        );
    }
}

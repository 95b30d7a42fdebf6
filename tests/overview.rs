//! What the DBA sees: `council_imports` records each committed import,
//! sync and export with its file's SHA-256, and `council_overview()` shows
//! the whole system to any role, with NULL for what the role may not read.

mod common;

use std::path::Path;

use common::{sample_file, sample_of};

use council_loader::sample::SampleOptions;
use postgres::Client;
use sha2::{Digest, Sha256};

fn sha256_of(path: &Path) -> String {
    let bytes = std::fs::read(path).expect("reading the file");
    Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn recorded(client: &mut Client) -> Vec<(String, String, Option<String>)> {
    common::triples(
        client,
        "SELECT mode, source, sha256 FROM council_imports ORDER BY id",
        &[],
    )
}

#[test]
fn every_import_and_export_records_its_files_sha256() {
    let cluster = common::cluster();
    let mut client = common::database_with_extension(&cluster, "council");
    let (first, _) = sample_of(&cluster, "first", 8);
    let (second, _) = sample_file(
        &cluster,
        "second",
        &SampleOptions {
            conversations: 5,
            seed: 7,
            ..SampleOptions::default()
        },
    );
    let first_name = first.to_string_lossy().into_owned();
    client
        .query("SELECT * FROM council_import($1)", &[&first_name])
        .expect("import by path");
    // a dry run commits nothing, so records nothing
    client
        .query(
            "SELECT * FROM council_import($1, dry_run => true)",
            &[&first_name],
        )
        .expect("a dry run");
    let bytes = std::fs::read(&second).expect("read");
    client
        .query("SELECT * FROM council_import($1::bytea)", &[&bytes])
        .expect("import of an upload");
    let exported = cluster.scratch_dir().join("exported.db");
    let exported_name = exported.to_string_lossy().into_owned();
    client
        .query("SELECT * FROM council_export($1)", &[&exported_name])
        .expect("export");

    assert_eq!(
        recorded(&mut client),
        [
            ("strict".to_owned(), first_name, Some(sha256_of(&first))),
            (
                "strict".to_owned(),
                "upload".to_owned(),
                Some(sha256_of(&second))
            ),
            (
                "export".to_owned(),
                exported_name,
                Some(sha256_of(&exported))
            ),
        ]
    );
}

#[test]
fn the_overview_shows_the_system_to_any_role() {
    let cluster = common::cluster();
    let mut client = common::database_with_extension(&cluster, "council");
    let (path, summary) = sample_of(&cluster, "overview", 12);
    let name = path.to_string_lossy().into_owned();
    client
        .query("SELECT * FROM council_import($1)", &[&name])
        .expect("import");
    client
        .batch_execute(
            "SELECT council_cache_put('k1', 'q', '[]', '[]', '{}', '{}');
             SELECT council_cache_put('k2', 'q', '[]', '[]', '{}', '{}');",
        )
        .expect("two cache entries");

    let row = client
        .query_one(
            "SELECT extension_version, library_preloaded, search_config::text, tables::text,
                    total_bytes, index_bytes, search_documents, search_documents_stale,
                    search_table_bytes, search_index_bytes, cache_entries, imports,
                    last_import ->> 'mode', last_import ->> 'source', last_import ->> 'sha256'
             FROM council_overview()",
            &[],
        )
        .expect("council_overview");
    assert_eq!(row.get::<_, String>(0), env!("CARGO_PKG_VERSION"));
    let preloaded: bool = row.get(1);
    let configured: String = client
        .query_one("SELECT current_setting('shared_preload_libraries')", &[])
        .expect("setting")
        .get(0);
    assert_eq!(preloaded, configured.contains("llm_council"));
    assert_eq!(row.get::<_, String>(2), "council_english");
    let tables: serde_json::Value =
        serde_json::from_str(row.get::<_, &str>(3)).expect("tables is JSON");
    for (table, rows) in &summary.tables {
        let entry = tables
            .as_array()
            .and_then(|all| all.iter().find(|t| t["table"] == *table))
            .unwrap_or_else(|| panic!("{table} in {tables}"));
        assert_eq!(entry["rows"], serde_json::json!(rows), "{table}");
        assert!(entry["total_bytes"].as_i64().unwrap_or(0) > 0, "{table}");
    }
    let cache = tables
        .as_array()
        .and_then(|all| all.iter().find(|t| t["table"] == "response_cache"))
        .expect("response_cache");
    assert_eq!(cache["rows"], serde_json::json!(2));
    let (total, indexes): (i64, i64) = (row.get(4), row.get(5));
    assert!(total > indexes && indexes > 0);
    let documents: i64 = row.get(6);
    let expected_documents = common::number(&mut client, "SELECT (SELECT count(*) FROM conversations WHERE title IS NOT NULL)
                  + (SELECT count(*) FROM messages WHERE role = 'user' AND content IS NOT NULL)
                  + (SELECT count(*) FROM stage1_responses) + (SELECT count(*) FROM stage3_synthesis)");
    assert_eq!(documents, expected_documents);
    assert_eq!(row.get::<_, i64>(7), 0);
    assert!(row.get::<_, i64>(8) > 0 && row.get::<_, i64>(9) > 0);
    assert_eq!(row.get::<_, i64>(10), 2);
    assert_eq!(row.get::<_, i64>(11), 1);
    assert_eq!(row.get::<_, String>(12), "strict");
    assert_eq!(row.get::<_, String>(13), name);
    assert_eq!(row.get::<_, String>(14).len(), 64);

    // A role with no rights on the tables sees the sizes, and NULL where a
    // figure needs a right it lacks: no error.
    client
        .batch_execute("CREATE ROLE visitor LOGIN PASSWORD 'visitor-secret'")
        .expect("role");
    let mut visitor = cluster
        .connect_as("council", "visitor", "visitor-secret")
        .expect("connect as visitor");
    let row = visitor
        .query_one(
            "SELECT tables -> 0 ->> 'rows', total_bytes, search_documents, cache_entries,
                    imports, last_import::text
             FROM council_overview()",
            &[],
        )
        .expect("council_overview as a role with no rights");
    assert_eq!(row.get::<_, Option<String>>(0), None);
    assert_eq!(row.get::<_, Option<i64>>(1), Some(total));
    assert_eq!(row.get::<_, Option<i64>>(2), None);
    assert_eq!(row.get::<_, Option<i64>>(3), None);
    assert_eq!(row.get::<_, Option<i64>>(4), None);
    assert_eq!(row.get::<_, Option<String>>(5), None);
}

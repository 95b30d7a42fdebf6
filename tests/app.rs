//! The app's own operations through a real client: the Python scenario in
//! `tests/app/` runs the app's storage on SQLite as the app runs it today,
//! and its port to the extension (what `docs/porting-the-app.md` says to
//! change) on PostgreSQL, through psycopg2 as the app uses it. What the app
//! reads back must be the same, and the same again from the file
//! `council_export` writes.

mod common;

use std::path::Path;
use std::process::Command;

use serde_json::Value;

/// Debian's Python, where `python3-psycopg2` (scripts/setup.sh) lives; a
/// python3 earlier on PATH (pyenv, a venv) may not have it.
const PYTHON: &str = "/usr/bin/python3";

/// `scenario.py MODE TARGET`'s output: [step, value] pairs.
fn scenario(mode: &str, target: &str) -> Vec<(String, Value)> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/app/scenario.py");
    let out = Command::new(PYTHON)
        .arg(&script)
        .args([mode, target])
        .output()
        .expect("running tests/app/scenario.py");
    assert!(
        out.status.success(),
        "scenario.py {mode} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the scenario's JSON")
}

/// Compares two runs step by step, so a failure names the step.
fn assert_same_reads(left: &[(String, Value)], right: &[(String, Value)], what: &str) {
    let steps = |run: &[(String, Value)]| run.iter().map(|(s, _)| s.clone()).collect::<Vec<_>>();
    assert_eq!(steps(left), steps(right), "{what}: the same steps");
    for ((step, l), (_, r)) in left.iter().zip(right) {
        assert_eq!(l, r, "{what}: {step}");
    }
}

#[test]
fn the_ported_app_reads_back_what_it_reads_from_sqlite_and_so_does_an_export() {
    let cluster = common::cluster();
    let mut client = common::database_with_extension(&cluster, "app");
    // Times come back in the session's zone; the port must give them in UTC
    // as the app wrote them, whatever the server's zone is.
    client
        .batch_execute("ALTER DATABASE app SET timezone = 'America/New_York'")
        .expect("timezone");

    let dir = tempfile::tempdir().expect("tempdir");
    let sqlite = dir.path().join("council.db");
    let on_sqlite = scenario("sqlite", &sqlite.to_string_lossy());
    let on_postgres = scenario("postgres", &cluster.url("app"));
    assert_same_reads(&on_sqlite, &on_postgres, "SQLite against PostgreSQL");
    assert!(on_sqlite.len() > 40, "every operation read back");

    let exported = cluster.scratch_dir().join("app-export");
    std::fs::create_dir_all(&exported).expect("export directory");
    common::give_tree(&cluster, &exported);
    let export = exported.join("council.db");
    client
        .execute(
            "SELECT * FROM council_export($1)",
            &[&export.to_string_lossy().as_ref()],
        )
        .expect("council_export");
    let from_export = scenario("reads", &export.to_string_lossy());
    let from_sqlite = scenario("reads", &sqlite.to_string_lossy());
    assert_same_reads(&from_sqlite, &from_export, "SQLite against the export");
    let finals: Vec<(String, Value)> = on_sqlite
        .iter()
        .filter_map(|(s, v)| Some((s.strip_prefix("final ")?.to_owned(), v.clone())))
        .collect();
    assert_same_reads(&finals, &from_sqlite, "the scenario's last reads");
}

#[test]
fn each_change_in_the_porting_guide_is_needed() {
    let cluster = common::cluster();
    common::database_with_extension(&cluster, "guide");
    let outcomes: Vec<(String, Value)> = scenario("guide-port", &cluster.url("guide"));
    let outcome = |name: &str| {
        outcomes
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("no probe {name}"))
    };
    let error = |name: &str| outcome(name)["error"].as_str().map(str::to_owned);
    let sqlstate = |name: &str| outcome(name)["sqlstate"].as_str().map(str::to_owned);

    // WHERE is_hidden = 0: boolean = integer does not exist.
    assert_eq!(sqlstate("boolean comparison").as_deref(), Some("42883"));
    // SET is_pinned = 1: an integer is not a boolean.
    assert_eq!(sqlstate("boolean write").as_deref(), Some("42804"));
    // cursor.lastrowid is 0, never the new id: RETURNING id.
    let lastrowid = outcome("lastrowid");
    assert_eq!(lastrowid["value"]["lastrowid"], 0);
    assert!(lastrowid["value"]["new id"].as_i64() > Some(0));
    // A cache call is a SELECT: its rowcount is 1 whatever it did.
    assert_eq!(outcome("rowcount of a cache call")["value"], 1);
    // psycopg2's connection has no execute; RealDictCursor rows no positions.
    assert_eq!(
        error("execute on the connection").as_deref(),
        Some("AttributeError")
    );
    assert_eq!(error("row by position").as_deref(), Some("KeyError"));
    // jsonb arrives decoded, timestamptz as datetime.
    assert_eq!(error("json.loads on jsonb").as_deref(), Some("TypeError"));
    assert_eq!(error("timestamptz as text").as_deref(), Some("TypeError"));
    // id = 'import-2025-0042' is not a uuid.
    assert_eq!(sqlstate("a non-UUID id").as_deref(), Some("22P02"));
    // The app's SQLite DDL is not PostgreSQL's.
    assert_eq!(sqlstate("schema.sql at start").as_deref(), Some("42601"));
    assert_eq!(outcomes.len(), 10, "every probe is asserted");
}

//! The schema against real clusters: where it is created, what pg_dump keeps,
//! and that every released version upgrades to this one without losing a row.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{catalog_fingerprint, cluster, database_with_extension, fill_every_table};

#[test]
fn create_extension_in_the_current_schema_and_in_a_named_one() {
    let cluster = cluster();
    let mut client = cluster
        .create_database("placement")
        .expect("create database");
    client
        .batch_execute(
            "CREATE SCHEMA council;
             CREATE EXTENSION llm_council SCHEMA council;",
        )
        .expect("CREATE EXTENSION … SCHEMA council");
    let placed: Vec<String> = client
        .query(
            "SELECT relnamespace::regnamespace::text FROM pg_class
             WHERE relname IN ('conversations', 'messages', 'response_cache', 'council_import_rejects')",
            &[],
        )
        .expect("query")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(placed, vec!["council"; 4]);

    client
        .batch_execute("DROP EXTENSION llm_council; CREATE EXTENSION llm_council;")
        .expect("re-create in the current schema");
    let schema: String = client
        .query_one(
            "SELECT relnamespace::regnamespace::text FROM pg_class WHERE relname = 'messages'",
            &[],
        )
        .expect("query")
        .get(0);
    assert_eq!(schema, "public");
    let configured = common::number(&mut client, "SELECT count(*) FROM pg_extension e, unnest(e.extconfig) c WHERE e.extname = 'llm_council'");
    assert_eq!(
        configured, 21,
        "eleven tables and ten sequences registered for pg_dump"
    );
}

/// Model output compresses with lz4, where the server is built with it;
/// a server built without it (the PyPI builds of 16 and 18) keeps pglz,
/// and the extension installs all the same.
#[test]
fn model_output_compresses_with_lz4_where_the_server_has_it() {
    let cluster = cluster();
    let mut client = database_with_extension(&cluster, "compression");
    let has_lz4: bool = client
        .query_one(
            "SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'",
            &[],
        )
        .expect("the server's compression methods")
        .get(0);
    let expected = if has_lz4 { "lz4" } else { "pglz" };
    let columns: Vec<String> = client
        .query(
            "SELECT format('%s.%s', attrelid::regclass, attname) FROM pg_attribute
             WHERE attcompression = 'l' ORDER BY 1",
            &[],
        )
        .expect("query")
        .iter()
        .map(|r| r.get(0))
        .collect();
    for column in [
        "messages.content",
        "stage1_responses.response",
        "stage3_synthesis.response",
        "deliberation_metadata.debate_history",
        "response_cache.stage1_data",
    ] {
        assert_eq!(
            columns.iter().any(|c| c == column),
            has_lz4,
            "{column} in {columns:?} (server with lz4: {has_lz4})"
        );
    }
    // Values long enough to be compressed come back whole.
    let long = "the council deliberated ".repeat(10_000);
    client
        .execute(
            "WITH c AS (INSERT INTO conversations (id) VALUES (gen_random_uuid()) RETURNING id)
             INSERT INTO messages (conversation_id, role, content) SELECT id, 'user', $1 FROM c",
            &[&long],
        )
        .expect("insert");
    let stored: String = client
        .query_one(
            "SELECT pg_column_compression(content) || ' ' || (content = $1)::text FROM messages",
            &[&long],
        )
        .expect("select")
        .get(0);
    assert_eq!(stored, format!("{expected} true"));
}

#[test]
fn pg_dump_and_pg_restore_keep_every_row_and_sequence() {
    let cluster = cluster();
    let mut source = database_with_extension(&cluster, "source");
    fill_every_table(&mut source);
    let rows = common::rows_fingerprint(&mut source);
    assert!(
        rows.iter().all(|(_, count, _)| *count > 0),
        "every table has rows: {rows:?}"
    );
    let sequences = common::sequences(&mut source);

    common::dump_and_restore(&cluster, "source", "restored");

    let mut restored = cluster.connect("restored").expect("connect");
    assert_eq!(common::rows_fingerprint(&mut restored), rows);
    assert_eq!(common::sequences(&mut restored), sequences);
    // The search documents are not dumped: the restore's COPY makes them.
    assert_eq!(
        common::search_documents(&mut restored),
        common::search_documents(&mut source)
    );
    common::assert_search_documents_match_the_tables(&mut restored);
    // The app's next insert takes a fresh id rather than colliding.
    restored
        .batch_execute(
            "INSERT INTO messages (conversation_id, role, content)
             SELECT id, 'user', 'after the restore' FROM conversations LIMIT 1;
             INSERT INTO api_keys (key_hash, key_prefix, name) VALUES ('other', 'llmc_0000000', 'next');",
        )
        .expect("the app's next inserts after a restore");
}

fn repository() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn extension_dir() -> PathBuf {
    let output = Command::new(
        std::env::var_os("PG_CONFIG")
            .unwrap_or_else(|| "/usr/lib/postgresql/15/bin/pg_config".into()),
    )
    .arg("--sharedir")
    .output()
    .expect("running pg_config");
    PathBuf::from(String::from_utf8_lossy(&output.stdout).trim()).join("extension")
}

/// The full install scripts of the released versions kept under sql/.
fn released_versions() -> Vec<String> {
    let mut versions: Vec<String> = std::fs::read_dir(repository().join("sql"))
        .expect("reading sql/")
        .filter_map(|entry| {
            let name = entry.ok()?.file_name().into_string().ok()?;
            let version = name.strip_prefix("llm_council--")?.strip_suffix(".sql")?;
            (!version.contains("--")).then(|| version.to_owned())
        })
        .collect();
    versions.sort();
    versions
}

/// The script without the `-- src/file.rs:LINE` comments pgrx writes, which
/// move whenever a source file is edited.
fn without_source_locations(script: &str) -> String {
    script
        .lines()
        .filter(|line| {
            let Some(location) = line.strip_prefix("-- ") else {
                return true;
            };
            let Some((file, number)) = location.rsplit_once(':') else {
                return true;
            };
            !(file.ends_with(".rs")
                && !number.is_empty()
                && number.bytes().all(|b| b.is_ascii_digit()))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_released_install_script_of_this_version_is_what_gets_installed() {
    let current = env!("CARGO_PKG_VERSION");
    assert!(
        released_versions().iter().any(|v| v == current),
        "sql/llm_council--{current}.sql is missing: keep the full install script of every version"
    );
    let kept =
        std::fs::read_to_string(repository().join(format!("sql/llm_council--{current}.sql")))
            .expect("reading the kept script");
    let installed =
        std::fs::read_to_string(extension_dir().join(format!("llm_council--{current}.sql")))
            .expect("reading the installed script (run `cargo pgrx install` first)");
    assert!(
        without_source_locations(&kept) == without_source_locations(&installed),
        "sql/llm_council--{current}.sql differs from what the build installs: a released script never \
         changes; bump the version and add an upgrade script (or refresh it while {current} is unreleased)"
    );
}

/// Installs an old version's script beside the current one so that
/// `CREATE EXTENSION … VERSION` can find it.
fn provide_old_version(version: &str) {
    let from = repository().join(format!("sql/llm_council--{version}.sql"));
    let to = extension_dir().join(format!("llm_council--{version}.sql"));
    std::fs::copy(&from, &to).expect("copying an old install script into the extension directory");
    for entry in std::fs::read_dir(repository().join("sql")).expect("reading sql/") {
        let path = entry.expect("dir entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        if name.starts_with("llm_council--") && name.matches("--").count() == 2 {
            std::fs::copy(&path, extension_dir().join(&name)).expect("copying an upgrade script");
        }
    }
}

#[test]
fn every_released_version_upgrades_to_this_one_keeping_rows_and_catalog() {
    let current = env!("CARGO_PKG_VERSION");
    let cluster = cluster();
    let mut fresh = database_with_extension(&cluster, "fresh");
    let expected_catalog = catalog_fingerprint(&mut fresh);
    assert!(!expected_catalog.is_empty());

    for (n, old) in released_versions()
        .iter()
        .filter(|v| *v != current)
        .enumerate()
    {
        provide_old_version(old);
        let name = format!("from_{n}");
        let mut client = cluster.create_database(&name).expect("create database");
        client
            .batch_execute(&format!("CREATE EXTENSION llm_council VERSION '{old}'"))
            .expect("installing the old version");
        fill_every_table(&mut client);
        let rows = common::rows_fingerprint(&mut client);
        client
            .batch_execute("ALTER EXTENSION llm_council UPDATE")
            .expect("ALTER EXTENSION llm_council UPDATE");
        let version: String = client
            .query_one(
                "SELECT extversion FROM pg_extension WHERE extname = 'llm_council'",
                &[],
            )
            .expect("query")
            .get(0);
        assert_eq!(version, current, "upgrade from {old}");
        assert_eq!(
            common::rows_fingerprint(&mut client),
            rows,
            "rows after upgrading from {old}"
        );
        assert_eq!(
            catalog_fingerprint(&mut client),
            expected_catalog,
            "catalog after upgrading from {old}"
        );
        // The rows that were there are searchable.
        let found: Vec<String> = client
            .query(
                "SELECT kind FROM council_search('quoted or four or beszélgetés') ORDER BY kind",
                &[],
            )
            .expect("council_search after the upgrade")
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(found, ["stage3", "title", "user_message"], "from {old}");
        common::assert_search_documents_match_the_tables(&mut client);
    }
}

/// The upgrade script `sql/llm_council--FROM--TO.sql` as its template
/// `sql/upgrade/FROM--TO.sql` makes it: each line `-- @create FILE NAME`
/// becomes the statement that creates NAME (a function, table or index) as
/// FILE in sql/ has it (a fragment the build includes, or the install
/// script the build generates); `-- @replace FILE NAME` the same for a
/// function, as `CREATE OR REPLACE`; `-- @include FILE` becomes the whole
/// of FILE. An upgrade so carries the very text a fresh install runs, never
/// a copy by hand.
fn generated_upgrade_script(template: &str) -> String {
    let mut script = String::new();
    for line in template.lines() {
        let directive = line
            .strip_prefix("-- @create ")
            .map(|rest| (rest, false))
            .or_else(|| line.strip_prefix("-- @replace ").map(|rest| (rest, true)));
        if let Some(file) = line.strip_prefix("-- @include ") {
            script.push_str(&fragment(file));
            continue;
        }
        let Some((rest, replace)) = directive else {
            script.push_str(line);
            script.push('\n');
            continue;
        };
        let (file, name) = rest
            .split_once(' ')
            .unwrap_or_else(|| panic!("`{line}`: expected FILE NAME"));
        let statement = creating_statement(&fragment(file), name)
            .unwrap_or_else(|| panic!("{file} creates nothing named {name}"));
        if replace {
            script.push_str(&statement.replacen(
                "CREATE FUNCTION",
                "CREATE OR REPLACE FUNCTION",
                1,
            ));
        } else {
            script.push_str(&statement);
        }
    }
    script
}

/// The text of `sql/FILE`.
fn fragment(file: &str) -> String {
    std::fs::read_to_string(repository().join("sql").join(file))
        .unwrap_or_else(|err| panic!("{file}: {err}"))
}

/// The text of the statement in `source` that creates `name`, through its
/// end: the `$$;` closing a function body, or else the first `;` at the
/// end of a line.
fn creating_statement(source: &str, name: &str) -> Option<String> {
    let openings = [
        format!("CREATE FUNCTION @extschema@.{name}("),
        format!("CREATE  FUNCTION \"{name}\"("),
        format!("CREATE FUNCTION \"{name}\"("),
        format!("CREATE TABLE @extschema@.{name} ("),
        format!("CREATE INDEX {name}\n"),
        format!("CREATE UNIQUE INDEX {name}\n"),
        format!("CREATE INDEX {name} "),
        format!("CREATE UNIQUE INDEX {name} "),
    ];
    // An index's name ends the line or is followed by a space, so that
    // `council_search` does not open `council_search_documents_document`.
    let opens = |line: &str| {
        let line = format!("{line}\n");
        openings
            .iter()
            .any(|opening| line.starts_with(opening.as_str()))
    };
    let mut lines = source.lines().skip_while(|line| !opens(line));
    let mut statement = String::new();
    let mut in_body = false;
    for line in lines.by_ref() {
        statement.push_str(line);
        statement.push('\n');
        let ends = if in_body {
            line == "$$;"
        } else {
            line.ends_with(';')
        };
        if ends {
            return Some(statement);
        }
        in_body |= line.ends_with("AS $$");
    }
    None
}

#[test]
fn every_upgrade_script_is_generated_from_its_template() {
    let templates = repository().join("sql/upgrade");
    let mut checked = 0;
    for entry in std::fs::read_dir(&templates).expect("reading sql/upgrade/") {
        let template = entry.expect("entry").path();
        let name = template
            .file_name()
            .and_then(|n| n.to_str())
            .expect("a file name")
            .to_owned();
        let script = repository().join(format!("sql/llm_council--{name}"));
        let generated = format!(
            "-- Generated from sql/upgrade/{name} by tests/schema.rs; edit the template, then\n\
             -- LLM_COUNCIL_WRITE_UPGRADES=1 cargo test --features cluster-tests --test schema every_upgrade_script\n{}",
            generated_upgrade_script(&std::fs::read_to_string(&template).expect("the template"))
        );
        if std::env::var_os("LLM_COUNCIL_WRITE_UPGRADES").is_some() {
            std::fs::write(&script, &generated).expect("writing the upgrade script");
        }
        let committed = std::fs::read_to_string(&script).unwrap_or_default();
        assert!(
            committed == generated,
            "{} is not what sql/upgrade/{name} generates: edit the template and regenerate",
            script.display()
        );
        checked += 1;
    }
    assert!(checked > 0, "no template in sql/upgrade/");
}

#[test]
fn a_created_object_ends_with_its_statement() {
    let fragment = "CREATE FUNCTION @extschema@.f(a int) RETURNS int\nLANGUAGE plpgsql\nAS $$\nBEGIN\n    RETURN a;\nEND\n$$;\n\nCREATE TABLE @extschema@.t (\n    a int\n);\nCREATE UNIQUE INDEX t_one\n    ON @extschema@.t ((true));\n";
    assert_eq!(
        creating_statement(fragment, "f").as_deref(),
        Some("CREATE FUNCTION @extschema@.f(a int) RETURNS int\nLANGUAGE plpgsql\nAS $$\nBEGIN\n    RETURN a;\nEND\n$$;\n")
    );
    assert_eq!(
        creating_statement(fragment, "t").as_deref(),
        Some("CREATE TABLE @extschema@.t (\n    a int\n);\n")
    );
    assert_eq!(
        creating_statement(fragment, "t_one").as_deref(),
        Some("CREATE UNIQUE INDEX t_one\n    ON @extschema@.t ((true));\n")
    );
    let generated = "-- x\nCREATE  FUNCTION \"h\"() RETURNS bool /* bool */\nSTRICT\nLANGUAGE c /* Rust */\nAS 'MODULE_PATHNAME', 'h_wrapper';\n/* </end connected objects> */\n";
    assert_eq!(
        creating_statement(generated, "h").as_deref(),
        Some("CREATE  FUNCTION \"h\"() RETURNS bool /* bool */\nSTRICT\nLANGUAGE c /* Rust */\nAS 'MODULE_PATHNAME', 'h_wrapper';\n")
    );
    assert_eq!(creating_statement(fragment, "missing"), None);
    assert_eq!(
        creating_statement(fragment, "t_on"),
        None,
        "a name is never a prefix"
    );
}

/// A role that searched before the update to 0.3.0 searches after it: the
/// term statistics council_search now reads are granted as the documents
/// were, and the rows already there are ranked by them.
#[test]
fn whoever_searched_before_the_update_to_0_3_0_searches_after_it() {
    provide_old_version("0.2.0");
    let cluster = cluster();
    let mut client = cluster.create_database("council").expect("create database");
    client
        .batch_execute(
            "CREATE EXTENSION llm_council VERSION '0.2.0';
             CREATE ROLE reader LOGIN PASSWORD 'reader';
             GRANT SELECT ON conversations, messages, stage1_responses, stage3_synthesis,
                   council_search_documents TO reader;
             INSERT INTO conversations (id, title) VALUES
                 ('00000000-0000-4000-8000-0000000000c1', 'Granted before the update'),
                 ('00000000-0000-4000-8000-0000000000c2', 'Another granted title, granted twice');
             ALTER EXTENSION llm_council UPDATE;",
        )
        .expect("0.2.0, a reader, rows, then the update");
    let statistics = common::number(
        &mut client,
        "SELECT documents FROM council_search_statistics",
    );
    assert_eq!(statistics, 2);
    let mut reader = cluster
        .connect_as("council", "reader", "reader")
        .expect("connect as reader");
    let found: Vec<(String, f32)> = reader
        .query("SELECT title, rank FROM council_search('granted')", &[])
        .expect("the reader searches after the update")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(found.len(), 2);
    assert!(found.iter().all(|(_, rank)| *rank > 0.0), "{found:?}");
}

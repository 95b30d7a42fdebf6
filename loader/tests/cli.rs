//! council-loader as a DBA runs it, against real clusters with the extension
//! installed (scripts/test.sh runs `cargo pgrx install` first).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use council_loader::cluster::{Cluster, ClusterOptions};
use council_loader::sample::{self, Journal, SampleOptions};

#[path = "../../tests/common/listing.rs"]
mod listing;

use listing::listing;

/// Held by a test that installs a library into the server's own
/// directories, which every cluster of these tests shares: another such
/// test would otherwise copy or replace it midway.
static SERVER_FILES: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn server_files() -> std::sync::MutexGuard<'static, ()> {
    // A test that failed while holding it may have left its library
    // installed (the same one, a byte longer): the next still runs.
    SERVER_FILES
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn loader() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_council-loader"));
    // Nothing from the environment names a server unless a test says so.
    let server_environment = council_loader::connect::SERVER_ENVIRONMENT.iter();
    for var in server_environment.chain(&["DATABASE_URL", "PGPASSWORD"]) {
        command.env_remove(var);
    }
    command
}

fn run(command: &mut Command) -> Output {
    command.output().expect("running council-loader")
}

fn text(output: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn cluster() -> Cluster {
    Cluster::start_temporary(&ClusterOptions::default()).expect("a test cluster")
}

fn database(cluster: &Cluster, name: &str) -> String {
    cluster.create_database(name).expect("create database");
    cluster.url(name)
}

/// The URL of a database "council" where `install` created the extension.
fn installed(cluster: &Cluster) -> String {
    let url = database(cluster, "council");
    let output = run(loader().args(["install", "--database-url", &url]));
    assert!(output.status.success(), "{}", text(&output));
    url
}

/// A sample the server can read: in the cluster's own directory.
fn sample_for_server(cluster: &Cluster, name: &str, options: &SampleOptions) -> PathBuf {
    let dir = cluster.scratch_dir().join(name);
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("council.db");
    sample::write(&path, options).expect("sample");
    cluster.give_to_server(&dir).expect("chown");
    for entry in std::fs::read_dir(&dir).expect("read_dir") {
        cluster
            .give_to_server(&entry.expect("entry").path())
            .expect("chown");
    }
    path
}

/// A sample the server cannot read: in a directory only we may enter.
fn sample_private(name: &str, options: &SampleOptions) -> (tempfile::TempDir, PathBuf) {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::Builder::new()
        .prefix(name)
        .tempdir()
        .expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).expect("chmod");
    let path = dir.path().join("council.db");
    sample::write(&path, options).expect("sample");
    (dir, path)
}

fn count(cluster: &Cluster, database: &str, table: &str) -> i64 {
    let mut client = cluster.connect(database).expect("connect");
    client
        .query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .expect("count")
        .get(0)
}

#[test]
fn install_creates_the_extension_and_a_second_run_changes_nothing() {
    let cluster = cluster();
    let url = database(&cluster, "council");
    let first = run(loader().args(["install", "--database-url", &url]));
    assert!(first.status.success(), "{}", text(&first));
    assert!(
        String::from_utf8_lossy(&first.stdout).contains("created llm_council"),
        "{}",
        text(&first)
    );
    let second = run(loader().args(["install", "--database-url", &url]));
    assert!(second.status.success(), "{}", text(&second));
    assert!(
        String::from_utf8_lossy(&second.stdout).contains("is installed"),
        "{}",
        text(&second)
    );
    // A directory without the extension's files is not a package.
    let empty = tempfile::tempdir().expect("tempdir");
    let bad = run(loader()
        .args(["install", "--database-url", &url, "--from"])
        .arg(empty.path()));
    assert_eq!(bad.status.code(), Some(2), "{}", text(&bad));
}

#[test]
fn import_by_server_path_reports_per_table_with_progress_lines() {
    let cluster = cluster();
    let url = installed(&cluster);
    let path = sample_for_server(
        &cluster,
        "by-path",
        &SampleOptions {
            conversations: 30,
            ..SampleOptions::default()
        },
    );
    let output = run(loader().args(["import", "--database-url", &url]).arg(&path));
    assert!(output.status.success(), "{}", text(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stdout.starts_with("table_name"), "{}", text(&output));
    assert!(stdout.contains("conversations"), "{}", text(&output));
    assert!(
        stderr.contains("llm_council import: messages"),
        "progress as lines: {}",
        text(&output)
    );
    assert!(stderr.contains("read by the server"), "{}", text(&output));
    assert_eq!(count(&cluster, "council", "conversations"), 30);

    // Again, as JSON: everything is already there.
    let again = run(loader()
        .args(["import", "--json", "--database-url", &url])
        .arg(&path));
    assert!(again.status.success(), "{}", text(&again));
    let report: serde_json::Value = serde_json::from_slice(&again.stdout).expect("JSON on stdout");
    assert_eq!(report[0]["table_name"], "conversations");
    assert_eq!(report[0]["skipped"], 30);
    assert_eq!(report[0]["imported"], 0);

    let verified = run(loader().args(["verify", "--database-url", &url]).arg(&path));
    assert!(verified.status.success(), "{}", text(&verified));
}

#[test]
fn a_file_the_server_cannot_read_is_uploaded_with_its_wal_rows() {
    let cluster = cluster();
    let url = installed(&cluster);
    let options = SampleOptions {
        conversations: 20,
        journal: Journal::WalUncheckpointed,
        ..SampleOptions::default()
    };
    let (_dir, path) = sample_private("llm_council-private-", &options);
    let output = run(loader().args(["import", "--database-url", &url]).arg(&path));
    assert!(output.status.success(), "{}", text(&output));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("uploaded"),
        "{}",
        text(&output)
    );
    assert_eq!(
        count(&cluster, "council", "conversations"),
        20,
        "the rows only in -wal came along"
    );
}

#[test]
fn a_sync_by_upload_shows_its_plan_then_catches_up() {
    let cluster = cluster();
    let url = installed(&cluster);
    let options = SampleOptions {
        conversations: 10,
        ..SampleOptions::default()
    };
    let (_dir, path) = sample_private("llm_council-sync-", &options);
    let first = run(loader().args(["import", "--database-url", &url]).arg(&path));
    assert!(first.status.success(), "{}", text(&first));

    // The app, still on SQLite: renames one conversation, deletes another.
    let file = rusqlite::Connection::open(&path).expect("open");
    file.execute_batch(
        "PRAGMA foreign_keys = ON;
         UPDATE conversations SET title = 'renamed' WHERE id = (SELECT min(id) FROM conversations);
         DELETE FROM conversations WHERE id = (SELECT max(id) FROM conversations);",
    )
    .expect("the app's changes");
    drop(file);

    let plan = run(loader()
        .args([
            "import",
            "--mode",
            "sync",
            "--dry-run",
            "--json",
            "--database-url",
            &url,
        ])
        .arg(&path));
    assert!(plan.status.success(), "{}", text(&plan));
    let report: serde_json::Value = serde_json::from_slice(&plan.stdout).expect("JSON on stdout");
    assert_eq!(report[0]["table_name"], "conversations");
    assert_eq!(report[0]["updated"], 1, "{report}");
    assert_eq!(report[0]["deleted"], 1, "{report}");
    assert_eq!(
        count(&cluster, "council", "conversations"),
        10,
        "a plan only"
    );

    let synced = run(loader()
        .args(["import", "--mode", "sync", "--database-url", &url])
        .arg(&path));
    assert!(synced.status.success(), "{}", text(&synced));
    let stderr = String::from_utf8_lossy(&synced.stderr);
    assert!(stderr.contains("uploaded"), "{}", text(&synced));
    assert!(stderr.contains("1 updated"), "{}", text(&synced));
    assert_eq!(count(&cluster, "council", "conversations"), 9);
    let verified = run(loader().args(["verify", "--database-url", &url]).arg(&path));
    assert!(verified.status.success(), "{}", text(&verified));
}

#[test]
fn export_writes_the_servers_file_here_and_never_replaces_one() {
    let cluster = cluster();
    let url = installed(&cluster);
    let options = SampleOptions {
        conversations: 12,
        ..SampleOptions::default()
    };
    let (dir, path) = sample_private("llm_council-export-", &options);
    let imported = run(loader().args(["import", "--database-url", &url]).arg(&path));
    assert!(imported.status.success(), "{}", text(&imported));

    // A directory of this host's user, which the server cannot see.
    let out = dir.path().join("back").join("council.db");
    std::fs::create_dir_all(out.parent().unwrap_or(dir.path())).expect("dir");
    let exported = run(loader()
        .args(["export", "--json", "--database-url", &url])
        .arg(&out));
    assert!(exported.status.success(), "{}", text(&exported));
    let report: serde_json::Value =
        serde_json::from_slice(&exported.stdout).expect("JSON on stdout");
    assert_eq!(report[0]["table_name"], "conversations");
    assert_eq!(report[0]["rows"], 12, "{report}");
    let names: Vec<String> = std::fs::read_dir(out.parent().unwrap_or(dir.path()))
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        vec!["council.db".to_owned()],
        "nothing else beside it"
    );

    // The database holds what the exported file holds, row for row.
    let verified = run(loader().args(["verify", "--database-url", &url]).arg(&out));
    assert!(verified.status.success(), "{}", text(&verified));

    // An existing file is never replaced: exit 2, the file as it was.
    let before = std::fs::read(&out).expect("read");
    let again = run(loader().args(["export", "--database-url", &url]).arg(&out));
    assert_eq!(again.status.code(), Some(2), "{}", text(&again));
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("already exists"),
        "{}",
        text(&again)
    );
    assert_eq!(std::fs::read(&out).expect("read"), before);
}

#[test]
fn exit_codes_tell_what_went_wrong() {
    let cluster = cluster();
    let url = installed(&cluster);
    let dir = tempfile::tempdir().expect("tempdir");

    // Bad files fail here, before any server is asked: even an unreachable one.
    let nowhere = "postgresql://postgres@127.0.0.1:1/none";
    std::fs::write(dir.path().join("notes.db"), "not a database").expect("write");
    let other = rusqlite::Connection::open(dir.path().join("other.db")).expect("open");
    other
        .execute_batch("CREATE TABLE notes (id INTEGER PRIMARY KEY)")
        .expect("create");
    drop(other);
    for (name, says) in [
        ("missing.db", "no such file"),
        ("notes.db", "not an SQLite database"),
        ("other.db", "without the council tables"),
    ] {
        let output = run(loader()
            .args(["import", "--database-url", nowhere])
            .arg(dir.path().join(name)));
        assert_eq!(output.status.code(), Some(2), "{name}: {}", text(&output));
        assert!(
            String::from_utf8_lossy(&output.stderr).contains(says),
            "{name}: {}",
            text(&output)
        );
    }

    // No server there.
    let path = sample_for_server(
        &cluster,
        "codes",
        &SampleOptions {
            conversations: 5,
            ..SampleOptions::default()
        },
    );
    let output = run(loader()
        .args(["import", "--database-url", nowhere])
        .arg(&path));
    assert_eq!(output.status.code(), Some(3), "{}", text(&output));

    // The server refuses a bad row: nothing committed, the SQLSTATE shown.
    let conn = rusqlite::Connection::open(&path).expect("open");
    conn.execute_batch("PRAGMA ignore_check_constraints = ON; UPDATE messages SET role = 'system' WHERE id = (SELECT min(id) FROM messages);")
        .expect("spoil");
    drop(conn);
    let output = run(loader().args(["import", "--database-url", &url]).arg(&path));
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("SQLSTATE: 23514"),
        "{}",
        text(&output)
    );
    assert_eq!(count(&cluster, "council", "conversations"), 0);

    // Quarantine commits; verify then finds the rejected row missing.
    let output = run(loader()
        .args(["import", "--mode", "quarantine", "--database-url", &url])
        .arg(&path));
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let output = run(loader().args(["verify", "--database-url", &url]).arg(&path));
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));

    // A dry run commits nothing but reports.
    let (_private, fresh) = sample_private(
        "llm_council-dry-",
        &SampleOptions {
            conversations: 3,
            seed: 9,
            ..SampleOptions::default()
        },
    );
    let url2 = database(&cluster, "dry");
    assert!(run(loader().args(["install", "--database-url", &url2]))
        .status
        .success());
    let output = run(loader()
        .args(["import", "--dry-run", "--database-url", &url2])
        .arg(&fresh));
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("rolled back"),
        "{}",
        text(&output)
    );
    assert_eq!(count(&cluster, "dry", "conversations"), 0);
}

#[test]
fn status_shows_versions_rows_and_cache() {
    let cluster = cluster();
    let url = database(&cluster, "council");
    let before = run(loader().args(["status", "--database-url", &url]));
    assert!(
        String::from_utf8_lossy(&before.stdout).contains("not installed"),
        "{}",
        text(&before)
    );
    assert!(run(loader().args(["install", "--database-url", &url]))
        .status
        .success());
    let output = run(loader().args(["status", "--json", "--database-url", &url]));
    assert!(output.status.success(), "{}", text(&output));
    let status: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(status["extension_version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(status["rows"]["conversations"], 0);
    assert!(status["cache"]["entries"].is_number());
    assert_eq!(status["imports"], serde_json::json!([]));

    // After an import: its record, with the file's SHA-256, and the search
    // documents in the overview.
    let path = sample_for_server(
        &cluster,
        "status",
        &SampleOptions {
            conversations: 6,
            ..SampleOptions::default()
        },
    );
    let imported = run(loader()
        .arg("import")
        .arg(&path)
        .args(["--database-url", &url]));
    assert!(imported.status.success(), "{}", text(&imported));
    let output = run(loader().args(["status", "--json", "--database-url", &url]));
    let status: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    let sha256 = {
        use sha2::Digest as _;
        let bytes = std::fs::read(&path).expect("read the sample");
        sha2::Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    assert_eq!(status["imports"][0]["sha256"], sha256.as_str());
    assert_eq!(status["imports"][0]["mode"], "strict");
    assert!(status["overview"]["search_documents"].as_i64().unwrap_or(0) > 0);
    assert_eq!(status["overview"]["tables"][0]["table"], "conversations");
    let output = run(loader().args(["status", "--database-url", &url]));
    let shown = String::from_utf8_lossy(&output.stdout);
    for part in [
        "sizes",
        "search",
        "documents",
        "library preloaded",
        "last imports",
        &sha256[..16],
    ] {
        assert!(shown.contains(part), "{part} in:\n{shown}");
    }
}

/// `install --from` a directory of builds takes the one for the server's
/// major, and names the majors it has when it has none for the server's.
#[test]
fn install_picks_the_build_for_the_servers_major() {
    use std::os::unix::fs::PermissionsExt as _;
    let _server_files = server_files();
    let cluster = cluster();
    let url = database(&cluster, "council");
    let mut client = cluster.connect("council").expect("connect");
    let major: i32 = client
        .query_one(
            "SELECT current_setting('server_version_num')::int / 10000",
            &[],
        )
        .expect("version")
        .get(0);
    let library: String = client
        .query_one(
            "SELECT setting FROM pg_config WHERE name = 'PKGLIBDIR'",
            &[],
        )
        .expect("pkglibdir")
        .get(0);
    let share: String = client
        .query_one("SELECT setting FROM pg_config WHERE name = 'SHAREDIR'", &[])
        .expect("sharedir")
        .get(0);
    // A build for another major only: refused, naming both majors.
    let builds = tempfile::tempdir().expect("tempdir");
    let other = if major == 18 { 17 } else { major + 1 };
    let other_build = builds.path().join(format!("llm_council-pg{other}"));
    std::fs::create_dir(&other_build).expect("dir");
    for name in [
        "llm_council.control",
        "llm_council.so",
        "llm_council--0.2.0.sql",
    ] {
        std::fs::write(other_build.join(name), "not this major's").expect("file");
    }
    for dir in [builds.path(), other_build.as_path()] {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    let refused = run(loader()
        .args(["install", "--database-url", &url, "--from"])
        .arg(builds.path()));
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains(&format!("the server runs PostgreSQL {major}"))
            && stderr.contains(&format!("PostgreSQL {other} only")),
        "{}",
        text(&refused)
    );
    assert!(
        std::fs::read(Path::new(&library).join("llm_council.so")).expect("installed library")
            != b"not this major's",
        "the other major's library was installed"
    );
    // With the server's own build beside it (the installed files, as a
    // build), that one is taken.
    let own_build = builds.path().join(format!("llm_council-pg{major}"));
    std::fs::create_dir(&own_build).expect("dir");
    std::fs::copy(
        Path::new(&library).join("llm_council.so"),
        own_build.join("llm_council.so"),
    )
    .expect("copy library");
    for entry in std::fs::read_dir(Path::new(&share).join("extension")).expect("extension dir") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        if name.starts_with("llm_council") {
            std::fs::copy(&path, own_build.join(&name)).expect("copy");
        }
    }
    std::fs::set_permissions(&own_build, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let installed = run(loader()
        .args(["install", "--database-url", &url, "--from"])
        .arg(builds.path()));
    assert!(installed.status.success(), "{}", text(&installed));
    assert!(
        String::from_utf8_lossy(&installed.stdout).contains("created llm_council"),
        "{}",
        text(&installed)
    );
}

/// With no server named anywhere, the loader makes its own cluster, from an
/// empty home, and reuses it the next time.
#[test]
fn the_embedded_default_starts_a_private_cluster_and_reuses_it() {
    use std::os::unix::fs::PermissionsExt as _;
    let home = tempfile::Builder::new()
        .prefix("llm_council-home-")
        .tempdir()
        .expect("tempdir");
    // The server's OS user must be able to pass through it.
    std::fs::set_permissions(home.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let with_home = |command: &mut Command| {
        command
            .env("LLM_COUNCIL_HOME", home.path())
            .env("HOME", home.path());
    };
    let (_dir, path) = sample_private(
        "llm_council-embedded-",
        &SampleOptions {
            conversations: 4,
            ..SampleOptions::default()
        },
    );
    let mut import = loader();
    with_home(import.arg("import").arg(&path));
    let output = run(&mut import);
    let mut status = loader();
    with_home(status.arg("status"));
    let status = run(&mut status);
    let stopped = {
        let mut stop = loader();
        with_home(stop.args(["server", "status"]));
        let status = run(&mut stop);
        let mut stop = loader();
        with_home(stop.args(["server", "stop"]));
        (status, run(&mut stop))
    };
    assert!(output.status.success(), "{}", text(&output));
    assert!(String::from_utf8_lossy(&output.stderr)
        .contains("using the local cluster at postgresql://postgres@127.0.0.1:"));
    assert!(
        String::from_utf8_lossy(&stopped.0.stdout).contains("(running)"),
        "{}",
        text(&stopped.0)
    );
    assert!(
        String::from_utf8_lossy(&stopped.1.stdout).contains("stopped"),
        "{}",
        text(&stopped.1)
    );
    assert!(Path::new(home.path())
        .join("cluster/data/PG_VERSION")
        .is_file());
    // The cache's counters and expiry worker run in the private cluster.
    assert!(status.status.success(), "{}", text(&status));
    assert!(
        String::from_utf8_lossy(&status.stdout).contains("library preloaded  yes"),
        "{}",
        text(&status)
    );
}

/// A server that speaks TLS: sslmode=require encrypts, verify-full checks
/// the certificate against PGSSLROOTCERT and the host name, and fails
/// without the right root.
#[test]
fn tls_follows_libpq_sslmode() {
    let cluster = cluster();
    let url = database(&cluster, "council");
    // The PyPI builds of 16 and 18 have no TLS at all; the loader's side
    // is the same on every major, and 15 and 17 test it.
    let ssl_library: String = cluster
        .connect("council")
        .expect("connect")
        .query_one("SELECT current_setting('ssl_library')", &[])
        .expect("ssl_library")
        .get(0);
    if ssl_library.is_empty() {
        eprintln!("skipped: this server is built without TLS");
        return;
    }
    let dir = cluster.data_dir().to_owned();
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
        ])
        .args(["-addext", "subjectAltName=IP:127.0.0.1"])
        .arg("-keyout")
        .arg(dir.join("server.key"))
        .arg("-out")
        .arg(dir.join("server.crt"))
        .output()
        .expect("openssl");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(
            dir.join("server.key"),
            std::fs::Permissions::from_mode(0o600),
        )
        .expect("chmod");
        cluster
            .give_to_server(&dir.join("server.key"))
            .expect("chown");
        cluster
            .give_to_server(&dir.join("server.crt"))
            .expect("chown");
    }
    let mut admin = cluster.connect("postgres").expect("connect");
    admin
        .batch_execute("ALTER SYSTEM SET ssl = on")
        .expect("ssl on");
    admin
        .batch_execute("SELECT pg_reload_conf()")
        .expect("reload");
    // A new backend sees the reloaded setting once the postmaster has read it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while cluster
        .connect("postgres")
        .expect("connect")
        .query_one("SELECT current_setting('ssl')", &[])
        .expect("ssl")
        .get::<_, String>(0)
        != "on"
    {
        assert!(std::time::Instant::now() < deadline, "ssl never came on");
    }

    let status = |mode: &str, root: Option<&Path>| {
        let mut command = loader();
        command
            .args(["status", "--json", "--database-url", &url])
            .env("PGSSLMODE", mode);
        if let Some(root) = root {
            command.env("PGSSLROOTCERT", root);
        }
        run(&mut command)
    };
    let tls_of = |output: &Output| -> serde_json::Value {
        serde_json::from_slice::<serde_json::Value>(&output.stdout)
            .map(|v| v["tls"].clone())
            .unwrap_or_default()
    };
    let plain = status("disable", None);
    assert!(plain.status.success(), "{}", text(&plain));
    assert!(tls_of(&plain).is_null(), "{}", text(&plain));
    let required = status("require", None);
    assert!(required.status.success(), "{}", text(&required));
    assert!(
        tls_of(&required)
            .as_str()
            .is_some_and(|v| v.starts_with("TLS")),
        "{}",
        text(&required)
    );
    let verified = status("verify-full", Some(&dir.join("server.crt")));
    assert!(verified.status.success(), "{}", text(&verified));
    let unverified = status("verify-full", None);
    assert_eq!(
        unverified.status.code(),
        Some(3),
        "no trusted root: {}",
        text(&unverified)
    );
}

/// The app's WAL-mode files, in a directory their reader may write: the
/// loader, run as root and as an unprivileged user, by server path and by
/// upload, imports every row and leaves the directory as it found it.
#[test]
fn the_loader_leaves_nothing_beside_the_file_as_root_and_as_another_user() {
    use std::os::unix::fs::PermissionsExt as _;
    use std::os::unix::process::CommandExt as _;
    let cluster = cluster();
    let nobody = nix::unistd::User::from_name("nobody")
        .expect("passwd")
        .expect("the nobody user");
    let root = tempfile::Builder::new()
        .prefix("llm_council-loader-")
        .tempdir()
        .expect("tempdir");
    std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let mut failures = Vec::new();
    let mut n = 0;
    for journal in [Journal::Wal, Journal::WalUncheckpointed] {
        for as_nobody in [false, true] {
            for upload in [false, true] {
                n += 1;
                let dir = root.path().join(format!("case{n}"));
                std::fs::create_dir(&dir).expect("dir");
                let path = dir.join("council.db");
                let summary = sample::write(
                    &path,
                    &SampleOptions {
                        conversations: 10,
                        journal,
                        ..SampleOptions::default()
                    },
                )
                .expect("sample");
                // the DBA copied the database and its -wal, not the -shm
                let _ = std::fs::remove_file(dir.join("council.db-shm"));
                let mut paths = vec![dir.clone()];
                paths.extend(
                    std::fs::read_dir(&dir)
                        .expect("read_dir")
                        .map(|e| e.expect("entry").path()),
                );
                for p in &paths {
                    let mode = if p.is_dir() { 0o755 } else { 0o644 };
                    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))
                        .expect("chmod");
                    if as_nobody {
                        nix::unistd::chown(p, Some(nobody.uid), Some(nobody.gid)).expect("chown");
                    }
                }
                let before = listing(&dir);
                let url = database(&cluster, &format!("case{n}"));
                cluster
                    .connect(&format!("case{n}"))
                    .and_then(|mut c| Ok(c.batch_execute("CREATE EXTENSION llm_council")?))
                    .expect("CREATE EXTENSION");
                let mut command = loader();
                command.args(["import", "--database-url", &url]).arg(&path);
                if upload {
                    command.arg("--upload");
                }
                if as_nobody {
                    command
                        .uid(nobody.uid.as_raw())
                        .gid(nobody.gid.as_raw())
                        .env("HOME", "/nonexistent")
                        .env("TMPDIR", "/tmp");
                }
                let output = run(&mut command);
                let case = format!(
                    "{journal} as {} by {}",
                    if as_nobody { "nobody" } else { "root" },
                    if upload { "upload" } else { "path" }
                );
                if !output.status.success() {
                    failures.push(format!("{case}: {}", text(&output)));
                    continue;
                }
                let rows: i64 = summary
                    .tables
                    .iter()
                    .map(|(t, _)| count(&cluster, &format!("case{n}"), t))
                    .sum();
                if rows as u64 != summary.rows() {
                    failures.push(format!("{case}: {rows} of {} rows", summary.rows()));
                }
                if listing(&dir) != before {
                    failures.push(format!("{case}: {before:?} -> {:?}", listing(&dir)));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn a_database_without_the_extension_is_named_with_what_to_run() {
    let cluster = cluster();
    let url = database(&cluster, "bare");
    let path = sample_for_server(
        &cluster,
        "bare",
        &SampleOptions {
            conversations: 3,
            ..SampleOptions::default()
        },
    );
    for upload in [false, true] {
        let mut command = loader();
        command.args(["import", "--database-url", &url]).arg(&path);
        if upload {
            command.arg("--upload");
        }
        let output = run(&mut command);
        assert_eq!(output.status.code(), Some(3), "{}", text(&output));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("not installed in database \"bare\"")
                && stderr.contains("council-loader install")
                && !stderr.contains("does not exist"),
            "{}",
            text(&output)
        );
    }
}

/// The connection breaks during COMMIT (here a deferred trigger has the
/// backend SIGKILL itself as COMMIT runs it): the loader cannot know
/// whether the import committed, says so, and exits 4.
#[test]
fn a_connection_lost_during_commit_is_an_unknown_outcome() {
    let cluster = cluster();
    let url = installed(&cluster);
    let mut client = cluster.connect("council").expect("connect");
    client
        .batch_execute(
            "CREATE FUNCTION die_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
                 EXECUTE format('COPY (SELECT 1) TO PROGRAM %L', 'kill -9 ' || pg_backend_pid());
                 RETURN NULL;
             END $$;
             CREATE CONSTRAINT TRIGGER die_at_commit AFTER INSERT ON api_keys
                 DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION die_at_commit();",
        )
        .expect("the trap");
    let path = sample_for_server(
        &cluster,
        "commit",
        &SampleOptions {
            conversations: 3,
            ..SampleOptions::default()
        },
    );
    let output = run(loader().args(["import", "--database-url", &url]).arg(&path));
    assert_eq!(output.status.code(), Some(4), "{}", text(&output));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("outcome is unknown"),
        "{}",
        text(&output)
    );
    cluster
        .wait_until_ready(std::time::Duration::from_secs(60))
        .expect("recovery");
}

/// A private cluster told to preload a library that is not installed (a
/// package removed, a library not built for this major) still starts,
/// with the libraries that are: the loader can then install what is
/// missing, where PostgreSQL alone would refuse to start at all. And the
/// library joins what else the cluster preloads.
#[test]
fn the_private_cluster_starts_without_a_preloaded_library_that_is_gone() {
    let home = private_home();
    let loader_here = |args: &[&str]| loader_in(home.path(), args);
    let installed = loader_here(&["install"]);
    assert!(installed.status.success(), "{}", text(&installed));

    let cluster =
        Cluster::open_existing(&home.path().join("cluster")).expect("the private cluster");
    cluster
        .connect("postgres")
        .expect("connect")
        .batch_execute(
            "ALTER SYSTEM SET shared_preload_libraries = llm_council, council_not_installed",
        )
        .expect("ALTER SYSTEM");
    cluster.detach();
    let stopped = loader_here(&["server", "stop"]);
    assert!(stopped.status.success(), "{}", text(&stopped));

    let status = loader_here(&["status"]);
    assert!(status.status.success(), "{}", text(&status));
    assert!(
        String::from_utf8_lossy(&status.stdout).contains("library preloaded  yes"),
        "{}",
        text(&status)
    );

    // Another library preloaded, and not this one: install adds it to the
    // list, each a library of its own.
    let cluster =
        Cluster::open_existing(&home.path().join("cluster")).expect("the private cluster");
    cluster
        .connect("postgres")
        .expect("connect")
        .batch_execute("ALTER SYSTEM SET shared_preload_libraries = plpgsql")
        .expect("ALTER SYSTEM");
    cluster.detach();
    assert!(loader_here(&["server", "stop"]).status.success());
    let installed = loader_here(&["install"]);
    let status = loader_here(&["status"]);
    let _ = loader_here(&["server", "stop"]);
    assert!(installed.status.success(), "{}", text(&installed));
    assert!(
        String::from_utf8_lossy(&status.stdout).contains("library preloaded  yes"),
        "{}",
        text(&status)
    );
}

/// A home of its own for the loader's private cluster, which the server's
/// user can enter.
fn private_home() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt as _;
    let home = tempfile::Builder::new()
        .prefix("llm_council-home-")
        .tempdir()
        .expect("tempdir");
    std::fs::set_permissions(home.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    home
}

/// The builds the loader takes when `install` names none: every test's
/// `install` puts them in the server's directories (scripts/test.sh
/// removes the one `cargo pgrx test` leaves there).
fn builds_beside_loader() -> Vec<PathBuf> {
    let loader = Path::new(env!("CARGO_BIN_EXE_council-loader"));
    loader
        .parent()
        .map(council_loader::install::builds)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(major, build)| major.map(|_| build))
        .collect()
}

/// The loader run with `args`, its private cluster under `home`.
fn loader_in(home: &Path, args: &[&str]) -> Output {
    let mut command = loader();
    command
        .env("LLM_COUNCIL_HOME", home)
        .env("HOME", home)
        .args(args);
    run(&mut command)
}

/// A library installed anew under the private cluster, which preloads it,
/// runs at once: the cluster restarts, since every backend inherits the
/// postmaster's copy and would run the old library with the new scripts.
/// The same files again restart nothing.
#[test]
fn a_new_library_restarts_the_private_cluster_that_preloads_it() {
    use std::os::unix::fs::PermissionsExt as _;
    let _server_files = server_files();
    let home = private_home();
    let loader_here = |args: &[&str]| loader_in(home.path(), args);
    let installed = loader_here(&["install"]);
    assert!(installed.status.success(), "{}", text(&installed));
    let cluster_dir = home.path().join("cluster");
    // when the postmaster started, and where the server's files are
    let server = || {
        let cluster = Cluster::open_existing(&cluster_dir).expect("the private cluster");
        let row = cluster
            .connect("postgres")
            .expect("connect")
            .query_one(
                "SELECT pg_postmaster_start_time()::text,
                        (SELECT setting FROM pg_config WHERE name = 'PKGLIBDIR'),
                        (SELECT setting FROM pg_config WHERE name = 'SHAREDIR')",
                &[],
            )
            .expect("the server");
        cluster.detach();
        (
            row.get::<_, String>(0),
            PathBuf::from(row.get::<_, String>(1)),
            PathBuf::from(row.get::<_, String>(2)),
        )
    };
    let (started, library_dir, share_dir) = server();

    // A build of the installed files whose library differs by a byte past
    // its end, which the dynamic loader never reads.
    let builds = tempfile::tempdir().expect("tempdir");
    let major =
        std::fs::read_to_string(home.path().join("cluster/data/PG_VERSION")).expect("PG_VERSION");
    let build = builds
        .path()
        .join(format!("llm_council-pg{}", major.trim()));
    std::fs::create_dir(&build).expect("dir");
    for entry in std::fs::read_dir(share_dir.join("extension")).expect("extension dir") {
        let path = entry.expect("entry").path();
        let name = path.file_name().expect("name").to_owned();
        if name.to_string_lossy().starts_with("llm_council") {
            std::fs::copy(&path, build.join(&name)).expect("copy");
        }
    }
    let library = std::fs::read(library_dir.join("llm_council.so")).expect("installed library");
    let mut changed = library.clone();
    changed.push(0);
    std::fs::write(build.join("llm_council.so"), &changed).expect("changed library");
    for dir in [builds.path(), build.as_path()] {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    let install_build = || {
        let mut args = vec!["install", "--from"];
        args.push(builds.path().to_str().expect("utf-8 path"));
        let output = loader_here(&args);
        assert!(output.status.success(), "{}", text(&output));
        (server().0, text(&output))
    };

    let (restarted, output) = install_build();
    assert_ne!(
        restarted, started,
        "a new library, and the cluster kept the old one: {output}"
    );
    let (again, output) = install_build();
    assert_eq!(
        again,
        restarted,
        "the same files again, and the cluster restarted (builds beside the loader: \
         {:?}): {output}",
        builds_beside_loader()
    );

    // the library as it was, for whatever runs next
    std::fs::write(build.join("llm_council.so"), &library).expect("library");
    install_build();
    assert_eq!(
        std::fs::read(library_dir.join("llm_council.so")).expect("installed library"),
        library
    );
    let stopped = loader_here(&["server", "stop"]);
    assert!(stopped.status.success(), "{}", text(&stopped));
}

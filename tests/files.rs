//! Real files where they really lie: the app's WAL-mode council.db, copied by
//! a DBA into a directory the server cannot write, or owned by another user;
//! and files uploaded from another host in a stream. Every row arrives,
//! nothing is ever written beside the user's file, and nothing of an upload
//! or a private copy stays in the server's temporary space, however the
//! transaction ends.

mod common;

use common::listing::listing;

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use council_loader::cluster::Cluster;
use council_loader::sample::{self, Journal, SampleOptions, SampleSummary};
use postgres::binary_copy::BinaryCopyInWriter;
use postgres::types::Type;
use postgres::Client;

/// Who owns the directory the file lies in.
#[derive(Clone, Copy, Debug)]
enum Place {
    /// the server's OS user: SQLite could create files beside it
    ServerWritable,
    /// root, 755, the file 644: `/srv/council/council.db`
    RootOwned,
    /// another user (nobody), 755, the file 644
    OtherUser,
}

/// The journal forms a council.db comes in.
#[derive(Clone, Copy, Debug)]
enum Form {
    Rollback,
    WalCheckpointed,
    /// a copy of a live app: rows only in -wal, with -shm
    WalLive,
    /// the DBA copied two of the three files: rows only in -wal, no -shm
    WalWithoutShm,
}

fn os_id(flag: &str, name: &str) -> u32 {
    let output = std::process::Command::new("id")
        .args([flag, name])
        .output()
        .expect("id");
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .expect("a numeric id")
}

/// A directory readable by every user, for the placements.
fn open_root() -> tempfile::TempDir {
    let root = tempfile::Builder::new()
        .prefix("llm_council-files-")
        .tempdir()
        .expect("tempdir");
    std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    root
}

/// [`placed`] in a directory root owns, as a DBA's copy lies.
fn root_owned(cluster: &Cluster, root: &Path, name: &str, form: Form) -> (PathBuf, SampleSummary) {
    placed(cluster, root, name, form, Place::RootOwned)
}

/// Writes a 12-conversation sample of `form` into `root/name/council.db` and
/// gives the directory and its files to the owner `place` says.
fn placed(
    cluster: &Cluster,
    root: &Path,
    name: &str,
    form: Form,
    place: Place,
) -> (PathBuf, SampleSummary) {
    let dir = root.join(name);
    std::fs::create_dir(&dir).expect("dir");
    let path = dir.join("council.db");
    let journal = match form {
        Form::Rollback => Journal::Delete,
        Form::WalCheckpointed => Journal::Wal,
        Form::WalLive | Form::WalWithoutShm => Journal::WalUncheckpointed,
    };
    let summary = sample::write(
        &path,
        &SampleOptions {
            conversations: 12,
            journal,
            ..SampleOptions::default()
        },
    )
    .expect("sample");
    if matches!(form, Form::WalWithoutShm) {
        std::fs::remove_file(dir.join("council.db-shm")).expect("no -shm");
    }
    let mut paths = vec![dir.clone()];
    paths.extend(
        std::fs::read_dir(&dir)
            .expect("read_dir")
            .map(|e| e.expect("entry").path()),
    );
    for path in &paths {
        let mode = if path.is_dir() { 0o755 } else { 0o644 };
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
        match place {
            Place::ServerWritable => cluster.give_to_server(path).expect("chown"),
            Place::RootOwned => {}
            Place::OtherUser => std::os::unix::fs::chown(
                path,
                Some(os_id("-u", "nobody")),
                Some(os_id("-g", "nobody")),
            )
            .expect("chown nobody"),
        }
    }
    (path, summary)
}

/// What the server keeps in its temporary space.
fn temp_space(cluster: &Cluster) -> Vec<String> {
    match std::fs::read_dir(cluster.data_dir().join("base/pgsql_tmp")) {
        Ok(entries) => entries
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    }
}

fn imported(client: &mut Client, path: &Path) -> Result<i64, postgres::Error> {
    client
        .query_one(
            "SELECT sum(imported)::bigint FROM council_import($1)",
            &[&path.to_string_lossy().as_ref()],
        )
        .map(|r| r.get(0))
}

/// (source rows, identical) over every table.
fn verified(client: &mut Client, path: &Path) -> (i64, i64) {
    let row = client
        .query_one(
            "SELECT sum(source_rows)::bigint, sum(identical)::bigint FROM council_verify($1)",
            &[&path.to_string_lossy().as_ref()],
        )
        .expect("verify");
    (row.get(0), row.get(1))
}

/// Every journal form in every kind of directory: every row imports and
/// verifies, and the directory holds exactly what it held before.
#[test]
fn every_journal_form_imports_from_every_kind_of_directory_and_leaves_no_trace() {
    let cluster = common::cluster();
    let root = open_root();
    let forms = [
        Form::Rollback,
        Form::WalCheckpointed,
        Form::WalLive,
        Form::WalWithoutShm,
    ];
    let places = [Place::ServerWritable, Place::RootOwned, Place::OtherUser];
    let mut failures = Vec::new();
    for (f, form) in forms.iter().enumerate() {
        for (p, place) in places.iter().enumerate() {
            let case = format!("{form:?} in a {place:?} directory");
            let name = format!("f{f}p{p}");
            let (path, summary) = placed(&cluster, root.path(), &name, *form, *place);
            let before = listing(path.parent().expect("dir"));
            let mut client = common::database_with_extension(&cluster, &name);
            match imported(&mut client, &path) {
                Ok(n) if n as u64 == summary.rows() => {}
                Ok(n) => failures.push(format!("{case}: {n} of {} rows", summary.rows())),
                Err(err) => failures.push(format!("{case}: {err:?}")),
            }
            let (source, identical) = verified(&mut client, &path);
            if source as u64 != summary.rows() || identical != source {
                failures.push(format!(
                    "{case}: verify saw {source} rows, {identical} identical, of {}",
                    summary.rows()
                ));
            }
            if listing(path.parent().expect("dir")) != before {
                failures.push(format!(
                    "{case}: the directory changed: {before:?} -> {:?}",
                    listing(path.parent().expect("dir"))
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    assert_eq!(
        temp_space(&cluster),
        Vec::<String>::new(),
        "private copies stay"
    );
}

/// Rows only in a -wal file the server may not read: the error names that
/// file and the access missing, and nothing is imported.
#[test]
fn an_unreadable_wal_file_is_named_and_nothing_is_imported() {
    let cluster = common::cluster();
    let root = open_root();
    let (path, _) = root_owned(&cluster, root.path(), "locked-wal", Form::WalLive);
    let wal = path.with_file_name("council.db-wal");
    std::fs::set_permissions(&wal, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let mut client = common::database_with_extension(&cluster, "council");
    let err = imported(&mut client, &path).expect_err("an unreadable -wal");
    let db = err.as_db_error().expect("a server error");
    assert_eq!(db.code().code(), "42501", "{db:?}");
    assert!(
        db.message().contains(&*wal.to_string_lossy())
            && db.message().contains("Permission denied"),
        "{db:?}"
    );
    assert_eq!(common::total_rows(&mut client), 0);

    // and a WAL-mode file without any -wal never blames one
    let (clean, _) = root_owned(&cluster, root.path(), "clean", Form::WalCheckpointed);
    std::fs::set_permissions(&clean, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let err = imported(&mut client, &clean).expect_err("an unreadable file");
    let db = err.as_db_error().expect("a server error");
    assert_eq!(db.code().code(), "42501", "{db:?}");
    assert!(!db.message().contains("-wal"), "{db:?}");
}

#[test]
fn a_relative_path_error_names_the_data_directory() {
    let cluster = common::cluster();
    let mut client = common::database_with_extension(&cluster, "council");
    let err = imported(&mut client, Path::new("council.db")).expect_err("no such file");
    let db = err.as_db_error().expect("a server error");
    assert_eq!(db.code().code(), "58P01", "{db:?}");
    let data_dir = cluster.data_dir().to_string_lossy().into_owned();
    assert!(
        db.detail().is_some_and(|d| d.contains(&data_dir)),
        "{db:?} names {data_dir}"
    );
}

/// Sends `path` to this transaction's upload in `chunk`-byte pieces.
fn upload(transaction: &mut postgres::Transaction<'_>, path: &Path, chunk: usize) {
    let bytes = std::fs::read(path).expect("read");
    for piece in bytes.chunks(chunk) {
        transaction
            .execute("SELECT council_upload($1)", &[&piece])
            .expect("council_upload");
    }
}

#[test]
fn a_streamed_upload_imports_and_verifies_and_goes_with_its_transaction() {
    let cluster = common::cluster();
    let root = open_root();
    let (path, summary) = root_owned(&cluster, root.path(), "upload", Form::WalCheckpointed);
    common::database_with_extension(&cluster, "council");
    let notices = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut config: postgres::Config = cluster.url("council").parse().expect("url");
    {
        let notices = notices.clone();
        config.notice_callback(move |notice| {
            if !notice.message().starts_with("llm_council import:") {
                notices
                    .lock()
                    .expect("lock")
                    .push(notice.message().to_owned());
            }
        });
    }
    let mut client = config.connect(postgres::NoTls).expect("connect");

    let mut transaction = client.transaction().expect("begin");
    upload(&mut transaction, &path, 64 * 1024);
    assert_eq!(
        temp_space(&cluster).len(),
        1,
        "the upload is one temporary file"
    );
    let n = common::number(
        &mut transaction,
        "SELECT sum(imported)::bigint FROM council_import_upload()",
    );
    assert_eq!(n as u64, summary.rows());
    let identical = common::number(
        &mut transaction,
        "SELECT sum(identical)::bigint FROM council_verify_upload()",
    );
    assert_eq!(identical as u64, summary.rows());
    transaction.commit().expect("commit");
    assert_eq!(temp_space(&cluster), Vec::<String>::new(), "after commit");
    assert_eq!(
        notices.lock().expect("lock").clone(),
        Vec::<String>::new(),
        "no warning (a temporary file leak) at commit"
    );
    assert_eq!(common::total_rows(&mut client) as u64, summary.rows());

    // The next transaction has no upload of its own.
    let err = client
        .query("SELECT * FROM council_import_upload()", &[])
        .expect_err("no upload");
    assert_eq!(err.code().map(|c| c.code()), Some("55000"), "{err:?}");

    // A file that is no database: the error rolls back, the upload goes.
    let mut transaction = client.transaction().expect("begin");
    transaction
        .execute("SELECT council_upload($1)", &[&vec![7u8; 300_000]])
        .expect("council_upload");
    let err = transaction
        .query("SELECT * FROM council_import_upload()", &[])
        .expect_err("not a database");
    assert_eq!(err.code().map(|c| c.code()), Some("XX001"), "{err:?}");
    drop(transaction);
    assert_eq!(temp_space(&cluster), Vec::<String>::new(), "after an error");

    // The bytea forms leave nothing either, for WAL-mode files too.
    let bytes = std::fs::read(&path).expect("read");
    for _ in 0..3 {
        client
            .query("SELECT * FROM council_verify($1::bytea)", &[&bytes])
            .expect("verify by bytea");
    }
    assert_eq!(
        temp_space(&cluster),
        Vec::<String>::new(),
        "after bytea uploads"
    );
}

/// Times the postmaster has restarted its backends after one crashed.
fn reinitializations(cluster: &Cluster) -> usize {
    cluster
        .log()
        .matches("all server processes terminated; reinitializing")
        .count()
}

/// Waits for the crash recovery that follows a kill -9: the postmaster's
/// reinitialization (which sweeps pgsql_tmp*), then readiness.
fn wait_for_recovery(cluster: &Cluster, before: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while reinitializations(cluster) <= before {
        assert!(
            Instant::now() < deadline,
            "no crash recovery: {}",
            cluster.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    cluster
        .wait_until_ready(Duration::from_secs(60))
        .expect("crash recovery");
}

fn wait_until_gone(cluster: &Cluster, pid: i32) {
    let mut watcher = cluster.connect("postgres").expect("connect");
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let alive: bool = watcher
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1)",
                &[&pid],
            )
            .expect("pg_stat_activity")
            .get(0);
        if !alive {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("backend {pid} is still there");
}

#[test]
fn an_upload_of_a_client_that_disconnects_or_is_killed_is_gone() {
    let cluster = common::cluster();
    common::database_with_extension(&cluster, "council");
    let chunk = vec![1u8; 1 << 20];
    let uploading = |cluster: &Cluster, chunk: &[u8]| {
        let mut client = cluster.connect("council").expect("connect");
        let pid = common::backend_pid(&mut client);
        client.batch_execute("BEGIN").expect("begin");
        client
            .execute("SELECT council_upload($1)", &[&chunk])
            .expect("council_upload");
        assert_eq!(temp_space(cluster).len(), 1, "the upload's file");
        (client, pid)
    };

    // The client goes away mid-upload.
    let (client, pid) = uploading(&cluster, &chunk);
    drop(client);
    wait_until_gone(&cluster, pid);
    assert_eq!(
        temp_space(&cluster),
        Vec::<String>::new(),
        "after a disconnect"
    );

    // kill -9 mid-upload: crash recovery sweeps it.
    let (mut client, pid) = uploading(&cluster, &chunk);
    let crashes = reinitializations(&cluster);
    let killed = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    assert!(client.batch_execute("COMMIT").is_err());
    wait_for_recovery(&cluster, crashes);
    assert_eq!(temp_space(&cluster), Vec::<String>::new(), "after kill -9");
}

/// A backend killed while it reads a WAL-mode file from its private copy
/// (the rows in -wal): the copy is gone after recovery (kill -9) and after
/// the backend's exit (FATAL, which unwinds nothing). The import is held
/// after the copy is made, at its lock on the council tables, which another
/// session holds: the kill lands while the copy exists, whatever the timing.
#[test]
fn a_private_copy_is_gone_after_kill_9_and_after_termination() {
    let cluster = common::cluster();
    common::database_with_extension(&cluster, "council");
    let root = open_root();
    let (path, _) = root_owned(&cluster, root.path(), "live", Form::WalLive);
    for terminate in [false, true] {
        let mut holder = cluster.connect("council").expect("connect");
        holder
            .batch_execute("BEGIN; LOCK TABLE conversations IN ACCESS EXCLUSIVE MODE;")
            .expect("hold the lock");
        let mut client = cluster.connect("council").expect("connect");
        let backend = common::backend_pid(&mut client);
        let crashes = reinitializations(&cluster);
        let import = {
            let path = path.clone();
            std::thread::spawn(move || imported(&mut client, &path).is_err())
        };
        wait_for_lock(&cluster, backend);
        assert!(
            temp_space(&cluster)
                .iter()
                .any(|name| name.contains("llm_council")),
            "the import reads a private copy"
        );
        if terminate {
            let mut other = cluster.connect("council").expect("connect");
            other
                .execute("SELECT pg_terminate_backend($1)", &[&backend])
                .expect("terminate");
        } else {
            let _ = std::process::Command::new("kill")
                .args(["-9", &backend.to_string()])
                .status();
        }
        assert!(
            import.join().expect("the import's thread"),
            "the import failed"
        );
        // After a kill -9 the postmaster ends every backend, this one too.
        let _ = holder.batch_execute("ROLLBACK");
        if terminate {
            wait_until_gone(&cluster, backend);
        } else {
            wait_for_recovery(&cluster, crashes);
        }
        assert_eq!(
            temp_space(&cluster),
            Vec::<String>::new(),
            "after {}",
            if terminate { "termination" } else { "kill -9" }
        );
    }
}

/// Waits until backend `pid` waits for a lock.
fn wait_for_lock(cluster: &Cluster, pid: i32) {
    let mut watcher = cluster.connect("postgres").expect("connect");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let waiting: bool = watcher
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1 AND wait_event_type = 'Lock')",
                &[&pid],
            )
            .expect("pg_stat_activity")
            .get(0);
        if waiting {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "backend {pid} never waited for the lock"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sends `bytes` as the loader does: COPY into the upload's view, binary, in
/// one transaction that is left open for the caller to end.
fn copy_upload(
    client: &mut impl postgres::GenericClient,
    bytes: &[u8],
) -> Result<u64, postgres::Error> {
    let copy = client.copy_in("COPY council_upload_stream FROM STDIN (FORMAT binary)")?;
    let mut rows = BinaryCopyInWriter::new(copy, &[Type::BYTEA]);
    for piece in bytes.chunks(100_000) {
        rows.write(&[&piece])?;
    }
    rows.finish()
}

#[test]
fn a_copy_into_the_upload_stream_is_an_upload() {
    let cluster = common::cluster();
    let root = open_root();
    let (path, summary) = placed(
        &cluster,
        root.path(),
        "copy",
        Form::WalWithoutShm,
        Place::OtherUser,
    );
    let mut client = common::database_with_extension(&cluster, "council");
    let scratch = tempfile::tempdir().expect("scratch");
    let whole = council_file::self_contained(&path, scratch.path()).expect("fold the -wal in");
    let bytes = std::fs::read(&whole).expect("read");
    let mut transaction = client.transaction().expect("begin");
    copy_upload(&mut transaction, &bytes).expect("COPY");
    let imported = common::number(
        &mut transaction,
        "SELECT sum(imported)::bigint FROM council_import_upload()",
    );
    assert_eq!(imported as u64, summary.rows());
    transaction.commit().expect("commit");
    assert_eq!(common::total_rows(&mut client) as u64, summary.rows());
    assert_eq!(temp_space(&cluster), Vec::<String>::new(), "after commit");

    // The view holds nothing and takes nothing but inserts.
    let held = common::number(&mut client, "SELECT count(*) FROM council_upload_stream");
    assert_eq!(held, 0);
    let err = client
        .execute("DELETE FROM council_upload_stream", &[])
        .expect_err("no delete");
    assert_eq!(err.code().map(|c| c.code()), Some("55000"), "{err:?}");
}

/// The backend's peak resident memory (VmHWM), in bytes.
fn peak_memory(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|kb| kb.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .expect("VmHWM")
        * 1024
}

#[test]
fn a_copy_into_the_upload_stream_holds_one_row_at_a_time() {
    let cluster = common::cluster();
    let mut client = common::database_with_extension(&cluster, "council");
    let pid = common::backend_pid(&mut client);
    let size = 256 << 20;
    let bytes = vec![0x5a_u8; size];
    let before = peak_memory(pid);
    let mut transaction = client.transaction().expect("begin");
    copy_upload(&mut transaction, &bytes).expect("COPY");
    drop(transaction);
    let grown = peak_memory(pid).saturating_sub(before);
    assert!(
        grown < (size / 4) as u64,
        "the backend's peak grew by {grown} bytes during a COPY of {size}"
    );
    assert_eq!(temp_space(&cluster), Vec::<String>::new(), "after rollback");
}

#[test]
fn an_upload_needs_table_privileges_before_a_byte_is_stored() {
    let cluster = common::cluster();
    let mut admin = common::database_with_extension(&cluster, "council");
    admin
        .batch_execute("CREATE ROLE outsider LOGIN PASSWORD 'outsider-secret'")
        .expect("role");
    let mut outsider = cluster
        .connect_as("council", "outsider", "outsider-secret")
        .expect("connect");
    let err = outsider
        .execute("SELECT council_upload($1)", &[&vec![0u8; 1000]])
        .expect_err("no privilege");
    assert_eq!(err.code().map(|c| c.code()), Some("42501"), "{err:?}");
    let err = copy_upload(&mut outsider, &[0u8; 1000]).expect_err("no privilege");
    assert_eq!(err.code().map(|c| c.code()), Some("42501"), "{err:?}");
    let err = outsider
        .query(
            "SELECT * FROM council_import($1::bytea)",
            &[&vec![0u8; 1000]],
        )
        .expect_err("no privilege");
    assert_eq!(err.code().map(|c| c.code()), Some("42501"), "{err:?}");
    assert_eq!(temp_space(&cluster), Vec::<String>::new());
}

/// The server runs with a clean environment: a RUST_BACKTRACE of whoever
/// started it puts no backtrace into the errors users see.
#[test]
fn errors_carry_no_backtrace_whatever_the_environment_that_started_the_server() {
    // SAFETY: set before this test starts its cluster; other tests of this
    // binary only inherit a setting that must not matter either.
    std::env::set_var("RUST_BACKTRACE", "1");
    let cluster = common::cluster();
    let mut client = common::database_with_extension(&cluster, "council");
    let err = imported(&mut client, Path::new("/nonexistent/council.db")).expect_err("missing");
    let db = err.as_db_error().expect("a server error");
    let everything = format!("{} {:?} {:?}", db.message(), db.detail(), db.hint());
    assert!(!everything.contains("backtrace"), "{everything}");
}

/// psql's route: `\lo_import` the file, append the large object to the
/// upload, drop it, import; all in one transaction, so nothing stays.
#[test]
fn a_large_object_is_an_upload_too() {
    let cluster = common::cluster();
    let root = open_root();
    let (path, summary) = root_owned(&cluster, root.path(), "lo", Form::WalCheckpointed);
    let mut client = common::database_with_extension(&cluster, "council");
    let bytes = std::fs::read(&path).expect("read");
    let mut transaction = client.transaction().expect("begin");
    let oid: u32 = transaction
        .query_one("SELECT lo_from_bytea(0, $1)", &[&bytes])
        .expect("a large object")
        .get(0);
    let size: i64 = transaction
        .query_one("SELECT council_upload_large_object($1)", &[&oid])
        .expect("council_upload_large_object")
        .get(0);
    assert_eq!(size as usize, bytes.len());
    transaction
        .execute("SELECT lo_unlink($1)", &[&oid])
        .expect("lo_unlink");
    let n = common::number(
        &mut transaction,
        "SELECT sum(imported)::bigint FROM council_import_upload()",
    );
    assert_eq!(n as u64, summary.rows());
    transaction.commit().expect("commit");
    let objects = common::number(&mut client, "SELECT count(*) FROM pg_largeobject_metadata");
    assert_eq!(objects, 0);
    assert_eq!(temp_space(&cluster), Vec::<String>::new());
}

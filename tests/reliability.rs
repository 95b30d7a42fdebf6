//! What happens to a database when an import is killed, cancelled, fed a
//! hostile file or run beside everything else: it ends exactly as before or
//! with every row, and no backend crashes.

mod common;

use common::{give_tree, sample_file, sample_of};

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use council_loader::cluster::Cluster;
use council_loader::sample::{Journal, SampleOptions};
use postgres::Client;

fn import(
    client: &mut impl postgres::GenericClient,
    path: &Path,
    mode: &str,
) -> Result<i64, postgres::Error> {
    client
        .query_one(
            "SELECT sum(imported)::bigint FROM council_import($1, $2)",
            &[&path.to_string_lossy().as_ref(), &mode],
        )
        .map(|r| r.get(0))
}

/// A backend that ended by a signal other than our own kill -9 is a crash.
fn assert_no_crash(cluster: &Cluster, expected_kills: usize) {
    let log = cluster.log();
    let crashes: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("terminated by signal"))
        .collect();
    assert!(
        crashes.len() == expected_kills && crashes.iter().all(|l| l.contains("signal 9")),
        "unexpected backend deaths: {crashes:#?}"
    );
}

/// A connection whose backend is killed with SIGKILL when the first NOTICE
/// that starts with `point` arrives, and whether that has happened. The
/// callback runs before the statement that raised the notice returns.
fn killed_at(cluster: &Cluster, point: &str) -> (Client, Arc<AtomicBool>) {
    let pid = Arc::new(Mutex::new(0i32));
    let fired = Arc::new(AtomicBool::new(false));
    let mut config: postgres::Config = cluster.url("council").parse().expect("url");
    {
        let (pid, fired, point) = (pid.clone(), fired.clone(), point.to_owned());
        config.notice_callback(move |notice| {
            if notice.message().starts_with(&point) && !fired.swap(true, Ordering::SeqCst) {
                let pid = *pid.lock().expect("lock");
                let _ = std::process::Command::new("kill")
                    .args(["-9", &pid.to_string()])
                    .status();
            }
        });
    }
    let mut client = config.connect(postgres::NoTls).expect("connect");
    *pid.lock().expect("lock") = common::backend_pid(&mut client);
    (client, fired)
}

/// Kills the importing backend with SIGKILL when a NOTICE matching `at`
/// arrives: early, in the middle of a table, and after the last table
/// (while the sequences move). The import runs in an explicit transaction
/// and COMMIT is sent only after the kill, so each kill provably lands
/// before the commit: after crash recovery nothing of the import is there.
/// A last kill races an autocommit import's own commit; whichever wins, the
/// database holds none of the rows or all of them, never a part. The same
/// file then imports completely.
#[test]
fn kill_9_mid_import_leaves_nothing_and_the_next_import_completes() {
    let cluster = common::cluster();
    common::database_with_extension(&cluster, "council");
    let (path, summary) = sample_of(&cluster, "kill", 1000);
    let points = [
        "llm_council import: conversations 0/",
        "llm_council import: stage1_responses 10000/",
        "llm_council import: api_key_audit_log done",
    ];
    for (kills, point) in points.iter().enumerate() {
        let (mut client, fired) = killed_at(&cluster, point);
        // The notice callback runs, and kills, before the SELECT returns;
        // COMMIT can only follow it.
        let result = client.batch_execute("BEGIN").and_then(|()| {
            import(&mut client, &path, "strict")?;
            client.batch_execute("COMMIT")
        });
        assert!(
            fired.load(Ordering::SeqCst),
            "the import never reached {point}"
        );
        assert!(
            result.is_err(),
            "the import committed despite kill -9 at {point}"
        );
        cluster
            .wait_until_ready(Duration::from_secs(60))
            .expect("crash recovery");
        let mut after = cluster.connect("council").expect("connect after recovery");
        assert_eq!(
            common::total_rows(&mut after),
            0,
            "rows after kill -9 at {point}"
        );
        assert_no_crash(&cluster, kills + 1);
    }

    // Autocommit: the kill at the last notice races the commit itself.
    let (mut client, _) = killed_at(&cluster, points[2]);
    let _ = import(&mut client, &path, "strict");
    cluster
        .wait_until_ready(Duration::from_secs(60))
        .expect("crash recovery");
    let mut after = cluster.connect("council").expect("connect after recovery");
    let rows = common::total_rows(&mut after);
    assert!(
        rows == 0 || rows as u64 == summary.rows(),
        "a kill racing the commit left {rows} of {} rows: all or nothing",
        summary.rows()
    );
    assert_no_crash(&cluster, points.len() + 1);

    if rows == 0 {
        let mut client = cluster.connect("council").expect("connect");
        assert_eq!(
            import(&mut client, &path, "strict").expect("import after the crashes") as u64,
            summary.rows()
        );
    }
    let mut client = cluster.connect("council").expect("connect");
    assert_eq!(common::total_rows(&mut client) as u64, summary.rows());
}

/// Runs `pg_cancel_backend(pid)` from a connection of its own once
/// `condition` (a query of `$1`, the pid) returns a row; returns whether
/// the cancel was sent, and when.
fn cancel_once(
    url: String,
    pid: i32,
    condition: &'static str,
) -> std::thread::JoinHandle<(bool, Instant)> {
    std::thread::spawn(move || {
        let mut other = Client::connect(&url, postgres::NoTls).expect("connect");
        let deadline = Instant::now() + Duration::from_secs(300);
        while other
            .query_opt(condition, &[&pid])
            .expect("condition")
            .is_none()
        {
            assert!(Instant::now() < deadline, "never true: {condition}");
        }
        let sent = Instant::now();
        let cancelled: bool = other
            .query_one("SELECT pg_cancel_backend($1)", &[&pid])
            .expect("cancel")
            .get(0);
        (cancelled, sent)
    })
}

#[test]
fn pg_cancel_backend_stops_an_import_within_a_second() {
    let cluster = common::cluster();
    let mut client = common::database_with_extension(&cluster, "council");
    let (path, _) = sample_of(&cluster, "cancel", 800);
    let pid = common::backend_pid(&mut client);
    // Cancelled in the middle of its COPY: once COPY reports rows.
    let canceller = cancel_once(
        cluster.url("council"),
        pid,
        "SELECT 1 FROM pg_stat_progress_copy WHERE pid = $1 AND tuples_processed > 0",
    );
    let result = import(&mut client, &path, "strict");
    let returned = Instant::now();
    let (cancelled, sent) = canceller.join().expect("canceller");
    assert!(cancelled);
    let err = result.expect_err("cancelled");
    assert_eq!(err.code().map(|c| c.code()), Some("57014"), "{err}");
    assert!(
        returned.duration_since(sent) < Duration::from_secs(1),
        "took {:?}",
        returned.duration_since(sent)
    );
    assert_eq!(common::total_rows(&mut client), 0);
    assert_no_crash(&cluster, 0);
}

/// An import builds its search documents last: it locks their table, then
/// parses the rows in one statement while a thread of its own builds the
/// postings from them. A cancel sent once that lock is held lands in that
/// build (or, should the import be through, in nothing: it waits for
/// COMMIT, holding the lock). Either the import ends with 57014 and leaves
/// nothing (no row, no document), and the same file then imports whole;
/// or it commits whole, with every document. No backend crashes.
#[test]
fn a_cancel_while_the_search_documents_are_built_leaves_nothing_or_everything() {
    let cluster = common::cluster();
    let mut client = common::database_with_extension(&cluster, "cancel_search");
    let (path, summary) = sample_of(&cluster, "cancel-search", 800);
    let pid = common::backend_pid(&mut client);
    let canceller = cancel_once(
        cluster.url("cancel_search"),
        pid,
        "SELECT 1 FROM pg_locks WHERE pid = $1 AND granted AND mode = 'ExclusiveLock'
           AND relation = 'council_search_documents'::regclass",
    );
    let mut transaction = client.transaction().expect("begin");
    let result = import(&mut transaction, &path, "strict");
    assert!(
        canceller.join().expect("canceller").0,
        "the cancel was sent"
    );
    match result {
        Err(err) => {
            assert_eq!(err.code().map(|c| c.code()), Some("57014"), "{err}");
            transaction.rollback().expect("rollback");
            assert_eq!(common::total_rows(&mut client), 0);
            let documents: i64 = client
                .query_one("SELECT count(*) FROM council_search_documents", &[])
                .expect("documents")
                .get(0);
            assert_eq!(documents, 0);
            assert_no_crash(&cluster, 0);
            assert_eq!(
                import(&mut client, &path, "strict").expect("the same file again") as u64,
                summary.rows()
            );
        }
        Ok(imported) => {
            transaction.commit().expect("commit");
            assert_no_crash(&cluster, 0);
            assert_eq!(imported as u64, summary.rows());
        }
    }
    common::assert_search_documents_match_the_tables(&mut client);
}

/// A backend is interrupted for more than cancels: asked to log its memory
/// contexts, to absorb a ProcSignalBarrier, to read a parallel worker's
/// message. None of these may stop an import, whenever it arrives.
#[test]
fn an_interrupt_that_ends_nothing_leaves_the_import_running() {
    let cluster = common::cluster();
    let mut client = common::database_with_extension(&cluster, "council");
    let (path, _) = sample_of(&cluster, "interrupted", 300);
    let pid = common::backend_pid(&mut client);
    let url = cluster.url("council");
    let importing = Arc::new(AtomicBool::new(true));
    let still_importing = Arc::clone(&importing);
    let interrupter = std::thread::spawn(move || {
        let mut other = Client::connect(&url, postgres::NoTls).expect("connect");
        let mut sent = 0;
        while still_importing.load(Ordering::SeqCst) {
            let signalled: bool = other
                .query_one("SELECT pg_log_backend_memory_contexts($1)", &[&pid])
                .expect("pg_log_backend_memory_contexts")
                .get(0);
            sent += i32::from(signalled);
            std::thread::sleep(Duration::from_millis(5));
        }
        sent
    });
    let result = import(&mut client, &path, "strict");
    importing.store(false, Ordering::SeqCst);
    let sent = interrupter.join().expect("interrupter");
    assert!(sent > 0, "the backend was never interrupted");
    let imported = result.expect("the import, interrupted only by requests to log");
    assert_eq!(imported, common::total_rows(&mut client));
    assert!(imported > 0);
    assert_no_crash(&cluster, 0);
}

/// Files made to hurt the reader: a clear error or an exact quarantine,
/// never a crash.
#[test]
fn hostile_files_give_clear_errors_and_never_crash_the_backend() {
    let cluster = common::cluster();
    let (good, _) = sample_of(&cluster, "good", 3);
    let bytes = std::fs::read(&good).expect("read");
    let dir = cluster.scratch_dir().join("hostile");
    std::fs::create_dir_all(&dir).expect("dir");

    // a header that lies about the page size
    let mut lie = bytes.clone();
    lie[16] = 0x03;
    lie[17] = 0x00;
    std::fs::write(dir.join("page-size.db"), &lie).expect("write");
    // a header that claims many more pages than the file has
    let mut short = bytes.clone();
    short[28..32].copy_from_slice(&0x00ff_ffffu32.to_be_bytes());
    short.truncate(bytes.len() / 2);
    std::fs::write(dir.join("page-count.db"), &short).expect("write");
    // random bytes behind a valid header
    let mut noise = bytes[..100].to_vec();
    noise.extend((0..bytes.len() - 100).map(|i| (i * 7919 % 251) as u8));
    std::fs::write(dir.join("noise.db"), &noise).expect("write");
    give_tree(&cluster, &dir);

    let mut client = common::database_with_extension(&cluster, "council");
    for name in ["page-size.db", "page-count.db", "noise.db"] {
        let err = import(&mut client, &dir.join(name), "strict").expect_err(name);
        let code = err.code().map(|c| c.code().to_owned()).unwrap_or_default();
        let message = err
            .as_db_error()
            .map(|e| e.message().to_owned())
            .unwrap_or_default();
        assert!(
            ["XX001", "42P01", "58030", "22P02", "22007", "23514"].contains(&code.as_str()),
            "{name}: {code} {message}"
        );
        assert!(
            message.contains(name),
            "{name}: the error names the file: {message}"
        );
    }
    assert_eq!(common::total_rows(&mut client), 0);

    // deeply nested JSON and a very long text in an otherwise good file
    let (deep, summary) = sample_of(&cluster, "deep", 3);
    let conn = rusqlite::Connection::open(&deep).expect("open");
    let nested = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    conn.execute("UPDATE stage2_rankings SET rubric_scores = ?1 WHERE id = (SELECT min(id) FROM stage2_rankings)", [&nested])
        .expect("nest");
    let long = "x".repeat(64 << 20);
    conn.execute("UPDATE messages SET content = ?1 WHERE id = (SELECT min(id) FROM messages WHERE role = 'user')", [&long])
        .expect("long");
    drop(conn);
    let err = import(&mut client, &deep, "strict").expect_err("too deep");
    assert_eq!(err.code().map(|c| c.code()), Some("22P02"), "{err}");
    let message = err
        .as_db_error()
        .map(|e| e.message().to_owned())
        .unwrap_or_default();
    assert!(
        message.contains("nested") && message.contains("stage2_rankings"),
        "{message}"
    );
    let imported = import(&mut client, &deep, "quarantine").expect("quarantine");
    assert_eq!(imported as u64, summary.rows() - 1);
    let longest: i32 = client
        .query_one("SELECT max(length(content)) FROM messages", &[])
        .expect("q")
        .get(0);
    assert_eq!(longest, 64 << 20, "the 64 MB text arrived whole");
    assert_no_crash(&cluster, 0);
}

/// The import reads one snapshot: the app writing to the file meanwhile
/// (WAL mode, as the app runs) changes nothing of what is imported.
#[test]
fn a_file_that_grows_while_it_is_read_imports_one_consistent_snapshot() {
    let cluster = common::cluster();
    let mut client = common::database_with_extension(&cluster, "council");
    let (path, _) = sample_file(
        &cluster,
        "growing",
        &SampleOptions {
            conversations: 400,
            journal: Journal::Wal,
            ..SampleOptions::default()
        },
    );
    // The app's connection: its first write makes the -wal and -shm files,
    // which the server's OS user must be able to open too.
    let conn = rusqlite::Connection::open(&path).expect("open for writing");
    conn.busy_timeout(Duration::from_secs(5))
        .expect("busy timeout");
    conn.execute_batch("BEGIN; UPDATE conversations SET title = title WHERE 0; COMMIT;")
        .expect("first write");
    give_tree(&cluster, path.parent().expect("dir"));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) && n < 2000 {
                conn.execute_batch(&format!(
                    "BEGIN;
                     INSERT INTO conversations (id, title, created_at, updated_at) VALUES ('grow-{n}', 'new', '', '');
                     INSERT INTO messages (conversation_id, role, content, created_at) VALUES ('grow-{n}', 'user', 'hi', '');
                     COMMIT;"
                ))
                .expect("the app keeps writing");
                n += 1;
            }
            n
        })
    };
    let report: Vec<(String, i64, i64)> = common::triples(
        &mut client,
        "SELECT table_name, source_rows, imported FROM council_import($1)",
        &[&path.to_string_lossy().as_ref()],
    );
    stop.store(true, Ordering::Relaxed);
    let written = writer.join().expect("writer");
    assert!(written > 0);
    for (table, source, imported) in &report {
        assert_eq!(source, imported, "{table}");
    }
    // Every imported message has its conversation: one snapshot, both tables.
    let orphans = common::number(&mut client, "SELECT count(*) FROM messages m WHERE NOT EXISTS (SELECT 1 FROM conversations c WHERE c.id = m.conversation_id)");
    assert_eq!(orphans, 0);
    let grown = common::number(
        &mut client,
        "SELECT count(*) FROM conversations WHERE legacy_id LIKE 'grow-%'",
    );
    let grown_messages = common::number(&mut client, "SELECT count(*) FROM messages WHERE content = 'hi' AND conversation_id IN (SELECT id FROM conversations WHERE legacy_id LIKE 'grow-%')");
    assert_eq!(
        grown, grown_messages,
        "the app's pairs arrive whole or not at all"
    );
    assert_no_crash(&cluster, 0);
}

#[test]
fn a_dump_of_imported_data_rejects_and_cache_restores_whole() {
    let cluster = common::cluster();
    let mut source = common::database_with_extension(&cluster, "source");
    let (path, _) = sample_of(&cluster, "dump", 40);
    let conn = rusqlite::Connection::open(&path).expect("open");
    conn.execute_batch("PRAGMA ignore_check_constraints = ON; UPDATE messages SET role = 'system' WHERE id = (SELECT max(id) FROM messages WHERE role = 'user');")
        .expect("spoil");
    drop(conn);
    import(&mut source, &path, "quarantine").expect("import");
    source
        .batch_execute(
            "SELECT council_cache_put('k' || i, 'q', '[]', '[]', '{}', '{}') FROM generate_series(1, 5) i;
             SELECT * FROM council_cache_get('k1');",
        )
        .expect("cache");
    let rows = common::rows_fingerprint(&mut source);
    assert!(rows.iter().all(|(_, n, _)| *n > 0), "{rows:?}");
    let sequences = common::sequences(&mut source);

    common::dump_and_restore(&cluster, "source", "restored");
    let mut client = cluster.connect("restored").expect("connect");
    assert_eq!(common::rows_fingerprint(&mut client), rows);
    assert_eq!(common::sequences(&mut client), sequences);
    client
        .batch_execute("INSERT INTO messages (conversation_id, role, content) SELECT id, 'user', 'after restore' FROM conversations LIMIT 1")
        .expect("the app's next insert");
    // and the restored copy still knows every row of the file
    let verified: i64 = client
        .query_one(
            "SELECT sum(missing + differing)::bigint FROM council_verify($1)",
            &[&path.to_string_lossy().as_ref()],
        )
        .expect("verify")
        .get(0);
    assert_eq!(verified, 1, "only the quarantined row is not in the tables");
}

/// Roles without pg_read_server_files reach no server file through any
/// function or path trick; nothing runs as its owner.
#[test]
fn no_server_file_is_readable_without_the_privilege() {
    let cluster = common::cluster();
    let mut admin = common::database_with_extension(&cluster, "council");
    let (path, _) = sample_of(&cluster, "private", 2);
    let link = cluster.scratch_dir().join("link.db");
    std::os::unix::fs::symlink(&path, &link).expect("symlink");
    admin
        .batch_execute(
            "CREATE ROLE intruder LOGIN PASSWORD 'intruder-secret';
             GRANT INSERT, SELECT ON ALL TABLES IN SCHEMA public TO intruder;
             GRANT EXECUTE ON FUNCTION council_import(text, text, boolean), council_verify(text) TO intruder;",
        )
        .expect("role");
    let mut intruder = cluster
        .connect_as("council", "intruder", "intruder-secret")
        .expect("connect");
    let dir = path.parent().expect("dir").to_string_lossy().into_owned();
    let attempts = [
        path.to_string_lossy().into_owned(),
        format!("{dir}/../private/council.db"),
        link.to_string_lossy().into_owned(),
        "/proc/self/environ".into(),
        "postgresql.conf".into(),
        "../../../../etc/passwd".into(),
    ];
    for attempt in &attempts {
        for query in [
            "SELECT count(*) FROM council_import($1)",
            "SELECT count(*) FROM council_verify($1)",
        ] {
            let err = intruder.query_one(query, &[attempt]).expect_err(attempt);
            assert_eq!(
                err.code().map(|c| c.code()),
                Some("42501"),
                "{query} {attempt}: {err}"
            );
        }
    }
    // Without the grant, not even EXECUTE: revoked from PUBLIC.
    let public: Vec<(String, bool)> = admin
        .query(
            "SELECT p.oid::regprocedure::text, has_function_privilege('public', p.oid, 'EXECUTE')
             FROM pg_proc p WHERE p.proname IN ('council_import', 'council_verify') ORDER BY 1",
            &[],
        )
        .expect("q")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        public,
        vec![
            ("council_import(bytea,text,boolean)".into(), true),
            ("council_import(text,text,boolean)".into(), false),
            ("council_verify(bytea)".into(), true),
            ("council_verify(text)".into(), false),
        ]
    );
    let definers = common::number(
        &mut admin,
        "SELECT count(*) FROM pg_proc p JOIN pg_depend d ON d.objid = p.oid AND d.deptype = 'e'
             JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'llm_council'
             WHERE p.prosecdef AND NOT coalesce(p.proconfig::text LIKE '%search_path%', false)",
    );
    assert_eq!(
        definers, 0,
        "a SECURITY DEFINER function without a pinned search_path"
    );
}

/// Eight clients using the cache while three imports run: two into other
/// databases, one into the cache's own. No error, no deadlock, exact counts.
#[test]
fn cache_traffic_and_imports_run_side_by_side() {
    let cluster = common::cluster();
    let mut main = common::database_with_extension(&cluster, "main");
    common::database_with_extension(&cluster, "other1");
    common::database_with_extension(&cluster, "other2");
    let files: Vec<PathBuf> = (0..3)
        .map(|i| {
            sample_file(
                &cluster,
                &format!("soak{i}"),
                &SampleOptions {
                    conversations: 150,
                    seed: 10 + i,
                    ..SampleOptions::default()
                },
            )
            .0
        })
        .collect();
    main.batch_execute(
        "SELECT council_cache_put('hot', 'q', '[]', '[]', '{}', '{}', interval '1 day')",
    )
    .expect("put");
    let stop = Arc::new(AtomicBool::new(false));
    let url = |db: &str| cluster.url(db);
    let clients: Vec<_> = (0..8)
        .map(|i| {
            let (url, stop) = (url("main"), stop.clone());
            std::thread::spawn(move || {
                let mut client = Client::connect(&url, postgres::NoTls).expect("connect");
                let mut gets = 0i64;
                let deadline = Instant::now() + Duration::from_secs(30);
                while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                    let row = client.query_opt("SELECT hit_count FROM council_cache_get('hot')", &[]).expect("get");
                    assert!(row.is_some());
                    gets += 1;
                    if i % 4 == 0 {
                        client
                            .execute("SELECT council_cache_put('c' || $1::text, 'q', '[]', '[]', '{}', '{}', interval '1 millisecond')", &[&(gets % 20).to_string()])
                            .expect("put");
                        client.query_one("SELECT council_cache_expire()", &[]).expect("expire");
                    }
                }
                gets
            })
        })
        .collect();
    let imports: Vec<_> = [("other1", 0), ("other2", 1), ("main", 2)]
        .into_iter()
        .map(|(db, i)| {
            let (url, path) = (url(db), files[i].clone());
            std::thread::spawn(move || {
                let mut client = Client::connect(&url, postgres::NoTls).expect("connect");
                import(&mut client, &path, "strict").expect("an import beside the cache traffic")
            })
        })
        .collect();
    let imported: Vec<i64> = imports
        .into_iter()
        .map(|t| t.join().expect("import thread"))
        .collect();
    stop.store(true, Ordering::Relaxed);
    let gets: i64 = clients
        .into_iter()
        .map(|t| t.join().expect("cache client"))
        .sum();
    assert!(imported.iter().all(|n| *n > 0), "{imported:?}");
    let hits = common::number(
        &mut main,
        "SELECT hit_count FROM response_cache WHERE cache_key = 'hot'",
    );
    assert_eq!(hits, gets, "every get counted once");
    assert_no_crash(&cluster, 0);
}

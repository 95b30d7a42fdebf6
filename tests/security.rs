//! What a DBA relies on before handing the extension to roles: no caller's
//! code runs inside it, no superuser-only mode is lent out, COPY's and LOCK
//! TABLE's checks hold, a failed dry run leaves the caller's transaction as
//! PostgreSQL would, and the statistics cannot be forged. docs/security.md
//! maps each promise to its test.

mod common;

use std::sync::{Arc, Mutex};

use common::{sample_of, spoil, sqlstate};

use council_loader::cluster::Cluster;
use postgres::Client;

fn detail(err: &postgres::Error) -> String {
    err.as_db_error()
        .map(|e| format!("{} | {:?} | {:?}", e.message(), e.detail(), e.hint()))
        .unwrap_or_else(|| err.to_string())
}

/// A role of the test's own, with a password, and a client logged in as it.
fn role(cluster: &Cluster, admin: &mut Client, database: &str, name: &str, grants: &str) -> Client {
    admin
        .batch_execute(&format!(
            "CREATE ROLE {name} LOGIN PASSWORD '{name}-secret'; {grants}"
        ))
        .expect("role");
    cluster
        .connect_as(database, name, &format!("{name}-secret"))
        .expect("connect as the role")
}

const IMPORTER_GRANTS: &str = "GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA public TO {};
     GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO {};";

fn importer_grants(name: &str) -> String {
    IMPORTER_GRANTS.replace("{}", name)
}

/// The reproduced attack: a role with table privileges and TEMP shadows
/// `jsonb` with a domain in its temporary schema whose check runs its own
/// function, then uploads a file half of whose rows the database holds (so
/// the import compares them). Its function never runs; and the import never
/// switches a role that may not set session_replication_role to replica.
#[test]
fn a_callers_search_path_runs_none_of_its_code_and_lends_no_replica_mode() {
    let cluster = common::cluster();
    let mut admin = common::database_with_extension(&cluster, "council");
    let (path, _) = sample_of(&cluster, "half", 12);
    // Half of the file is already there.
    let half = path.with_file_name("half.db");
    std::fs::copy(&path, &half).expect("copy");
    let conn = spoil(&half);
    conn.execute_batch(
        "DELETE FROM conversations WHERE rowid % 2 = 0;
         DELETE FROM messages WHERE conversation_id NOT IN (SELECT id FROM conversations);
         DELETE FROM stage1_responses WHERE message_id NOT IN (SELECT id FROM messages);
         DELETE FROM stage2_rankings WHERE message_id NOT IN (SELECT id FROM messages);
         DELETE FROM stage3_synthesis WHERE message_id NOT IN (SELECT id FROM messages);
         DELETE FROM deliberation_metadata WHERE message_id NOT IN (SELECT id FROM messages);",
    )
    .expect("half");
    drop(conn);
    common::give_tree(&cluster, path.parent().expect("dir"));
    admin
        .query(
            "SELECT * FROM council_import($1)",
            &[&half.to_string_lossy().as_ref()],
        )
        .expect("the first half");

    let mut eve = role(
        &cluster,
        &mut admin,
        "council",
        "eve",
        &format!(
            "{} GRANT TEMP ON DATABASE council TO eve;",
            importer_grants("eve")
        ),
    );
    eve.batch_execute(
        "CREATE TEMP TABLE calls (replication_role text);
         CREATE FUNCTION pg_temp.f(pg_catalog.jsonb) RETURNS boolean LANGUAGE sql AS
             $$ INSERT INTO pg_temp.calls VALUES (current_setting('session_replication_role')) RETURNING true $$;
         CREATE DOMAIN pg_temp.jsonb AS pg_catalog.jsonb CHECK (pg_temp.f(VALUE));
         SET client_min_messages = debug1;",
    )
    .expect("eve's trap");
    let bytes = std::fs::read(&path).expect("read");
    let imported: i64 = eve
        .query_one(
            "SELECT sum(imported)::bigint FROM council_import($1::bytea)",
            &[&bytes],
        )
        .expect("eve imports the whole file")
        .get(0);
    assert!(imported > 0);
    let calls = common::number(&mut eve, "SELECT count(*) FROM pg_temp.calls");
    assert_eq!(calls, 0, "eve's function ran inside the import");

    // Whether the triggers were skipped is said at DEBUG1: for eve, never.
    let said = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut config: postgres::Config = cluster.url("council").parse().expect("url");
    config.user("eve").password("eve-secret");
    {
        let said = said.clone();
        config.notice_callback(move |n| said.lock().expect("lock").push(n.message().to_owned()));
    }
    let mut eve = config.connect(postgres::NoTls).expect("connect as eve");
    eve.batch_execute("SET client_min_messages = debug1")
        .expect("debug1");
    eve.query(
        "SELECT * FROM council_import($1::bytea, dry_run => true)",
        &[&bytes],
    )
    .expect("a dry run as eve");
    let said = said.lock().expect("lock").clone();
    assert!(
        said.iter()
            .any(|m| m.contains("foreign keys checked by PostgreSQL's per-row triggers")),
        "{said:?}"
    );
    assert!(
        !said.iter().any(|m| m.contains("triggers skipped")),
        "{said:?}"
    );
}

/// A superuser's import skips the foreign-key triggers only while the
/// council tables carry exactly the extension's own: a foreign key the DBA
/// added, or a deferrable unique constraint, keeps its triggers, so the
/// rows that break it are refused rather than committed.
#[test]
fn the_dbas_own_constraints_keep_their_triggers() {
    let cluster = common::cluster();
    let (path, _) = sample_of(&cluster, "constraints", 10);
    let cases = [
        (
            "dba_fk",
            "CREATE TABLE known_models (name text PRIMARY KEY);
             INSERT INTO known_models VALUES ('none of the sample''s');
             ALTER TABLE stage1_responses ADD CONSTRAINT known_model
                 FOREIGN KEY (model) REFERENCES known_models (name);",
            "23503",
        ),
        (
            "dba_deferrable",
            "ALTER TABLE stage2_rankings ADD CONSTRAINT one_ranking_per_message
                 UNIQUE (message_id) DEFERRABLE INITIALLY IMMEDIATE;",
            "23505",
        ),
    ];
    for (database, ddl, expected) in cases {
        let mut client = common::database_with_extension(&cluster, database);
        client.batch_execute(ddl).expect("the DBA's constraint");
        let err = client
            .query(
                "SELECT * FROM council_import($1)",
                &[&path.to_string_lossy().as_ref()],
            )
            .expect_err("rows that break the DBA's constraint");
        assert_eq!(sqlstate(&err), expected, "{database}: {}", detail(&err));
        assert_eq!(common::total_rows(&mut client), 0, "{database}");
    }
}

/// COPY FROM refuses read-only transactions and tables whose row-level
/// security applies to the caller; so does the import, which writes through
/// COPY's machinery.
#[test]
fn read_only_transactions_and_row_level_security_are_refused_as_copy_refuses_them() {
    let cluster = common::cluster();
    let mut admin = common::database_with_extension(&cluster, "council");
    let (path, _) = sample_of(&cluster, "ro", 3);
    let bytes = std::fs::read(&path).expect("read");
    let mut transaction = admin
        .build_transaction()
        .read_only(true)
        .start()
        .expect("begin read only");
    let err = transaction
        .query("SELECT * FROM council_import($1::bytea)", &[&bytes])
        .expect_err("read-only");
    assert_eq!(sqlstate(&err), "25006", "{}", detail(&err));
    drop(transaction);

    let mut tenant = role(
        &cluster,
        &mut admin,
        "council",
        "tenant",
        &importer_grants("tenant"),
    );
    admin
        .batch_execute(
            "ALTER TABLE conversations ENABLE ROW LEVEL SECURITY;
             CREATE POLICY own ON conversations USING (title = current_user);",
        )
        .expect("row-level security");
    let err = tenant
        .query("SELECT * FROM council_import($1::bytea)", &[&bytes])
        .expect_err("row-level security");
    assert_eq!(sqlstate(&err), "0A000", "{}", detail(&err));
    assert!(detail(&err).contains("conversations"), "{}", detail(&err));
    assert_eq!(common::total_rows(&mut admin), 0);
}

/// Every privilege the import needs is checked before anything is locked,
/// and the error names the one that is missing: a role with INSERT alone
/// does not get the SHARE ROW EXCLUSIVE lock LOCK TABLE would refuse it.
#[test]
fn every_privilege_is_checked_up_front_and_the_missing_one_named() {
    let cluster = common::cluster();
    let mut admin = common::database_with_extension(&cluster, "council");
    let (path, _) = sample_of(&cluster, "privileges", 3);
    let bytes = std::fs::read(&path).expect("read");
    let cases = [
        (
            "inserter",
            "GRANT SELECT, INSERT ON ALL TABLES IN SCHEMA public TO inserter;
             GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO inserter;",
            "UPDATE, DELETE or TRUNCATE",
        ),
        (
            "no_sequences",
            "GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA public TO no_sequences;",
            "sequence",
        ),
        (
            "no_rejects",
            "GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA public TO no_rejects;
             REVOKE INSERT ON council_import_rejects FROM no_rejects;
             GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO no_rejects;",
            "council_import_rejects",
        ),
    ];
    for (name, grants, names) in cases {
        let mut client = role(&cluster, &mut admin, "council", name, grants);
        let mut transaction = client.transaction().expect("begin");
        let err = transaction
            .query("SELECT * FROM council_import($1::bytea)", &[&bytes])
            .expect_err("a privilege is missing");
        assert_eq!(sqlstate(&err), "42501", "{name}: {}", detail(&err));
        assert!(detail(&err).contains(names), "{name}: {}", detail(&err));
    }
    let locks = common::number(
        &mut admin,
        "SELECT count(*) FROM pg_locks WHERE relation = 'conversations'::regclass
             AND mode = 'ShareRowExclusiveLock'",
    );
    assert_eq!(locks, 0);
}

/// A dry run that fails inside a PL/pgSQL block with an EXCEPTION clause
/// rolls back its own subtransaction: the block's handler then rolls back
/// the block's, the locks the import took inside it go, and the caller's
/// transaction goes on.
#[test]
fn a_failed_dry_run_inside_an_exception_block_leaves_the_callers_transaction_whole() {
    let cluster = common::cluster();
    let mut client = common::database_with_extension(&cluster, "council");
    let (path, _) = sample_of(&cluster, "dry-fail", 5);
    let conn = spoil(&path);
    conn.execute_batch(
        "UPDATE messages SET role = 'system' WHERE id = (SELECT max(id) FROM messages)",
    )
    .expect("a bad row");
    drop(conn);
    let mut transaction = client.transaction().expect("begin");
    transaction
        .batch_execute(
            "CREATE TABLE before_the_block (n int); INSERT INTO before_the_block VALUES (1);",
        )
        .expect("work before the block");
    transaction
        .batch_execute(&format!(
            "DO $$ BEGIN
                 PERFORM * FROM council_import('{}', dry_run => true);
                 RAISE EXCEPTION 'the import should have failed';
             EXCEPTION WHEN check_violation THEN
                 INSERT INTO before_the_block VALUES (2);
             END $$;",
            path.to_string_lossy().replace('\'', "''")
        ))
        .expect("the block catches the import's error");
    let locks = common::number(
        &mut transaction,
        "SELECT count(*) FROM pg_locks WHERE pid = pg_backend_pid()
             AND relation = 'conversations'::regclass",
    );
    assert_eq!(
        locks, 0,
        "the import's lock went with the block's subtransaction"
    );
    let rows: Vec<i32> = transaction
        .query("SELECT n FROM before_the_block ORDER BY n", &[])
        .expect("rows")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        rows,
        vec![1, 2],
        "the caller's work before and in the handler stays"
    );
    transaction.commit().expect("commit");
    let kept = common::number(&mut client, "SELECT count(*) FROM before_the_block");
    assert_eq!(kept, 2);
}

/// The statistics count only what a role could cause through the cache
/// functions; the internal helpers of 0.1.0 are gone.
#[test]
fn no_role_forges_the_cache_statistics() {
    let cluster = common::cluster();
    let mut admin = common::database_with_extension(&cluster, "council");
    let mut mallory = role(&cluster, &mut admin, "council", "mallory", "");
    let err = mallory
        .execute("SELECT council_cache_count_event('hit', 1000000)", &[])
        .expect_err("forging hits");
    assert_eq!(sqlstate(&err), "42501", "{}", detail(&err));
    for gone in ["council_cache_counters()", "council_cache_default_ttl()"] {
        let exists: bool = admin
            .query_one("SELECT to_regprocedure($1) IS NOT NULL", &[&gone])
            .expect("q")
            .get(0);
        assert!(!exists, "{gone} is still exposed");
    }
    let mut app = role(
        &cluster,
        &mut admin,
        "council",
        "app",
        "GRANT SELECT, INSERT, UPDATE, DELETE ON response_cache TO app;
         GRANT USAGE ON SEQUENCE response_cache_id_seq TO app;",
    );
    app.batch_execute(
        "SELECT council_cache_put('k', 'q', NULL, NULL, NULL, NULL);
         SELECT * FROM council_cache_get('k');
         SELECT * FROM council_cache_stats();",
    )
    .expect("the app uses the cache as before");
}

fn preloaded(settings: &[(&str, &str)]) -> Cluster {
    let mut options = council_loader::cluster::ClusterOptions::default()
        .setting("shared_preload_libraries", "llm_council")
        .setting("llm_council.expire_databases", "cache")
        .setting("llm_council.expire_interval", "1s");
    for (name, value) in settings {
        options = options.setting(name, value);
    }
    Cluster::start_temporary(&options).expect("a preloaded cluster")
}

fn wait_for_expiry(cluster: &Cluster, client: &mut Client) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(45);
    loop {
        let left = common::number(
            client,
            "SELECT count(*) FROM response_cache WHERE cache_key = 'goes'",
        );
        if left == 0 {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the worker did not expire the entry; log:\n{}",
            cluster.log()
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// A database owner redirects `=` for names through the database's
/// search_path: the expiry worker's queries never call it.
#[test]
fn the_expiry_worker_ignores_a_database_owners_search_path() {
    let cluster = preloaded(&[]);
    let mut admin = cluster.connect("postgres").expect("connect");
    admin
        .batch_execute("CREATE ROLE owner LOGIN PASSWORD 'owner-secret'")
        .expect("the owner");
    admin
        .batch_execute("CREATE DATABASE cache OWNER owner")
        .expect("a database owned by another role");
    let mut superuser = cluster.connect("cache").expect("connect");
    superuser
        .batch_execute("CREATE EXTENSION llm_council")
        .expect("extension");
    let mut owner = cluster
        .connect_as("cache", "owner", "owner-secret")
        .expect("connect as the owner");
    owner
        .batch_execute(
            "CREATE SCHEMA evil;
             CREATE TABLE evil.calls (at timestamptz DEFAULT now());
             CREATE FUNCTION evil.eq(name, name) RETURNS boolean LANGUAGE sql AS
                 $$ INSERT INTO evil.calls DEFAULT VALUES RETURNING pg_catalog.texteq($1::text, $2::text) $$;
             CREATE OPERATOR evil.= (LEFTARG = name, RIGHTARG = name, FUNCTION = evil.eq);
             ALTER DATABASE cache SET search_path = evil, pg_catalog, public;",
        )
        .expect("the owner's trap");
    superuser
        .batch_execute(
            "SET search_path = public;
             SELECT council_cache_put('goes', 'q', NULL, NULL, NULL, NULL, interval '10 milliseconds');",
        )
        .expect("an entry that expires");
    wait_for_expiry(&cluster, &mut superuser);
    let calls = common::number(&mut superuser, "SELECT count(*) FROM evil.calls");
    assert_eq!(calls, 0, "the worker ran the owner's operator");
}

/// With llm_council.expire_role the worker connects as that role, which
/// needs no more than LOGIN and SELECT, UPDATE (for its FOR UPDATE SKIP
/// LOCKED) and DELETE on response_cache.
#[test]
fn the_expiry_worker_runs_as_the_role_named_for_it() {
    let cluster = preloaded(&[("llm_council.expire_role", "expirer")]);
    let mut admin = cluster.connect("postgres").expect("connect");
    admin
        .batch_execute("CREATE DATABASE cache")
        .expect("database");
    let mut client = common::database_with_extension_in(&cluster, "cache");
    client
        .batch_execute(
            "CREATE ROLE expirer LOGIN PASSWORD 'expirer-secret';
             GRANT SELECT, UPDATE, DELETE ON response_cache TO expirer;
             SELECT council_cache_put('goes', 'q', NULL, NULL, NULL, NULL, interval '10 milliseconds');",
        )
        .expect("role and entry");
    wait_for_expiry(&cluster, &mut client);
    let worker_user: String = client
        .query_one(
            "SELECT usename::text FROM pg_stat_activity WHERE backend_type = 'llm_council cache expiry'",
            &[],
        )
        .expect("the worker")
        .get(0);
    assert_eq!(worker_user, "expirer");
}

/// The test clusters, and the loader's private one, let in nobody but their
/// maker: another OS user reaches the superuser neither over TCP (SCRAM,
/// with a password only the maker can read) nor over the socket (in a
/// directory closed to others).
#[test]
fn another_os_user_cannot_reach_the_private_cluster() {
    use std::os::unix::process::CommandExt as _;
    let cluster = common::cluster();
    let psql = |host: &str| {
        let output = std::process::Command::new(cluster.bin("psql"))
            .args([
                "-w",
                "-h",
                host,
                "-p",
                &cluster.port().to_string(),
                "-U",
                "postgres",
            ])
            .args(["-d", "postgres", "-Atc", "SELECT 'in'"])
            .env_remove("PGPASSWORD")
            .env_remove("PGPASSFILE")
            .env("HOME", "/nonexistent")
            .uid(65534)
            .gid(65534)
            .output()
            .expect("psql as nobody");
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let (by_tcp, why) = psql("127.0.0.1");
    assert!(!by_tcp, "nobody got in over TCP");
    assert!(why.contains("password"), "{why}");
    let socket_dir = cluster.scratch_dir().to_string_lossy().into_owned();
    let (by_socket, why) = psql(&socket_dir);
    assert!(!by_socket, "nobody got in over the socket");
    assert!(
        why.contains("Permission denied") || why.contains("password"),
        "{why}"
    );

    // The maker gets in with the password file.
    let maker = std::process::Command::new(cluster.bin("psql"))
        .arg(cluster.url_with_passfile("postgres"))
        .args(["-w", "-Atc", "SELECT 'in'"])
        .output()
        .expect("psql as the maker");
    assert_eq!(
        String::from_utf8_lossy(&maker.stdout).trim(),
        "in",
        "{maker:?}"
    );
    let hba = std::fs::read_to_string(cluster.data_dir().join("pg_hba.conf")).expect("hba");
    assert!(
        !hba.lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .any(|l| l.contains("trust")),
        "{hba}"
    );
}

/// The cache's count trigger runs with its owner's rights and no SET
/// clause: a role that puts its own operators first on its search_path must
/// not get them run as the owner, nor skew the count.
#[test]
fn the_cache_count_trigger_runs_no_callers_code() {
    let cluster = common::cluster();
    let mut admin = common::database_with_extension(&cluster, "council");
    let mut mallory = role(
        &cluster,
        &mut admin,
        "council",
        "mallory",
        "GRANT SELECT, INSERT, UPDATE, DELETE ON response_cache TO mallory;
         GRANT USAGE ON SEQUENCE response_cache_id_seq TO mallory;
         CREATE SCHEMA evil AUTHORIZATION mallory;",
    );
    mallory
        .batch_execute(
            "CREATE TABLE evil.calls (who text);
             CREATE FUNCTION evil.add(bigint, bigint) RETURNS bigint LANGUAGE sql AS
                 $$ INSERT INTO evil.calls VALUES (current_user) RETURNING 1000000::bigint $$;
             CREATE OPERATOR evil.+ (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = evil.add);
             CREATE FUNCTION evil.mod(integer, integer) RETURNS integer LANGUAGE sql AS
                 $$ INSERT INTO evil.calls VALUES (current_user) RETURNING 0 $$;
             CREATE OPERATOR evil.% (LEFTARG = integer, RIGHTARG = integer, FUNCTION = evil.mod);
             GRANT ALL ON evil.calls TO PUBLIC;
             SET search_path = evil, public, pg_catalog;",
        )
        .expect("mallory's trap");
    for key in ["a", "b", "c"] {
        mallory
            .execute(
                "SELECT council_cache_put($1, 'q', '[]', '[]', '{}', '{}')",
                &[&key],
            )
            .expect("put");
    }
    mallory
        .execute("SELECT council_cache_invalidate('a')", &[])
        .expect("invalidate");
    let calls = common::number(&mut admin, "SELECT count(*) FROM evil.calls");
    assert_eq!(calls, 0, "mallory's operators never ran");
    let counted = common::number(
        &mut admin,
        "SELECT pg_sequence_last_value('response_cache_inserted')
                    - pg_sequence_last_value('response_cache_removed')",
    );
    assert_eq!(counted, 2);
    let err = mallory
        .query_one("SELECT setval('response_cache_removed', 1000000)", &[])
        .expect_err("the count is read-only to roles");
    assert_eq!(err.code().map(|c| c.code()), Some("42501"), "{err:?}");
}

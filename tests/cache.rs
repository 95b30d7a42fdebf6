//! The response cache against real clusters: the app's keys, get/put
//! semantics, TTLs, LRU eviction, exact hit counts under concurrency, the
//! expiry worker, and reads on a hot standby.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use council_loader::cluster::{Cluster, ClusterOptions};
use postgres::Client;

fn put(client: &mut Client, key: &str, ttl: Option<&str>) {
    client
        .execute(
            "SELECT council_cache_put($1, 'qh', '[{\"model\": \"m\"}]', '[]', '{\"response\": \"r\"}', '{}', $2::text::interval)",
            &[&key, &ttl],
        )
        .expect("council_cache_put");
}

/// The entry's hit count, or None on a miss.
fn get(client: &mut Client, key: &str) -> Option<i64> {
    client
        .query_opt("SELECT hit_count FROM council_cache_get($1)", &[&key])
        .expect("council_cache_get")
        .map(|row| row.get(0))
}

/// Waits until `condition` (SQL) holds: what the test needs of the clock,
/// asked of the server's clock itself, not guessed by a sleep.
fn wait_until(client: &mut Client, condition: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let holds: bool = client
            .query_one(&format!("SELECT coalesce(({condition}), false)"), &[])
            .expect("condition")
            .get(0);
        if holds {
            return;
        }
        assert!(Instant::now() < deadline, "{condition} never held");
    }
}

/// Waits until the server's clock is past every entry's last use, so that
/// the next use is later than all of them.
fn tick(client: &mut Client) {
    wait_until(
        client,
        "SELECT clock_timestamp() > max(coalesce(last_hit_at, created_at)) FROM response_cache",
    );
}

/// Waits until the entry `key` has expired by the server's clock.
fn expired(client: &mut Client, key: &str) {
    wait_until(
        client,
        &format!(
            "SELECT clock_timestamp() > expires_at FROM response_cache WHERE cache_key = '{key}'"
        ),
    );
}

fn keys(client: &mut Client) -> Vec<String> {
    client
        .query(
            "SELECT cache_key FROM response_cache ORDER BY cache_key",
            &[],
        )
        .expect("keys")
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[test]
fn sql_keys_equal_the_apps_python_keys() {
    let cluster = common::cluster();
    let mut client = common::database_with_extension(&cluster, "cache");
    let fixture: serde_json::Value =
        serde_json::from_str(include_str!("fixtures/cache_key_vectors.json")).expect("vectors");
    let mut checked = 0;
    for vector in fixture["vectors"].as_array().expect("vectors") {
        // Options PostgreSQL's jsonb would print differently cannot arrive through SQL.
        if vector["jsonb_canonical"] != serde_json::Value::Bool(true) {
            continue;
        }
        let models: Vec<String> = serde_json::from_value(vector["models"].clone()).expect("models");
        // Nor can text with a NUL character: PostgreSQL text cannot hold one.
        if vector["query"].as_str().unwrap_or_default().contains('\0')
            || models.iter().any(|m| m.contains('\0'))
        {
            continue;
        }
        let key: String = client
            .query_one(
                "SELECT council_cache_key($1, $2, $3, $4::text::jsonb)",
                &[
                    &vector["query"].as_str().expect("query"),
                    &models,
                    &vector["voting_method"].as_str().expect("voting_method"),
                    &vector["options"].as_str(),
                ],
            )
            .expect("council_cache_key")
            .get(0);
        assert_eq!(
            key,
            vector["key"].as_str().expect("key"),
            "vector {}",
            vector["name"]
        );
        checked += 1;
    }
    assert!(checked >= 100, "{checked} vectors checked");
}

#[test]
fn get_put_invalidate_clear_and_expire() {
    let cluster = common::cluster();
    let mut client = common::database_with_extension(&cluster, "cache");
    assert_eq!(get(&mut client, "absent"), None);

    put(&mut client, "a", None);
    assert_eq!(get(&mut client, "a"), Some(1));
    assert_eq!(get(&mut client, "a"), Some(2));
    let last_hit: bool = client
        .query_one(
            "SELECT last_hit_at IS NOT NULL FROM response_cache WHERE cache_key = 'a'",
            &[],
        )
        .expect("q")
        .get(0);
    assert!(last_hit);
    // A put replaces the entry, and its hits start again.
    put(&mut client, "a", None);
    assert_eq!(get(&mut client, "a"), Some(1));

    // Default TTL one hour; an explicit TTL; a negative one never expires.
    let ttls: Vec<(String, Option<f64>)> = {
        put(&mut client, "short", Some("1 millisecond"));
        put(&mut client, "forever", Some("-1 second"));
        client
            .query(
                "SELECT cache_key, extract(epoch FROM expires_at - created_at)::float8 FROM response_cache ORDER BY cache_key",
                &[],
            )
            .expect("q")
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect()
    };
    assert_eq!(
        ttls,
        vec![
            ("a".into(), Some(3600.0)),
            ("forever".into(), None),
            ("short".into(), Some(0.001))
        ]
    );
    expired(&mut client, "short");
    assert_eq!(
        get(&mut client, "short"),
        None,
        "an expired entry is a miss"
    );
    let expired = common::number(&mut client, "SELECT council_cache_expire()");
    assert_eq!(expired, 1);
    assert_eq!(keys(&mut client), vec!["a", "forever"]);

    // The GUC sets the default; -1 means never.
    client
        .batch_execute("SET llm_council.cache_default_ttl = '-1'")
        .expect("set");
    put(&mut client, "never", None);
    client
        .batch_execute("SET llm_council.cache_default_ttl = '90'")
        .expect("set");
    put(&mut client, "ninety", None);
    let (never, ninety): (Option<f64>, Option<f64>) = client
        .query_one(
            "SELECT max(extract(epoch FROM expires_at - created_at)) FILTER (WHERE cache_key = 'never')::float8,
                    max(extract(epoch FROM expires_at - created_at)) FILTER (WHERE cache_key = 'ninety')::float8
             FROM response_cache",
            &[],
        )
        .map(|r| (r.get(0), r.get(1)))
        .expect("q");
    assert_eq!((never, ninety), (None, Some(90.0)));
    client
        .batch_execute("SET llm_council.cache_default_ttl = 'soon'")
        .expect("set");
    let err = client
        .execute(
            "SELECT council_cache_put('x', 'q', NULL, NULL, NULL, NULL)",
            &[],
        )
        .expect_err("a bad default TTL");
    assert_eq!(err.code().map(|c| c.code()), Some("22023"));
    client
        .batch_execute("RESET llm_council.cache_default_ttl")
        .expect("reset");

    let invalidated: bool = client
        .query_one("SELECT council_cache_invalidate('a')", &[])
        .expect("q")
        .get(0);
    let again: bool = client
        .query_one("SELECT council_cache_invalidate('a')", &[])
        .expect("q")
        .get(0);
    assert_eq!((invalidated, again), (true, false));
    let cleared = common::number(&mut client, "SELECT council_cache_clear()");
    assert_eq!(cleared, 3);
    assert!(keys(&mut client).is_empty());
}

#[test]
fn a_put_over_the_bound_evicts_the_least_recently_used() {
    let cluster = common::cluster();
    let mut client = common::database_with_extension(&cluster, "cache");
    client
        .batch_execute("SET llm_council.cache_max_entries = 3")
        .expect("set");
    for key in ["a", "b", "c"] {
        put(&mut client, key, None);
        tick(&mut client);
    }
    // a is used again, so b is now the least recently used
    assert_eq!(get(&mut client, "a"), Some(1));
    tick(&mut client);
    put(&mut client, "d", None);
    assert_eq!(keys(&mut client), vec!["a", "c", "d"]);
    tick(&mut client);
    put(&mut client, "e", None);
    assert_eq!(keys(&mut client), vec!["a", "d", "e"]);
    client
        .batch_execute("SET llm_council.cache_max_entries = 0")
        .expect("set");
    put(&mut client, "f", None);
    assert_eq!(keys(&mut client).len(), 4, "0 means no bound");
}

/// The entries response_cache holds, and the count its triggers keep.
fn counted(client: &mut Client) -> (i64, i64) {
    let row = client
        .query_one(
            "SELECT (SELECT count(*) FROM response_cache),
                    coalesce(pg_sequence_last_value('response_cache_inserted'), 0)
                    - coalesce(pg_sequence_last_value('response_cache_removed'), 0)",
            &[],
        )
        .expect("count");
    (row.get(0), row.get(1))
}

#[test]
fn a_bounded_cache_holds_its_bound_under_concurrent_puts_with_an_exact_count() {
    let cluster = common::cluster();
    let mut admin = common::database_with_extension(&cluster, "cache");
    const BOUND: i64 = 640;
    const CLIENTS: i64 = 8;
    const PUTS: i64 = 300;
    // An app role: privileges on the cache only, none on the count.
    admin
        .batch_execute(&format!(
            "CREATE ROLE app LOGIN PASSWORD 'app-secret';
             GRANT SELECT, INSERT, UPDATE, DELETE ON response_cache TO app;
             GRANT USAGE ON SEQUENCE response_cache_id_seq TO app;
             ALTER ROLE app SET llm_council.cache_max_entries = {BOUND};"
        ))
        .expect("app role");
    std::thread::scope(|scope| {
        for n in 0..CLIENTS {
            let cluster = &cluster;
            scope.spawn(move || {
                let mut client = cluster
                    .connect_as("cache", "app", "app-secret")
                    .expect("connect as app");
                for i in 0..PUTS {
                    put(&mut client, &format!("c{n}-{i}"), None);
                }
            });
        }
    });
    let (entries, count) = counted(&mut admin);
    assert_eq!(entries, count, "the count is exact");
    // Evictions come in batches of a 64th of the bound, one put at a time;
    // puts that found another evicting leave theirs to the next put.
    let slack = BOUND / 64;
    assert!(
        (BOUND..=BOUND + slack + CLIENTS).contains(&entries),
        "{entries} entries for a bound of {BOUND}"
    );
    // The survivors are the most recently used, here the newest: their ids
    // run up to the last, but for puts that overlapped in time.
    let row = admin
        .query_one("SELECT min(id), max(id) FROM response_cache", &[])
        .expect("ids");
    let (oldest, newest): (i64, i64) = (row.get(0), row.get(1));
    assert_eq!(newest, CLIENTS * PUTS, "every put took an id");
    assert!(
        oldest >= newest - entries - 2 * CLIENTS,
        "entry {oldest} survived among the {entries} newest of {newest}"
    );
}

#[test]
fn the_entry_count_follows_every_way_entries_come_and_go() {
    let cluster = common::cluster();
    let mut client = common::database_with_extension(&cluster, "cache");
    for key in ["a", "b", "c", "d"] {
        put(&mut client, key, None);
    }
    put(&mut client, "a", None);
    assert_eq!(
        counted(&mut client),
        (4, 4),
        "a put that replaces adds none"
    );
    client
        .query_one("SELECT council_cache_invalidate('b')", &[])
        .expect("invalidate");
    put(&mut client, "gone", Some("1 millisecond"));
    expired(&mut client, "gone");
    client
        .query_one("SELECT council_cache_expire()", &[])
        .expect("expire");
    assert_eq!(counted(&mut client), (3, 3));
    // The app's own statements count too.
    client
        .batch_execute(
            "INSERT INTO response_cache (cache_key, query_hash) VALUES ('x', 'q'), ('y', 'q');
             DELETE FROM response_cache WHERE cache_key = 'c';",
        )
        .expect("app statements");
    assert_eq!(counted(&mut client), (4, 4));
    client
        .batch_execute("TRUNCATE response_cache")
        .expect("truncate");
    assert_eq!(counted(&mut client), (0, 0));
    // A writer that bypasses the triggers is caught up with by expiry.
    client
        .batch_execute(
            "ALTER TABLE response_cache DISABLE TRIGGER USER;
             INSERT INTO response_cache (cache_key, query_hash) SELECT 'r' || i, 'q' FROM generate_series(1, 5) i;
             ALTER TABLE response_cache ENABLE TRIGGER USER;",
        )
        .expect("bypass");
    assert_eq!(counted(&mut client), (5, 0));
    client
        .query_one("SELECT council_cache_expire()", &[])
        .expect("expire");
    assert_eq!(counted(&mut client), (5, 5));
    put(&mut client, "after", None);
    assert_eq!(counted(&mut client), (6, 6));
}

#[test]
fn concurrent_gets_count_every_hit_and_expiry_never_blocks_them() {
    let cluster = common::cluster();
    let mut client = common::database_with_extension(&cluster, "cache");
    put(&mut client, "hot", None);
    let url = cluster.url("cache");
    const CLIENTS: usize = 8;
    const GETS: i64 = 250;
    let stop = Arc::new(AtomicBool::new(false));

    // Meanwhile: puts of short-lived entries and expiry runs, for as long as the gets last.
    let churn = {
        let (url, stop) = (url.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut client = Client::connect(&url, postgres::NoTls).expect("connect");
            let mut n = 0u32;
            while !stop.load(Ordering::Relaxed) && n < 5000 {
                put(
                    &mut client,
                    &format!("churn{}", n % 50),
                    Some("1 millisecond"),
                );
                client
                    .query_one("SELECT council_cache_expire()", &[])
                    .expect("expire alongside gets");
                n += 1;
            }
            n
        })
    };
    let getters: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || {
                let mut client = Client::connect(&url, postgres::NoTls).expect("connect");
                for _ in 0..GETS {
                    assert!(
                        get(&mut client, "hot").is_some(),
                        "the hot key is always there"
                    );
                }
            })
        })
        .collect();
    for getter in getters {
        getter.join().expect("a getter failed");
    }
    stop.store(true, Ordering::Relaxed);
    let churned = churn.join().expect("the churn failed");
    assert!(churned > 0);
    let hits = common::number(
        &mut client,
        "SELECT hit_count FROM response_cache WHERE cache_key = 'hot'",
    );
    assert_eq!(hits, CLIENTS as i64 * GETS);
}

#[test]
fn without_preloading_the_counters_are_null_and_the_rest_of_the_stats_work() {
    let cluster = common::cluster();
    let mut client = common::database_with_extension(&cluster, "cache");
    put(&mut client, "a", None);
    get(&mut client, "a");
    get(&mut client, "a");
    let row = client.query_one("SELECT entries, expired_entries, total_hit_count, hits, misses FROM council_cache_stats()", &[]).expect("stats");
    let (entries, expired, total, hits, misses): (i64, i64, i64, Option<i64>, Option<i64>) =
        (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4));
    assert_eq!(
        (entries, expired, total, hits, misses),
        (1, 0, 2, None, None)
    );
}

fn preloaded_cluster() -> Cluster {
    let options = ClusterOptions::default()
        .setting("shared_preload_libraries", "llm_council")
        .setting("llm_council.expire_databases", "cache")
        .setting("llm_council.expire_interval", "1s")
        .setting("log_min_messages", "debug1");
    Cluster::start_temporary(&options).expect("a preloaded cluster")
}

#[test]
fn preloaded_the_worker_expires_entries_and_the_counters_count() {
    let cluster = preloaded_cluster();
    let mut client = common::database_with_extension(&cluster, "cache");
    put(&mut client, "stays", None);
    put(&mut client, "goes", Some("10 milliseconds"));
    get(&mut client, "stays");
    get(&mut client, "missing");

    let deadline = Instant::now() + Duration::from_secs(30);
    while keys(&mut client).contains(&"goes".to_owned()) {
        assert!(
            Instant::now() < deadline,
            "the worker did not expire the entry; log:\n{}",
            cluster.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(keys(&mut client), vec!["stays"]);
    assert!(
        cluster
            .log()
            .contains("deleted 1 expired cache entries in \"cache\""),
        "{}",
        cluster.log()
    );
    let row = client
        .query_one(
            "SELECT hits, misses, expirations, hit_rate FROM council_cache_stats()",
            &[],
        )
        .expect("stats");
    let (hits, misses, expirations, rate): (Option<i64>, Option<i64>, Option<i64>, Option<f64>) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    assert_eq!(
        (hits, misses, expirations, rate),
        (Some(1), Some(1), Some(1), Some(0.5))
    );
}

#[test]
fn on_a_hot_standby_get_reads_without_counting_and_put_is_refused() {
    let primary = common::cluster();
    let mut client = common::database_with_extension(&primary, "cache");
    put(&mut client, "shared", None);
    assert_eq!(get(&mut client, "shared"), Some(1));
    let standby = primary.start_standby().expect("a standby");
    let mut replica = standby.connect("cache").expect("connect to the standby");
    let in_recovery: bool = replica
        .query_one("SELECT pg_is_in_recovery()", &[])
        .expect("q")
        .get(0);
    assert!(in_recovery);

    assert_eq!(get(&mut replica, "shared"), Some(1), "read, not counted");
    assert_eq!(get(&mut replica, "shared"), Some(1));
    assert_eq!(get(&mut replica, "absent"), None);
    let err = replica
        .execute(
            "SELECT council_cache_put('x', 'q', NULL, NULL, NULL, NULL)",
            &[],
        )
        .expect_err("a put on a standby");
    assert_eq!(err.code().map(|c| c.code()), Some("25006"));
    let err = replica
        .execute("SELECT council_cache_expire()", &[])
        .expect_err("expiry on a standby");
    assert_eq!(err.code().map(|c| c.code()), Some("25006"));
    assert_eq!(
        get(&mut client, "shared"),
        Some(2),
        "the primary counted only its own get"
    );
}

//! `council_search` and the documents behind it: every row the app or an
//! import writes is searchable when it commits, and nothing else is; the
//! search ranks, filters, pages and highlights; the configuration is a
//! setting.

mod common;

use std::sync::{Arc, Mutex};

use common::{assert_search_documents_match_the_tables, sample_file, sample_of, sqlstate};

use council_loader::sample::SampleOptions;
use postgres::Client;

/// One hit: kind, conversation, row id, model, rank, snippet.
type Hit = (
    String,
    Option<String>,
    Option<i64>,
    Option<String>,
    f32,
    String,
);

fn search(client: &mut impl postgres::GenericClient, query: &str, filters: &str) -> Vec<Hit> {
    client
        .query(
            &format!(
                "SELECT kind, conversation_id::text, row_id, model, rank, snippet
                 FROM council_search($1{filters})"
            ),
            &[&query],
        )
        .unwrap_or_else(|err| panic!("council_search({query}{filters}): {err}"))
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5)))
        .collect()
}

fn kinds(hits: &[Hit]) -> Vec<&str> {
    hits.iter().map(|h| h.0.as_str()).collect()
}

fn documents_of_kind(client: &mut Client, kind: &str) -> i64 {
    client
        .query_one(
            "SELECT count(*) FROM council_search_documents WHERE kind = $1",
            &[&kind],
        )
        .expect("count")
        .get(0)
}

fn count(client: &mut Client, query: &str) -> i64 {
    client.query_one(query, &[]).expect("count").get(0)
}

/// The calls this transaction made of the functions whose name is LIKE
/// `pattern` (with `track_functions` set for it).
fn calls_in_this_transaction(client: &mut impl postgres::GenericClient, pattern: &str) -> i64 {
    client
        .query_one(
            "SELECT coalesce(sum(calls), 0)::bigint FROM pg_stat_xact_user_functions
             WHERE funcname LIKE $1",
            &[&pattern],
        )
        .expect("the functions' calls")
        .get(0)
}

/// An import into empty tables indexes in bulk, an import into filled ones
/// through the triggers: either way every title, user message and stage 1
/// and 3 response has its document, and the superuser's import still skips
/// the per-row foreign-key triggers with the search triggers present.
#[test]
fn every_imported_row_is_searchable() {
    let cluster = common::cluster();
    let (first, _) = sample_of(&cluster, "first", 40);
    let (second, _) = sample_file(
        &cluster,
        "second",
        &SampleOptions {
            conversations: 25,
            seed: 2,
            ..SampleOptions::default()
        },
    );
    let mut client = common::database_with_extension(&cluster, "council");

    let said = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut config: postgres::Config = cluster.url("council").parse().expect("url");
    {
        let said = said.clone();
        config.notice_callback(move |n| said.lock().expect("lock").push(n.message().to_owned()));
    }
    let mut importer = config.connect(postgres::NoTls).expect("connect");
    importer
        .batch_execute("SET client_min_messages = debug1")
        .expect("debug1");
    // Statements that wrote the documents: the first import's documents
    // come from one (the bulk parse); the second's, into filled tables,
    // from the triggers, one per row.
    let writing_statements = |client: &mut Client| -> i64 {
        count(
            client,
            "SELECT count(DISTINCT (xmin::text, cmin::text)) FROM council_search_documents",
        )
    };
    for (file, bulk) in [(&first, true), (&second, false)] {
        let before = writing_statements(&mut client);
        importer
            .query(
                "SELECT * FROM council_import($1)",
                &[&file.to_string_lossy().as_ref()],
            )
            .expect("import");
        let statements = writing_statements(&mut client) - before;
        if bulk {
            assert_eq!(statements, 1, "an import into empty tables indexes in bulk");
        } else {
            assert!(
                statements > 100,
                "{statements}: the triggers index a row at a time"
            );
        }
    }
    let said = said.lock().expect("lock").clone();
    assert!(
        said.iter()
            .filter(|m| m.contains("triggers skipped"))
            .count()
            == 2,
        "both imports skip the foreign-key triggers: {said:?}"
    );

    assert_eq!(
        documents_of_kind(&mut client, "title"),
        count(
            &mut client,
            "SELECT count(*) FROM conversations WHERE title IS NOT NULL"
        )
    );
    assert_eq!(
        documents_of_kind(&mut client, "user_message"),
        count(
            &mut client,
            "SELECT count(*) FROM messages WHERE role = 'user' AND content IS NOT NULL"
        )
    );
    assert_eq!(
        documents_of_kind(&mut client, "stage1"),
        count(&mut client, "SELECT count(*) FROM stage1_responses")
    );
    assert_eq!(
        documents_of_kind(&mut client, "stage3"),
        count(&mut client, "SELECT count(*) FROM stage3_synthesis")
    );
    assert_search_documents_match_the_tables(&mut client);

    // A stage 1 response of each file is found by its own words.
    for file in [&first, &second] {
        let conn =
            rusqlite::Connection::open_with_flags(file, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
                .expect("open the file");
        let (id, model): (i64, String) = conn
            .query_row(
                "SELECT id, model FROM stage1_responses ORDER BY id DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .expect("a stage 1 row");
        let words: String = client
            .query_one(
                "SELECT string_agg(w, ' ') FROM (
                     SELECT word AS w FROM ts_stat(format(
                         'SELECT coalesce(d.document, s.document) FROM council_search_documents d
                          LEFT JOIN council_search_stored_documents() s ON s.doc = d.doc
                          WHERE d.kind = ''stage1'' AND d.row_id = %s', $1::bigint))
                     ORDER BY nentry, word LIMIT 3) s",
                &[&id],
            )
            .expect("three of its rarest words")
            .get(0);
        let hits = search(
            &mut client,
            &words,
            ", kinds => '{stage1}', \"limit\" => 1000",
        );
        assert!(
            hits.iter()
                .any(|h| h.2 == Some(id) && h.3.as_deref() == Some(model.as_str())),
            "stage 1 row {id} is found by {words:?}"
        );
    }
}

/// The app writes as a role with rights on its tables only: each insert,
/// update and delete is searchable (or gone) at once, inside its
/// transaction and after, with no job run.
#[test]
fn the_apps_writes_are_searchable_at_once() {
    let cluster = common::cluster();
    let mut admin = common::database_with_extension(&cluster, "council");
    admin
        .batch_execute(
            "CREATE ROLE app LOGIN PASSWORD 'app-secret';
             GRANT SELECT, INSERT, UPDATE, DELETE ON conversations, messages,
                   stage1_responses, stage3_synthesis TO app;
             GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO app;
             GRANT SELECT ON council_search_documents, council_search_statistics,
                   council_search_postings TO app;",
        )
        .expect("the app's role");
    let mut app = cluster
        .connect_as("council", "app", "app-secret")
        .expect("connect as app");
    let a = "'00000000-0000-4000-8000-00000000000a'";
    let b = "'00000000-0000-4000-8000-00000000000b'";
    app.batch_execute(&format!(
        "INSERT INTO conversations (id, title) VALUES ({a}, 'Zebra migration'), ({b}, 'Other things');
         INSERT INTO messages (id, conversation_id, role, content)
             VALUES (1, {a}, 'user', 'Where do zebras graze in winter?'),
                    (2, {a}, 'assistant', NULL);
         INSERT INTO stage1_responses (id, message_id, model, response)
             VALUES (10, 2, 'openai/gpt-5', 'Zebras follow the rains across the savanna.');
         INSERT INTO stage3_synthesis (id, message_id, chairman_model, response)
             VALUES (20, 2, 'google/gemini', 'The council agrees: the savanna rains guide them.');"
    ))
    .expect("the app's inserts");
    let hits = search(&mut app, "zebra", "");
    let mut found = kinds(&hits);
    found.sort_unstable();
    assert_eq!(found, ["stage1", "title", "user_message"]);
    assert_eq!(kinds(&search(&mut app, "savanna", "")).len(), 2);

    // An update replaces the document; the app's frequent touches of
    // updated_at change nothing.
    let mut tx = app.transaction().expect("begin");
    tx.batch_execute(&format!(
        "UPDATE conversations SET title = 'Giraffe facts' WHERE id = {a};
         UPDATE conversations SET updated_at = now(), message_count = 2;
         UPDATE stage1_responses SET response = 'Giraffes browse acacia.' WHERE id = 10;"
    ))
    .expect("the app's updates");
    let inside = common::number(&mut tx, "SELECT count(*) FROM council_search('giraffe')");
    assert_eq!(inside, 2, "seen inside the writing transaction");
    tx.commit().expect("commit");
    assert_eq!(kinds(&search(&mut app, "zebra", "")), ["user_message"]);
    assert_eq!(kinds(&search(&mut app, "acacia", "")), ["stage1"]);

    // A message moved to another conversation takes its stages along.
    app.batch_execute(&format!(
        "UPDATE messages SET conversation_id = {b} WHERE id = 2"
    ))
    .expect("moving a message");
    let moved = search(
        &mut app,
        "acacia or savanna",
        &format!(", conversation => {b}"),
    );
    assert_eq!(moved.len(), 2, "{moved:?}");

    // Deletes cascade to the documents, and so does TRUNCATE.
    app.batch_execute(&format!("DELETE FROM conversations WHERE id = {a}"))
        .expect("delete");
    assert!(search(&mut app, "zebra", "").is_empty());
    assert_eq!(search(&mut app, "acacia", "").len(), 1);
    assert_search_documents_match_the_tables(&mut admin);
    assert!(count(&mut admin, "SELECT count(*) FROM council_search_documents") > 0);
    admin
        .batch_execute("TRUNCATE conversations CASCADE")
        .expect("truncate");
    assert_eq!(
        count(&mut admin, "SELECT count(*) FROM council_search_documents"),
        0
    );

    // The app has no right on the documents themselves.
    let err = app
        .batch_execute("DELETE FROM council_search_documents")
        .expect_err("the app cannot write the documents");
    assert_eq!(sqlstate(&err), "42501");
}

#[test]
fn results_are_ranked_filtered_paged_and_highlighted() {
    let cluster = common::cluster();
    let mut client = common::database_with_extension(&cluster, "council");
    let a = "00000000-0000-4000-8000-00000000000a";
    let b = "00000000-0000-4000-8000-00000000000b";
    client
        .batch_execute(&format!(
            "INSERT INTO conversations (id, title, created_at)
                 VALUES ('{a}', 'Postgres questions', '2025-03-01+00'),
                        ('{b}', 'Replication notes', '2025-06-01+00');
             INSERT INTO messages (id, conversation_id, role, content, created_at)
                 VALUES (1, '{a}', 'user', 'Why does replication lag grow at night?', '2025-03-01+00'),
                        (2, '{a}', 'assistant', NULL, '2025-03-01+00');
             INSERT INTO stage1_responses (id, message_id, model, response, created_at)
                 VALUES (10, 2, 'm1', 'Replication lag: replication slots, replication of large transactions.', '2025-03-02+00'),
                        (11, 2, 'm2', 'Check the network first; lag follows backups.', '2025-03-03+00');
             INSERT INTO stage3_synthesis (id, message_id, chairman_model, response, created_at)
                 VALUES (20, 2, 'c1', 'The council: replication is fine, the backups cause it.', '2025-03-04+00');"
        ))
        .expect("rows");

    let all = search(&mut client, "replication", "");
    assert_eq!(all.len(), 4, "{all:?}");
    assert_eq!(
        all[0].2,
        Some(10),
        "the response saying it three times ranks first"
    );
    assert!(all.windows(2).all(|w| w[0].4 >= w[1].4), "ranked: {all:?}");
    assert!(
        all.iter()
            .all(|h| h.5.to_lowercase().contains("<b>replication</b>")),
        "highlighted: {all:?}"
    );

    // filters
    let ids = |hits: Vec<Hit>| -> Vec<Option<i64>> { hits.iter().map(|h| h.2).collect() };
    assert_eq!(
        ids(search(&mut client, "replication", ", by_model => 'm1'")),
        [Some(10)]
    );
    assert_eq!(
        ids(search(&mut client, "replication", ", by_model => 'c1'")),
        [Some(20)]
    );
    assert_eq!(
        kinds(&search(
            &mut client,
            "replication",
            &format!(", conversation => '{b}'")
        )),
        ["title"]
    );
    assert_eq!(
        ids(search(
            &mut client,
            "replication",
            ", since => '2025-03-02+00', until => '2025-03-04+00'"
        )),
        [Some(10)],
        "since is inclusive, until exclusive"
    );
    assert_eq!(
        kinds(&search(
            &mut client,
            "replication",
            ", kinds => '{title,user_message}'"
        ))
        .len(),
        2
    );

    // pages of one, in order, are the whole result
    let paged: Vec<Hit> = (0..5)
        .flat_map(|page| {
            search(
                &mut client,
                "replication",
                &format!(", \"limit\" => 1, \"offset\" => {page}"),
            )
        })
        .collect();
    assert_eq!(paged, all);

    // web-search syntax: a phrase, OR, a word left out
    assert_eq!(
        ids(search(&mut client, "\"replication lag\"", "")),
        [Some(10), Some(1)]
    );
    assert_eq!(search(&mut client, "replication -backups", "").len(), 3);
    assert_eq!(search(&mut client, "network or notes", "").len(), 2);
    assert!(search(&mut client, "the", "").is_empty(), "stop words only");

    for (query, expected) in [
        ("SELECT * FROM council_search(NULL)", "22004"),
        (
            "SELECT * FROM council_search('x', \"limit\" => -1)",
            "22023",
        ),
        (
            "SELECT * FROM council_search('x', kinds => '{titles}')",
            "22023",
        ),
    ] {
        let err = client.batch_execute(query).expect_err(query);
        assert_eq!(sqlstate(&err), expected, "{query}");
    }
}

/// llm_council.search_config chooses the parser's configuration; the
/// documents record theirs, council_overview counts the stale ones, and
/// council_search_reindex parses them again. A setting that names no
/// configuration never fails the app's writes.
#[test]
fn the_configuration_is_a_setting() {
    let cluster = common::cluster();
    let mut client = common::database_with_extension(&cluster, "council");
    client
        .batch_execute(
            "INSERT INTO conversations (id, title) VALUES
                 ('00000000-0000-4000-8000-00000000000a', 'Running databases')",
        )
        .expect("a row");
    // council_english stems: 'run' finds 'Running'
    assert_eq!(search(&mut client, "run", "").len(), 1);
    // the setting's reading is an expression the planner puts in place of
    // the call, as in every trigger and search: no function call of its own
    let plan: String = client
        .query(
            "EXPLAIN (VERBOSE, COSTS OFF) SELECT council_search_config()",
            &[],
        )
        .expect("explain")
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        plan.contains("current_setting('llm_council.search_config'")
            && !plan.contains("council_search_config()"),
        "{plan}"
    );

    client
        .batch_execute("ALTER DATABASE council SET llm_council.search_config = 'simple'")
        .expect("the setting");
    let mut client = cluster.connect("council").expect("reconnect");
    assert_eq!(
        count(
            &mut client,
            "SELECT search_documents_stale FROM council_overview()"
        ),
        1
    );
    let rebuilt = common::number(&mut client, "SELECT council_search_reindex()");
    assert_eq!(rebuilt, 1);
    assert_eq!(
        count(
            &mut client,
            "SELECT search_documents_stale FROM council_overview()"
        ),
        0
    );
    assert!(
        search(&mut client, "run", "").is_empty(),
        "simple does not stem"
    );
    assert_eq!(search(&mut client, "running", "").len(), 1);

    let warned = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut config: postgres::Config = cluster.url("council").parse().expect("url");
    {
        let warned = warned.clone();
        config.notice_callback(move |n| warned.lock().expect("lock").push(n.message().to_owned()));
    }
    let mut typo = config.connect(postgres::NoTls).expect("connect");
    typo.batch_execute(
        "SET llm_council.search_config = 'englsh';
         INSERT INTO conversations (id, title) VALUES
             ('00000000-0000-4000-8000-00000000000b', 'Walking databases')",
    )
    .expect("a mistyped setting does not fail the app's write");
    assert!(
        warned
            .lock()
            .expect("lock")
            .iter()
            .any(|m| m.contains("names no text search configuration")),
        "warned"
    );
    assert_eq!(
        count(
            &mut client,
            "SELECT count(*) FROM council_search_documents WHERE config = 'council_english'::regconfig"
        ),
        1,
        "parsed with the default instead"
    );
}

/// An import into empty tables that fails partway (a bad time in
/// stage3_synthesis, after three tables were copied with their documents
/// deferred) leaves nothing, and the session's next writes are indexed as
/// ever: at top level, and after ROLLBACK TO SAVEPOINT.
#[test]
fn a_failed_import_leaves_the_triggers_indexing() {
    let cluster = common::cluster();
    let (path, _) = sample_of(&cluster, "broken", 10);
    {
        let conn = common::spoil(&path);
        conn.execute_batch(
            "UPDATE stage3_synthesis SET created_at = 'not a time'
             WHERE id = (SELECT max(id) FROM stage3_synthesis)",
        )
        .expect("spoiling the file");
    }
    common::give_tree(&cluster, path.parent().expect("the file's directory"));
    let name = path.to_string_lossy().into_owned();
    let mut client = common::database_with_extension(&cluster, "council");

    let err = client
        .query("SELECT * FROM council_import($1)", &[&name])
        .expect_err("the bad time stops the import");
    assert_eq!(sqlstate(&err), "22007", "{err}");
    client
        .batch_execute(
            "INSERT INTO conversations (id, title) VALUES
                 ('00000000-0000-4000-8000-00000000000a', 'Pelican anatomy')",
        )
        .expect("the app's insert after the failed import");
    assert_eq!(kinds(&search(&mut client, "pelican", "")), ["title"]);

    let mut tx = client.transaction().expect("begin");
    tx.batch_execute("SAVEPOINT before_import")
        .expect("savepoint");
    tx.query("SELECT * FROM council_import($1)", &[&name])
        .expect_err("the bad time stops the import");
    tx.batch_execute(
        "ROLLBACK TO SAVEPOINT before_import;
         INSERT INTO conversations (id, title) VALUES
             ('00000000-0000-4000-8000-00000000000b', 'Pelican migration')",
    )
    .expect("the insert after the rolled-back import");
    tx.commit().expect("commit");
    assert_eq!(search(&mut client, "pelican", "").len(), 2);
    assert_eq!(count(&mut client, "SELECT count(*) FROM messages"), 0);
    assert_search_documents_match_the_tables(&mut client);
}

/// `llm_council.search = off` keeps no documents: an import writes none
/// (and imports every row all the same), the app's writes through the
/// triggers write none, council_search refuses with 55000 and a HINT that
/// names the setting, and a reindex with it off removes what was there.
/// Back on, council_search_reindex() catches up, and search finds it all.
#[test]
fn search_off_keeps_no_documents_and_a_reindex_catches_up() {
    let cluster = common::cluster();
    let mut client = common::database_with_extension(&cluster, "council");
    client
        .batch_execute("ALTER DATABASE council SET llm_council.search = off")
        .expect("the setting, for the database");
    let mut off = cluster.connect("council").expect("reconnect");
    let shown: String = off
        .query_one("SHOW llm_council.search", &[])
        .expect("show")
        .get(0);
    assert_eq!(shown, "off");

    let (path, summary) = sample_file(&cluster, "off", &SampleOptions::default());
    let imported: i64 = off
        .query_one(
            "SELECT sum(imported)::bigint FROM council_import($1)",
            &[&path.to_string_lossy().as_ref()],
        )
        .expect("import with search off")
        .get(0);
    assert_eq!(imported as u64, summary.rows(), "every row imported");
    off.batch_execute(
        "INSERT INTO conversations (id, title) VALUES
             ('00000000-0000-4000-8000-0000000000f1', 'Tuning the zyzzogeton');
         INSERT INTO messages (conversation_id, role, content)
             VALUES ('00000000-0000-4000-8000-0000000000f1', 'user', 'the zyzzogeton never finishes');",
    )
    .expect("the app's writes with search off");
    assert_eq!(
        count(&mut off, "SELECT count(*) FROM council_search_documents"),
        0,
        "no document written, by the import or by the triggers"
    );

    let err = off
        .query("SELECT * FROM council_search('zyzzogeton')", &[])
        .expect_err("council_search with search off");
    assert_eq!(sqlstate(&err), "55000");
    let db = err.as_db_error().expect("a server error");
    assert!(
        db.hint().is_some_and(|h| h.contains("llm_council.search")),
        "{db:?}"
    );

    // On for this session: reindex catches up with everything written.
    off.batch_execute("SET llm_council.search = on")
        .expect("on again");
    let written = common::number(&mut off, "SELECT council_search_reindex()");
    assert!(written > 100, "{written} documents");
    assert_search_documents_match_the_tables(&mut off);
    let found = search(&mut off, "zyzzogeton", "");
    let mut found = kinds(&found);
    found.sort_unstable();
    assert_eq!(found, ["title", "user_message"]);

    // Off again: a reindex keeps none.
    off.batch_execute("SET llm_council.search = off")
        .expect("off again");
    let kept = common::number(&mut off, "SELECT council_search_reindex()");
    assert_eq!(kept, 0);
    assert_eq!(
        count(&mut off, "SELECT count(*) FROM council_search_documents"),
        0
    );
}

/// The setting is a boolean PostgreSQL parses: settable per role, and a
/// value that is not a boolean is refused when it is set.
#[test]
fn search_is_a_boolean_setting_per_role() {
    let cluster = common::cluster();
    let mut client = common::database_with_extension(&cluster, "council");
    client
        .batch_execute(
            "CREATE ROLE importer LOGIN PASSWORD 'importer';
             GRANT INSERT, SELECT ON ALL TABLES IN SCHEMA public TO importer;
             ALTER ROLE importer SET llm_council.search = off;",
        )
        .expect("a role with search off");
    let mut importer = cluster
        .connect_as("council", "importer", "importer")
        .expect("connect as importer");
    importer
        .batch_execute(
            "INSERT INTO conversations (id, title) VALUES
                 ('00000000-0000-4000-8000-0000000000f2', 'Written with search off')",
        )
        .expect("insert");
    assert_eq!(
        count(&mut client, "SELECT count(*) FROM council_search_documents"),
        0,
        "the role's setting holds in its triggers"
    );
    client
        .batch_execute(
            "INSERT INTO conversations (id, title) VALUES
                 ('00000000-0000-4000-8000-0000000000f3', 'Written with search on')",
        )
        .expect("insert");
    assert_eq!(
        count(&mut client, "SELECT count(*) FROM council_search_documents"),
        1,
        "on by default"
    );
    // Loading the library makes the setting PostgreSQL's own boolean.
    client
        .batch_execute("SELECT council_search_enabled()")
        .expect("load");
    let err = client
        .batch_execute("SET llm_council.search = 'sometimes'")
        .expect_err("not a boolean");
    assert_eq!(sqlstate(&err), "22023");
}

/// The triggers' WHEN spares a write every call that would change no
/// document: with search off, none of the app's writes calls a trigger
/// function; with it on, neither does an assistant's message nor the
/// conversation's count and time the app sets on every message, while a
/// user's message, a response and a new title each call one, and their
/// documents are what the tables make.
#[test]
fn writes_that_change_no_document_call_no_trigger_function() {
    let cluster = common::cluster();
    let mut client = common::database_with_extension(&cluster, "council");
    let trigger_calls =
        |client: &mut Client| calls_in_this_transaction(client, "council\\_search\\_index\\_%");
    let conversation = "'00000000-0000-4000-8000-0000000000e1'";
    let writes = format!(
        "INSERT INTO conversations (id, title) VALUES ({conversation}, 'Pruning the quince');
         INSERT INTO messages (id, conversation_id, role, content)
             VALUES (900001, {conversation}, 'user', 'when is the quince pruned');
         INSERT INTO messages (id, conversation_id, role, content)
             VALUES (900002, {conversation}, 'assistant', NULL);
         INSERT INTO stage1_responses (id, message_id, model, response)
             VALUES (900003, 900002, 'model a', 'in late winter, before the buds swell');
         INSERT INTO stage3_synthesis (id, message_id, chairman_model, response)
             VALUES (900004, 900002, 'chairman', 'prune it in late winter');
         UPDATE conversations SET message_count = message_count + 1, updated_at = now()
             WHERE id = {conversation};"
    );

    // One transaction each, whose function statistics are its own.
    client
        .batch_execute(
            "BEGIN; SET LOCAL track_functions = 'all'; SET LOCAL llm_council.search = off",
        )
        .expect("search off");
    client
        .batch_execute(&writes)
        .expect("the app's writes, search off");
    client
        .batch_execute(&format!(
            "UPDATE conversations SET title = 'Pruning the medlar' WHERE id = {conversation};
         DELETE FROM stage3_synthesis WHERE id = 900004;"
        ))
        .expect("an update and a delete, search off");
    assert_eq!(
        trigger_calls(&mut client),
        0,
        "search off: no trigger function called"
    );
    assert_eq!(
        count(&mut client, "SELECT count(*) FROM council_search_documents"),
        0
    );
    client.batch_execute("ROLLBACK").expect("rollback");

    client
        .batch_execute("BEGIN; SET LOCAL track_functions = 'all'")
        .expect("track");
    client
        .batch_execute(&writes)
        .expect("the app's writes, search on");
    assert_eq!(
        trigger_calls(&mut client),
        4,
        "the title, the user's message, the response and the synthesis; \
         not the assistant's message nor the conversation's count"
    );
    client
        .batch_execute(&format!(
            "UPDATE conversations SET message_count = message_count + 1, updated_at = now()
             WHERE id = {conversation};
         UPDATE messages SET created_at = created_at WHERE id = 900001;"
        ))
        .expect("updates that change no document");
    assert_eq!(
        trigger_calls(&mut client),
        4,
        "no call for what changes no document"
    );
    client
        .batch_execute(&format!(
            "UPDATE conversations SET title = 'Pruning the medlar' WHERE id = {conversation}"
        ))
        .expect("a new title");
    assert_eq!(trigger_calls(&mut client), 5, "a new title calls one");
    client.batch_execute("COMMIT").expect("commit");
    assert_search_documents_match_the_tables(&mut client);
    let found = search(&mut client, "medlar", "");
    assert_eq!(kinds(&found), ["title"]);
    assert!(
        search(&mut client, "quince", "").len() == 1,
        "the user's message"
    );
}

/// Ranked by BM25 with the corpus's term statistics: one mention of a word
/// few documents hold outranks a word most documents hold, however often
/// said (ts_rank, which knows no document frequency, ranked them the other
/// way round); and the statistics follow council_search_analyze().
#[test]
fn a_rare_word_outranks_a_common_word_said_often() {
    let cluster = common::cluster();
    let mut client = common::database_with_extension(&cluster, "council");
    client
        .batch_execute(
            "INSERT INTO conversations (id, title)
             SELECT ('00000000-0000-4000-8000-' || lpad(g::text, 12, '0'))::uuid,
                    'alpha report number ' || g
             FROM generate_series(1, 30) g;
             INSERT INTO conversations (id, title) VALUES
                 ('00000000-0000-4000-8000-0000000000a1', 'alpha alpha alpha alpha alpha alpha beta'),
                 ('00000000-0000-4000-8000-0000000000a2', 'zeta gamma delta epsilon theta iota');",
        )
        .expect("titles");
    let analyzed = common::number(&mut client, "SELECT council_search_analyze()");
    assert!(analyzed > 30, "{analyzed} lexemes counted");
    let (documents, average): (i64, f64) = client
        .query_one(
            "SELECT documents, average_length FROM council_search_statistics",
            &[],
        )
        .map(|r| (r.get(0), r.get(1)))
        .expect("statistics");
    assert_eq!(documents, 32);
    assert!(average > 3.0 && average < 7.0, "{average}");

    let hits = search(&mut client, "alpha or zeta", "");
    assert_eq!(hits.len(), 20, "the top 20 of 32");
    assert_eq!(
        hits[0].1.as_deref(),
        Some("00000000-0000-4000-8000-0000000000a2"),
        "the rare word first: {hits:?}"
    );
    assert_eq!(
        hits[1].1.as_deref(),
        Some("00000000-0000-4000-8000-0000000000a1"),
        "then the common word said most often"
    );
    assert!(hits[0].4 > hits[1].4 && hits[1].4 > hits[2].4);
}

/// Every searchable text: each table's column.
const EVERY_TEXT: [(&str, &str); 4] = [
    ("conversations", "title"),
    ("messages", "content"),
    ("stage1_responses", "response"),
    ("stage3_synthesis", "response"),
];

/// A sample of `conversations` whose texts in `columns` ((table, column))
/// are real prose, Debian's own documentation, and the texts written.
fn prose_sample(
    cluster: &council_loader::cluster::Cluster,
    name: &str,
    conversations: u64,
    columns: &[(&str, &str)],
) -> (std::path::PathBuf, Vec<String>) {
    let (path, _) = sample_of(cluster, name, conversations);
    let mut written = Vec::new();
    let file = rusqlite::Connection::open(&path).expect("open the sample");
    let mut next = common::debian_text::paragraphs().into_iter().cycle();
    for (table, column) in columns {
        let rowids: Vec<i64> = file
            .prepare(&format!("SELECT rowid FROM {table} ORDER BY rowid"))
            .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
            .expect("rowids");
        for rowid in rowids {
            let text = next.next().expect("a paragraph");
            file.execute(
                &format!("UPDATE {table} SET {column} = ?1 WHERE rowid = ?2"),
                rusqlite::params![text, rowid],
            )
            .expect("real prose into the sample");
            written.push(text);
        }
    }
    (path, written)
}

/// Whoever writes a document, the same parser makes it: on real prose with
/// code, URLs, e-mail addresses, numbers, hyphenated words, and Cyrillic,
/// Greek and CJK text, the documents the import writes equal those the
/// app's own writes make through the triggers, and those a reindex makes;
/// and a query finds each kind of word the way the documents hold it.
#[test]
fn the_import_the_triggers_and_a_reindex_write_the_same_documents_of_real_prose() {
    let cluster = common::cluster();
    let (path, written_text) = prose_sample(&cluster, "prose", 30, &EVERY_TEXT);

    // What the file holds has each kind of text this test is about.
    let words: Vec<&str> = written_text
        .iter()
        .flat_map(|p| p.split_whitespace())
        .collect();
    let has = |what: &str, test: &dyn Fn(&str) -> bool| {
        let word = words.iter().copied().find(|w| test(w));
        assert!(word.is_some(), "the file's text has no {what}");
        word.map(str::to_owned).unwrap_or_default()
    };
    let in_script = |range: std::ops::RangeInclusive<char>| {
        move |w: &str| w.chars().count() >= 4 && w.chars().all(|c| range.contains(&c))
    };
    has("URL", &|w| {
        w.starts_with("https://") || w.starts_with("http://")
    });
    has("e-mail address", &|w| {
        w.split_once('@')
            .is_some_and(|(user, host)| !user.is_empty() && host.contains('.'))
    });
    has("number", &|w| {
        w.len() >= 2 && w.bytes().all(|b| b.is_ascii_digit())
    });
    has("hyphenated word", &|w| {
        w.split('-').count() == 2
            && w.split('-')
                .all(|part| part.len() >= 2 && part.chars().all(char::is_alphabetic))
    });
    has("code", &|w| {
        w.contains("()") || w.contains("::") || w.starts_with("--")
    });
    let searched = [
        has("Cyrillic word", &in_script('а'..='я')),
        has("Greek word", &in_script('α'..='ω')),
        has("CJK word", &|w| {
            w.chars().count() >= 2 && w.chars().all(|c| ('\u{4e00}'..='\u{9fff}').contains(&c))
        }),
    ];

    for config in ["english", "council_english"] {
        assert_one_parser_everywhere(&cluster, &path, config, &searched);
    }
}

/// The documents of `path` imported, written through the triggers, and
/// reindexed, all under the search configuration `config`, are the same;
/// and each of `searched` is found.
fn assert_one_parser_everywhere(
    cluster: &council_loader::cluster::Cluster,
    path: &std::path::Path,
    config: &str,
    searched: &[String],
) {
    let configured = |name: &str| {
        let mut client = common::database_with_extension(cluster, &format!("{name}_{config}"));
        client
            .execute(
                "SELECT set_config('llm_council.search_config', $1, false)",
                &[&config],
            )
            .expect("llm_council.search_config");
        client
    };
    let mut imported = configured("imported");
    imported
        .query(
            "SELECT * FROM council_import($1)",
            &[&path.to_string_lossy().as_ref()],
        )
        .expect("council_import");
    let by_import = common::search_documents(&mut imported);
    assert!(by_import.len() > 300, "{} documents", by_import.len());
    assert!(
        by_import.iter().all(|d| d.contains(&format!("|{config}|"))),
        "parsed with {config}: {:?}",
        by_import.first()
    );

    // The app's writes: a row at a time, in its own statements.
    let mut written = configured("written");
    for table in [
        "conversations",
        "messages",
        "stage1_responses",
        "stage3_synthesis",
    ] {
        let rows = imported
            .query(
                &format!("SELECT row_to_json(t)::text FROM {table} t ORDER BY id"),
                &[],
            )
            .expect("the imported rows");
        for row in rows {
            let json: String = row.get(0);
            written
                .execute(
                    &format!("INSERT INTO {table} SELECT * FROM json_populate_record(NULL::{table}, $1::text::json)"),
                    &[&json],
                )
                .expect("the app's insert");
        }
    }
    let by_triggers = common::search_documents(&mut written);

    imported
        .execute("SELECT council_search_reindex()", &[])
        .expect("council_search_reindex");
    let by_reindex = common::search_documents(&mut imported);

    let first_difference = |a: &[String], b: &[String]| {
        a.iter()
            .zip(b)
            .find(|(x, y)| x != y)
            .map(|(x, y)| format!("{x}\n{y}"))
    };
    assert_eq!(
        by_triggers.len(),
        by_import.len(),
        "the triggers' documents in {config}"
    );
    assert_eq!(
        first_difference(&by_import, &by_triggers),
        None,
        "import, triggers in {config}"
    );
    assert_eq!(
        by_reindex.len(),
        by_import.len(),
        "a reindex's documents in {config}"
    );
    assert_eq!(
        first_difference(&by_import, &by_reindex),
        None,
        "import, reindex in {config}"
    );

    for word in searched {
        let hits: i64 = imported
            .query_one("SELECT count(*) FROM council_search($1)", &[&word])
            .expect("council_search")
            .get(0);
        assert!(hits > 0, "no hit for {word} in {config}");
    }
}

/// An import into empty tables builds the indexes of the documents, the
/// postings and the terms anew once its documents are in, rather than
/// keeping them row by row: each index is a new one afterwards, defined as
/// before, the primary keys, a DBA's own index and storage option
/// included; one that backs an exclusion constraint or that a foreign key
/// relies on is kept as it is.
#[test]
fn a_bulk_fill_builds_the_indexes_anew_as_they_were_defined() {
    let cluster = common::cluster();
    let (path, _) = sample_of(&cluster, "rebuilt", 10);
    let mut client = common::database_with_extension(&cluster, "council");
    client
        .batch_execute(
            "CREATE INDEX council_search_documents_created ON council_search_documents (created_at DESC);
             ALTER INDEX council_search_documents_document SET (fastupdate = off);
             ALTER TABLE council_search_documents
                 ADD CONSTRAINT council_search_documents_one_title EXCLUDE (conversation_id WITH =)
                 WHERE (kind = 'title');
             ALTER INDEX council_search_postings_pkey SET (fillfactor = 70);
             CREATE TABLE bookmarks (doc bigint REFERENCES council_search_documents (doc));",
        )
        .expect("a DBA's index, option, constraint and foreign key");
    let indexes = |client: &mut Client| -> Vec<(String, u32)> {
        client
            .query(
                "SELECT pg_get_indexdef(i.indexrelid) || coalesce(' ' || c.reloptions::text, ''),
                        i.indexrelid::oid
                 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
                 WHERE i.indrelid IN ('council_search_documents'::regclass,
                                      'council_search_postings'::regclass)
                 ORDER BY 1",
                &[],
            )
            .expect("the indexes")
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect()
    };
    let before = indexes(&mut client);
    assert_eq!(before.len(), 7, "{before:?}");
    client
        .query(
            "SELECT * FROM council_import($1)",
            &[&path.to_string_lossy().as_ref()],
        )
        .expect("council_import");
    let after = indexes(&mut client);
    let definitions = |list: &[(String, u32)]| list.iter().map(|i| i.0.clone()).collect::<Vec<_>>();
    assert_eq!(definitions(&after), definitions(&before));
    for ((definition, old), (_, new)) in before.iter().zip(&after) {
        if definition.contains("council_search_documents_pkey") || definition.contains("one_title")
        {
            assert_eq!(
                old, new,
                "a foreign key's, an exclusion's index is kept: {definition}"
            );
        } else {
            assert_ne!(old, new, "built anew: {definition}");
        }
    }
    let backed: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_constraint k JOIN pg_class i ON i.oid = k.conindid
             WHERE k.conname = 'council_search_postings_pkey' AND k.contype = 'p'
               AND i.relname = k.conname",
            &[],
        )
        .expect("the constraint")
        .get(0);
    assert_eq!(
        backed, 1,
        "council_search_postings_pkey is the primary key again, on its index"
    );
    // a reindex truncates the documents, which a foreign key forbids
    client
        .batch_execute("DROP TABLE bookmarks")
        .expect("drop the DBA's table");
    assert_search_documents_match_the_tables(&mut client);
    let titled: String = client
        .query_one(
            "SELECT title FROM conversations WHERE title IS NOT NULL ORDER BY id LIMIT 1",
            &[],
        )
        .expect("a title")
        .get(0);
    let word = titled
        .split(|c: char| !c.is_alphanumeric())
        .find(|w| w.len() >= 5)
        .expect("a word of the title")
        .to_owned();
    assert!(!search(&mut client, &word, "").is_empty(), "{word}");
}

/// council_search's snippets of council_english documents come from the
/// stored document's positions, not from parsing the text again: on real
/// prose they are ts_headline's own, option for option, for words, phrases
/// (with a stop word inside), prefixes, `or` and `-word`; a word too long
/// to index is left out as ts_headline leaves it out; and a bad option is
/// ts_headline's error.
#[test]
fn snippets_are_ts_headlines_made_from_the_stored_positions() {
    let cluster = common::cluster();
    let mut client = common::database_with_extension(&cluster, "council");
    client
        .batch_execute("CREATE TABLE prose (id serial PRIMARY KEY, body text NOT NULL)")
        .expect("prose");
    let mut paragraphs = common::debian_text::paragraphs();
    paragraphs.truncate(400);
    paragraphs.push(format!(
        "Before a word too long to index, {} and after it the file system.",
        "x".repeat(3000)
    ));
    for body in &paragraphs {
        client
            .execute("INSERT INTO prose (body) VALUES ($1)", &[body])
            .expect("a paragraph");
    }
    client
        .batch_execute(
            "ALTER TABLE prose ADD COLUMN document tsvector;
             UPDATE prose SET document = to_tsvector('council_english', body);",
        )
        .expect("documents");

    // Queries made of the text's own words: the first word of each of 60
    // paragraphs, its first two words as a phrase, and as a prefix, `or`
    // and `-word` pairs with the next paragraph's word.
    let words: Vec<String> = client
        .query(
            "SELECT (SELECT w FROM regexp_split_to_table(body, '[^[:alpha:]]+') w
                     WHERE length(w) >= 4 LIMIT 1)
             FROM prose ORDER BY id LIMIT 60",
            &[],
        )
        .expect("words")
        .iter()
        .filter_map(|r| r.get::<_, Option<String>>(0))
        .collect();
    assert!(words.len() >= 40, "{words:?}");
    let mut queries = vec![
        "websearch_to_tsquery('council_english', '\"the file system\"')".to_owned(),
        "websearch_to_tsquery('council_english', 'file system')".to_owned(),
    ];
    for pair in words.windows(2) {
        let (a, b) = (pair[0].replace('\'', ""), pair[1].replace('\'', ""));
        let prefix: String = a.chars().take(3).collect();
        queries.push(format!("websearch_to_tsquery('council_english', '{a}')"));
        queries.push(format!(
            "websearch_to_tsquery('council_english', '{a} or {b}')"
        ));
        queries.push(format!(
            "websearch_to_tsquery('council_english', '{a} -{b}')"
        ));
        queries.push(format!(
            "to_tsquery('council_english', '{}:*')",
            prefix.to_lowercase()
        ));
    }
    let phrases: Vec<String> = client
        .query(
            "SELECT (regexp_match(body, '([[:alpha:]]{4,} [[:alpha:]]{4,})'))[1]
             FROM prose ORDER BY id LIMIT 60",
            &[],
        )
        .expect("phrases")
        .iter()
        .filter_map(|r| r.get::<_, Option<String>>(0))
        .collect();
    for phrase in phrases {
        queries.push(format!(
            "phraseto_tsquery('council_english', '{}')",
            phrase.replace('\'', "")
        ));
    }

    let options = [
        "MaxFragments=2, MaxWords=20, MinWords=8, FragmentDelimiter=\" … \"",
        "",
        "StartSel=[, StopSel=], MaxWords=10, MinWords=3, ShortWord=2",
        "HighlightAll=true",
        "MaxFragments=3, MaxWords=7, MinWords=2",
        // a name in any case, the last one counting
        "maxfragments=1, MaxWords=30, maxwords=12, MinWords=4",
    ];
    let mut compared = 0i64;
    for query in &queries {
        for option in options {
            let row = client
                .query_one(
                    &format!(
                        "SELECT count(*),
                                count(*) FILTER (WHERE council_search_snippet(body, document, q, $1)
                                                 IS DISTINCT FROM ts_headline('council_english', body, q, $1)),
                                min(id) FILTER (WHERE council_search_snippet(body, document, q, $1)
                                                IS DISTINCT FROM ts_headline('council_english', body, q, $1))
                         FROM prose, {query} q WHERE document @@ q"
                    ),
                    &[&option],
                )
                .unwrap_or_else(|e| panic!("{query} {option}: {e}"));
            let (matched, differ, first): (i64, i64, Option<i32>) =
                (row.get(0), row.get(1), row.get(2));
            assert_eq!(differ, 0, "{query} with {option:?}: {differ} of {matched} differ, the first paragraph {first:?}");
            compared += matched;
        }
    }
    assert!(compared > 5000, "{compared} snippets compared");

    // The long word: left out, the words around it there.
    let long: String = client
        .query_one(
            "SELECT council_search_snippet(body, document, to_tsquery('council_english', 'file'), 'HighlightAll=true')
             FROM prose WHERE body LIKE 'Before a word too long%'",
            &[],
        )
        .expect("the long word's paragraph")
        .get(0);
    assert_eq!(
        long,
        "Before a word too long to index,  and after it the <b>file</b> system."
    );

    // Through council_search, with a bad option: ts_headline's error.
    client
        .batch_execute(
            "INSERT INTO conversations (id, title, created_at)
                 VALUES ('00000000-0000-4000-8000-00000000000a', 'The file system and its journal', now())",
        )
        .expect("a conversation");
    let found = search(&mut client, "journal", "");
    assert_eq!(found.len(), 1, "{found:?}");
    // a fragment begins at no short word: "The" is left out, as ts_headline leaves it
    assert_eq!(found[0].5, "file system and its <b>journal</b>");
    let err = client
        .query(
            "SELECT * FROM council_search('journal', snippet_options => 'MaxWords=5, MinWords=9')",
            &[],
        )
        .expect_err("MinWords above MaxWords");
    // PostgreSQL's words: "should be" up to 16, "must be" from 17 on
    common::assert_error(&err, "22023", "be less than MaxWords");
    let err = client
        .query(
            "SELECT * FROM council_search('journal', snippet_options => 'Colour=red')",
            &[],
        )
        .expect_err("an unknown option");
    common::assert_error(&err, "22023", "unrecognized headline parameter");
}

/// council_search_document, which the triggers, the bulk fill and the
/// reindex make documents with, is to_tsvector, byte for byte, on real
/// prose and on what stretches a tsvector (a word too long to index, a
/// lexeme said 300 times, words past the 16,383rd, stop words alone,
/// nothing), for council_english and for configurations of another
/// parser; and a dictionary's change is seen at once by the session that
/// looked its words up before.
#[test]
fn documents_are_to_tsvectors_made_with_each_word_looked_up_once() {
    let cluster = common::cluster();
    let mut client = common::database_with_extension(&cluster, "council");
    client
        .batch_execute("CREATE TABLE prose (id serial PRIMARY KEY, body text NOT NULL)")
        .expect("prose");
    let mut bodies = common::debian_text::paragraphs();
    bodies.truncate(600);
    bodies.push(format!("a word too long {} to index", "x".repeat(3000)));
    bodies.push(format!("a blank run{}too long", " ".repeat(3000)));
    bodies.push("Cats ".repeat(300));
    bodies.push(
        (0..20_000)
            .map(|i| format!("word{} ", i % 50))
            .collect::<String>(),
    );
    bodies.push("the and of to".to_owned());
    bodies.push(String::new());
    for body in &bodies {
        client
            .execute("INSERT INTO prose (body) VALUES ($1)", &[body])
            .expect("a text");
    }
    for config in ["council_english", "english", "simple"] {
        let row = client
            .query_one(
                "SELECT count(*),
                        count(*) FILTER (WHERE council_search_document($1::text::regconfig, body)
                                         IS DISTINCT FROM to_tsvector($1::text::regconfig, body)),
                        min(id) FILTER (WHERE council_search_document($1::text::regconfig, body)
                                        IS DISTINCT FROM to_tsvector($1::text::regconfig, body))
                 FROM prose",
                &[&config],
            )
            .expect("compared");
        let (texts, differ, first): (i64, i64, Option<i32>) = (row.get(0), row.get(1), row.get(2));
        assert_eq!(texts, bodies.len() as i64);
        assert_eq!(
            differ, 0,
            "{config}: {differ} differ, the first text {first:?}"
        );
    }

    // A dictionary the session has looked words up in changes its stop words.
    client
        .batch_execute(
            "CREATE TEXT SEARCH DICTIONARY plain_stem (TEMPLATE = snowball, Language = english);
             CREATE TEXT SEARCH CONFIGURATION plain (PARSER = council_parser);
             ALTER TEXT SEARCH CONFIGURATION plain ADD MAPPING FOR asciiword WITH plain_stem;",
        )
        .expect("a configuration of council_parser");
    let document = |client: &mut Client| -> (String, String) {
        let row = client
            .query_one(
                "SELECT council_search_document('plain', 'The cats and the dogs')::text,
                        to_tsvector('plain', 'The cats and the dogs')::text",
                &[],
            )
            .expect("a document");
        (row.get(0), row.get(1))
    };
    let (before, expected) = document(&mut client);
    assert_eq!(before, expected);
    assert!(before.contains("'the'"), "{before}");
    client
        .batch_execute("ALTER TEXT SEARCH DICTIONARY plain_stem (StopWords = english)")
        .expect("stop words");
    let (after, expected) = document(&mut client);
    assert_eq!(after, expected);
    assert_eq!(after, "'cat':2 'dog':5");
}

/// The term statistics council_search_analyze() keeps are ts_stat's counts
/// of the documents, on real prose; the function that counts them reads
/// every document below the executor, so only the extension's owner may
/// call it, and one with SELECT revoked may not read through it.
#[test]
fn the_term_statistics_are_ts_stats_counts() {
    let cluster = common::cluster();
    let (path, _) = prose_sample(&cluster, "terms", 20, &[("stage1_responses", "response")]);
    let mut client = common::database_with_extension(&cluster, "council");
    client
        .query(
            "SELECT * FROM council_import($1)",
            &[&path.to_string_lossy().as_ref()],
        )
        .expect("council_import");
    let kept = count(
        &mut client,
        "SELECT count(*) FROM council_search_postings WHERE lexeme <> ''",
    );
    assert!(kept > 1000, "{kept} lexemes");
    for (left, right) in [
        ("SELECT lexeme, documents, occurrences FROM council_search_postings WHERE lexeme <> ''",
         "SELECT word, ndoc, nentry FROM ts_stat('SELECT document FROM council_search_stored_documents()')"),
        ("SELECT word, ndoc, nentry FROM ts_stat('SELECT document FROM council_search_stored_documents()')",
         "SELECT lexeme, documents, occurrences FROM council_search_postings WHERE lexeme <> ''"),
    ] {
        assert_eq!(
            count(&mut client, &format!("SELECT count(*) FROM ({left} EXCEPT {right}) d")),
            0,
            "{left} EXCEPT {right}"
        );
    }

    client
        .batch_execute(
            "CREATE ROLE reader LOGIN PASSWORD 'reader';
             GRANT SELECT ON ALL TABLES IN SCHEMA public TO reader;",
        )
        .expect("a reader");
    let mut reader = cluster
        .connect_as("council", "reader", "reader")
        .expect("connect as reader");
    let err = reader
        .query(
            "SELECT * FROM council_search_postings_build('council_search_documents'::regclass)",
            &[],
        )
        .expect_err("EXECUTE is the owner's");
    assert_eq!(sqlstate(&err), "42501");
    client
        .batch_execute(
            "GRANT EXECUTE ON FUNCTION council_search_postings_build(oid) TO reader;
             REVOKE SELECT ON council_search_documents FROM reader;",
        )
        .expect("EXECUTE without SELECT");
    let err = reader
        .query(
            "SELECT * FROM council_search_postings_build('council_search_documents'::regclass)",
            &[],
        )
        .expect_err("SELECT on the documents");
    common::assert_error(
        &err,
        "42501",
        "permission denied for table council_search_documents",
    );
}

/// Every search of `queries` with each of `calls` (what follows the query
/// in council_search's arguments), whole and in order.
fn searches(
    client: &mut impl postgres::GenericClient,
    queries: &[String],
    calls: &[String],
) -> Vec<(String, String, Vec<Hit>)> {
    let mut all = Vec::new();
    for query in queries {
        for call in calls {
            let hits = search(client, query, call);
            all.push((query.clone(), call.clone(), hits));
        }
    }
    all
}

/// The same searches with every document ranked one by one, as those
/// written since the postings were built are: each marked not indexed,
/// with its tsvector from the postings, in a transaction rolled back.
fn searches_of_the_documents_alone(
    client: &mut Client,
    queries: &[String],
    calls: &[String],
) -> Vec<(String, String, Vec<Hit>)> {
    let mut transaction = client.transaction().expect("begin");
    transaction
        .batch_execute(
            "UPDATE council_search_documents d SET indexed = false, document = s.document
             FROM council_search_stored_documents() s WHERE s.doc = d.doc",
        )
        .expect("every document to the GIN index");
    let all = searches(&mut transaction, queries, calls);
    transaction.rollback().expect("rollback");
    all
}

/// Every column of each search of `queries` with each of `calls`, as
/// text, and how many times council_search left a search to its statement
/// (`council_search_statement`), counted in a transaction rolled back; as
/// `role`, if given (whom `setup` grants what it reads).
fn whole_searches(
    client: &mut Client,
    queries: &[String],
    calls: &[String],
    setup: &str,
    role: Option<&str>,
) -> (Vec<Vec<String>>, i64) {
    // the counts wait in the backend until it reports them, whatever
    // transaction made them: this one's are what it adds
    let statements = |transaction: &mut postgres::Transaction<'_>| {
        calls_in_this_transaction(transaction, "council\\_search\\_statement")
    };
    let mut transaction = client.transaction().expect("begin");
    transaction
        .batch_execute(&format!("{setup}; SET LOCAL track_functions = 'all'"))
        .expect("set up");
    let before = statements(&mut transaction);
    if let Some(role) = role {
        transaction
            .batch_execute(&format!("SET LOCAL ROLE {role}"))
            .expect("set role");
    }
    let mut all = Vec::new();
    for query in queries {
        for call in calls {
            let rows = transaction
                .query(
                    &format!("SELECT row_to_json(s)::text FROM council_search($1{call}) s"),
                    &[query],
                )
                .unwrap_or_else(|err| panic!("council_search({query}{call}): {err}"));
            all.push(rows.iter().map(|r| r.get(0)).collect());
        }
    }
    transaction.batch_execute("RESET ROLE").expect("reset role");
    let made = statements(&mut transaction) - before;
    transaction.rollback().expect("rollback");
    (all, made)
}

/// A search without filters makes its page below the executor, with no
/// PL/pgSQL call (council_search_statement): every column of every row as
/// that statement gives it, which a role that holds each column it reads,
/// not the tables, still runs (the executor checks a column grant, and a
/// policy, as the page could not).
fn assert_the_page_is_the_statements(client: &mut Client, queries: &[String], calls: &[String]) {
    let (direct, statements) = whole_searches(client, queries, calls, "SELECT", None);
    let filtered = calls
        .iter()
        .filter(|call| !(call.is_empty() || call.starts_with(", \"limit\"")))
        .count();
    assert_eq!(
        statements,
        i64::try_from(filtered * queries.len()).unwrap_or(-1),
        "only the searches with filters ran the statement"
    );
    let (through_statement, statements) = whole_searches(
        client,
        queries,
        calls,
        "CREATE ROLE column_reader;
         GRANT SELECT ON council_search_documents, council_search_postings,
               council_search_statistics TO column_reader;
         GRANT SELECT (id, title) ON conversations TO column_reader;
         GRANT SELECT (id, content) ON messages TO column_reader;
         GRANT SELECT (id, response) ON stage1_responses, stage3_synthesis TO column_reader",
        Some("column_reader"),
    );
    assert_eq!(
        statements,
        i64::try_from(calls.len() * queries.len()).unwrap_or(-1),
        "column grants keep the statement"
    );
    for ((direct, statement), (query, call)) in direct.iter().zip(&through_statement).zip(
        queries
            .iter()
            .flat_map(|q| calls.iter().map(move |c| (q, c))),
    ) {
        assert_eq!(direct, statement, "council_search({query}{call})");
    }
}

/// Each search through the postings is the search of the documents alone,
/// and finds every document `@@` finds; a page made below the executor is
/// the statement's.
fn assert_the_postings_answer_as_the_documents(
    client: &mut Client,
    queries: &[String],
    calls: &[String],
) {
    assert_the_page_is_the_statements(client, queries, calls);
    let through_postings = searches(client, queries, calls);
    let of_documents = searches_of_the_documents_alone(client, queries, calls);
    for (postings, documents) in through_postings.iter().zip(&of_documents) {
        assert_eq!(
            postings, documents,
            "council_search({}{})",
            postings.0, postings.1
        );
    }
    for query in queries {
        let found = client
            .query_one(
                "SELECT (SELECT count(*) FROM council_search($1, \"limit\" => 1000000)),
                        (SELECT count(*) FROM council_search_documents d
                         LEFT JOIN council_search_stored_documents() s ON s.doc = d.doc
                         WHERE coalesce(d.document, s.document)
                               @@ websearch_to_tsquery('council_english', $1))",
                &[query],
            )
            .expect("the matches");
        assert_eq!(found.get::<_, i64>(0), found.get::<_, i64>(1), "{query}");
    }
}

/// Real prose's words, phrases and operators, each class present: words
/// from common to rare, phrases (one across a stop word), `or`, `-word`
/// (alone too), Cyrillic and Greek words, and a word nobody wrote.
fn queries_of(client: &mut Client, texts: &[String]) -> Vec<String> {
    let words_of = |text: &str| -> Vec<String> {
        text.split(|c: char| !c.is_alphabetic())
            .filter(|w| w.chars().count() >= 4)
            .map(str::to_lowercase)
            .collect()
    };
    let mut in_texts: std::collections::HashMap<String, usize> = Default::default();
    let mut order = Vec::new();
    for text in texts {
        let mut words = words_of(text);
        words.sort_unstable();
        words.dedup();
        for word in words {
            let n = in_texts.entry(word.clone()).or_insert(0);
            if *n == 0 {
                order.push(word);
            }
            *n += 1;
        }
    }
    let latin = |w: &String| w.chars().all(|c| c.is_ascii_alphabetic());
    let mut common: Vec<&String> = order.iter().filter(|w| latin(w)).collect();
    common.sort_by_key(|w| std::cmp::Reverse(in_texts[*w]));
    // the commonest words that are not stop words
    let mut searchable = common.into_iter().filter(|word| {
        client
            .query_one(
                "SELECT numnode(websearch_to_tsquery('council_english', $1)) > 0",
                &[word],
            )
            .expect("numnode")
            .get(0)
    });
    let (first, second) = (
        searchable.next().expect("a common word").clone(),
        searchable.next().expect("another").clone(),
    );
    let rare = order
        .iter()
        .find(|w| latin(w) && in_texts[*w] == 1)
        .expect("a rare word")
        .clone();
    let latin_words: Vec<&String> = order.iter().filter(|w| latin(w)).collect();
    let mut queries: Vec<String> = (1..10)
        .map(|i| latin_words[i * latin_words.len() / 10].clone())
        .collect();
    // a phrase of two words, and one across a stop word, as written
    let tokens: Vec<Vec<&str>> = texts
        .iter()
        .map(|t| t.split_whitespace().collect())
        .collect();
    let plain = |w: &str| w.len() >= 4 && w.chars().all(|c| c.is_ascii_alphabetic());
    let pair = tokens
        .iter()
        .flat_map(|t| t.windows(2))
        .find(|w| plain(w[0]) && plain(w[1]) && in_texts[&w[0].to_lowercase()] > 3)
        .expect("two words in a row");
    let across = tokens
        .iter()
        .flat_map(|t| t.windows(3))
        .find(|w| plain(w[0]) && ["of", "the", "to"].contains(&w[1]) && plain(w[2]))
        .expect("a phrase across a stop word");
    let script = |range: std::ops::RangeInclusive<char>| {
        order
            .iter()
            .find(|w| w.chars().all(|c| range.contains(&c)))
            .cloned()
    };
    queries.extend([
        first.clone(),
        second.clone(),
        rare.clone(),
        format!("{first} {second}"),
        format!("{first} -{second}"),
        format!("-{first}"),
        format!("{rare} or {second}"),
        format!("\"{} {}\"", pair[0], pair[1]),
        format!("\"{}\"", across.join(" ")),
        format!("\"{} {}\" -{rare}", pair[0], pair[1]),
        "qqqzzzxxy".to_string(),
    ]);
    queries.extend(script('а'..='я'));
    queries.extend(script('α'..='ω'));
    queries
}

/// The search's own index: council_search ranks the documents the postings
/// hold without reading them, and answers every query as the documents
/// alone would (the GIN index's matches, ranked one by one): the same
/// rows, ranks and snippets, for words common and rare, phrases, `or`,
/// `-word`, non-Latin words, with filters and pages; and so it does when
/// documents were deleted and written since the postings were built, and
/// after an analyze builds them again.
#[test]
fn the_postings_answer_every_search_as_the_documents_would_on_real_prose() {
    let cluster = common::cluster();
    let (path, texts) = prose_sample(&cluster, "postings", 40, &EVERY_TEXT);
    let mut client = common::database_with_extension(&cluster, "council");
    client
        .query(
            "SELECT * FROM council_import($1)",
            &[&path.to_string_lossy().as_ref()],
        )
        .expect("council_import");
    assert_eq!(
        count(
            &mut client,
            "SELECT count(*) FROM council_search_documents WHERE NOT indexed"
        ),
        0,
        "an import's documents are all in the postings"
    );
    assert_each_document_stored_once(&mut client);
    assert!(count(&mut client, "SELECT count(*) FROM council_search_postings") > 1000);
    let queries = queries_of(&mut client, &texts);
    let model: String = client
        .query_one(
            "SELECT model FROM stage1_responses ORDER BY id LIMIT 1",
            &[],
        )
        .expect("a model")
        .get(0);
    let middle: String = client
        .query_one(
            "SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY created_at)::text
             FROM council_search_documents",
            &[],
        )
        .expect("a time")
        .get(0);
    let conversation: String = client
        .query_one(
            "SELECT conversation_id::text FROM council_search_documents
             GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1",
            &[],
        )
        .expect("the conversation of most documents")
        .get(0);
    let calls: Vec<String> = vec![
        String::new(),
        ", kinds => '{stage1,stage3}'".into(),
        format!(", by_model => '{model}'"),
        format!(", since => '{middle}'"),
        format!(", conversation => '{conversation}'"),
        ", \"limit\" => 5, \"offset\" => 3".into(),
        ", \"limit\" => 300".into(),
    ];
    let first = searches(&mut client, &queries, &calls);
    let full_pages = first
        .iter()
        .filter(|(_, call, hits)| call.is_empty() && hits.len() == 20);
    assert!(full_pages.count() >= 5, "common words fill pages");
    assert_the_postings_answer_as_the_documents(&mut client, &queries, &calls);

    // Written since: the best matches of the commonest word deleted, and
    // new rows holding it, which the GIN index finds.
    let common_word = &queries[9];
    client
        .execute(
            "DELETE FROM stage1_responses WHERE id IN (
                 SELECT r.id FROM council_search($1, kinds => '{stage1}', \"limit\" => 40) s
                 JOIN stage1_responses r ON r.id = s.row_id)",
            &[common_word],
        )
        .expect("the best deleted");
    client
        .batch_execute(
            "INSERT INTO stage1_responses (id, message_id, model, response)
             SELECT (SELECT max(id) FROM stage1_responses) + row_number() OVER (ORDER BY id),
                    message_id, model, response || ' (written again)'
             FROM stage1_responses ORDER BY id LIMIT 40",
        )
        .expect("new rows");
    let fresh = count(
        &mut client,
        "SELECT count(*) FROM council_search_documents WHERE NOT indexed",
    );
    assert_eq!(fresh, 40, "the new rows' documents wait for the next build");
    assert_eq!(
        count(
            &mut client,
            "SELECT count(*) FROM council_search_documents WHERE document IS NOT NULL"
        ),
        40,
        "only the documents written since keep their tsvector"
    );
    assert_the_postings_answer_as_the_documents(&mut client, &queries, &calls);

    client
        .batch_execute("SELECT council_search_analyze()")
        .expect("council_search_analyze");
    assert_eq!(
        count(
            &mut client,
            "SELECT count(*) FROM council_search_documents WHERE NOT indexed"
        ),
        0
    );
    assert_each_document_stored_once(&mut client);
    assert_the_postings_answer_as_the_documents(&mut client, &queries, &calls);
}

/// Every document is in the postings alone: none keeps its tsvector in
/// council_search_documents, and the postings give each one back (a
/// document deleted since the last build, still listed, aside).
fn assert_each_document_stored_once(client: &mut Client) {
    assert_eq!(
        count(
            client,
            "SELECT count(*) FROM council_search_documents WHERE document IS NOT NULL OR NOT indexed"
        ),
        0,
        "a tsvector kept beside the postings"
    );
    assert_eq!(
        count(
            client,
            "SELECT count(*) FROM council_search_documents d
             LEFT JOIN council_search_stored_documents() s ON s.doc = d.doc
             WHERE s.doc IS NULL"
        ),
        0,
        "a document the postings do not hold"
    );
}

/// A document written while the postings are built is found, whichever
/// commits first: the build takes the documents it saw, marked in the
/// same transaction, and leaves the others to the GIN index.
#[test]
fn a_document_written_while_the_postings_are_built_is_found() {
    let cluster = common::cluster();
    let mut builder = common::database_with_extension(&cluster, "council");
    let mut app = cluster.connect("council").expect("a second session");
    app.batch_execute(
        "INSERT INTO conversations (id, title) VALUES
             ('00000000-0000-4000-8000-000000000001', 'Penguins of the south')",
    )
    .expect("a first title");

    // the build begins, a title commits, the build commits
    let mut building = builder.transaction().expect("begin");
    building
        .batch_execute("SELECT council_search_analyze()")
        .expect("build");
    app.batch_execute(
        "INSERT INTO conversations (id, title) VALUES
             ('00000000-0000-4000-8000-000000000002', 'Quokka island')",
    )
    .expect("written during the build");
    building.commit().expect("the build commits");
    assert_eq!(
        count(&mut app, "SELECT count(*) FROM council_search('quokka')"),
        1
    );
    assert_eq!(
        count(&mut app, "SELECT count(*) FROM council_search('penguin')"),
        1
    );

    // a title is written, the build runs and commits, the title commits
    let mut writing = app.transaction().expect("begin");
    writing
        .batch_execute(
            "INSERT INTO conversations (id, title) VALUES
                 ('00000000-0000-4000-8000-000000000003', 'Wombat burrows')",
        )
        .expect("written before the build");
    builder
        .batch_execute("SELECT council_search_analyze()")
        .expect("build");
    writing.commit().expect("the title commits");
    for word in ["quokka", "wombat", "penguin"] {
        assert_eq!(
            count(
                &mut app,
                &format!("SELECT count(*) FROM council_search('{word}')")
            ),
            1,
            "{word}"
        );
    }
    let waiting = count(
        &mut app,
        "SELECT count(*) FROM council_search_documents WHERE NOT indexed",
    );
    assert_eq!(
        waiting, 1,
        "the title written across the build waits for the next"
    );
    builder
        .batch_execute("SELECT council_search_analyze()")
        .expect("build");
    assert_eq!(
        count(&mut app, "SELECT count(*) FROM council_search('wombat')"),
        1
    );
    assert_eq!(
        count(
            &mut app,
            "SELECT count(*) FROM council_search_documents WHERE NOT indexed"
        ),
        0
    );
}

/// council_search runs with the caller's rights: a role that may read the
/// documents but not the postings is refused, by name, with the grants it
/// needs in the HINT; granted, it searches.
#[test]
fn searching_needs_select_on_the_search_tables() {
    let cluster = common::cluster();
    let mut admin = common::database_with_extension(&cluster, "council");
    admin
        .batch_execute(
            "CREATE ROLE reader LOGIN PASSWORD 'reader';
             GRANT SELECT ON conversations, messages, stage1_responses, stage3_synthesis,
                   council_search_documents
                   TO reader;
             INSERT INTO conversations (id, title)
                 VALUES ('00000000-0000-4000-8000-000000000001', 'Ptarmigan plumage');
             SELECT council_search_analyze();",
        )
        .expect("a reader without the search's own tables");
    let mut reader = cluster
        .connect_as("council", "reader", "reader")
        .expect("connect as reader");
    // the search reads them below the executor, each with the rights a
    // SELECT would need: granted one by one, each missing one is named
    for table in ["council_search_postings", "council_search_statistics"] {
        let err = reader
            .query("SELECT * FROM council_search('ptarmigan')", &[])
            .expect_err("a search table not granted");
        common::assert_error(
            &err,
            "42501",
            &format!("permission denied for table {table}"),
        );
        let hint = err.as_db_error().and_then(|e| e.hint()).unwrap_or_default();
        assert!(hint.contains(table), "{hint}");
        admin
            .batch_execute(&format!("GRANT SELECT ON {table} TO reader"))
            .expect("grant");
    }
    assert_eq!(
        count(
            &mut reader,
            "SELECT count(*) FROM council_search('ptarmigan')"
        ),
        1
    );
    // policies it could not apply refuse the search instead of being
    // passed over
    for table in ["council_search_postings", "council_search_statistics"] {
        admin
            .batch_execute(&format!(
                "ALTER TABLE {table} ENABLE ROW LEVEL SECURITY;
                 CREATE POLICY everything ON {table} FOR SELECT USING (true);"
            ))
            .expect("row-level security");
        let err = reader
            .query("SELECT * FROM council_search('ptarmigan')", &[])
            .expect_err("row-level security on a search table");
        common::assert_error(
            &err,
            "0A000",
            &format!("council_search does not support row-level security on table {table}"),
        );
        admin
            .batch_execute(&format!("ALTER TABLE {table} DISABLE ROW LEVEL SECURITY"))
            .expect("no row-level security");
    }
}

/// A policy on the app's own tables applies to what a search shows: a
/// message the role may not read lends its match no snippet, as the
/// role's own SELECT would show it no content, and one it may read does.
#[test]
fn a_policy_on_the_apps_tables_applies_to_the_search() {
    let cluster = common::cluster();
    let mut admin = common::database_with_extension(&cluster, "council");
    admin
        .batch_execute(
            "CREATE ROLE guarded LOGIN PASSWORD 'guarded';
             GRANT SELECT ON conversations, messages, stage1_responses, stage3_synthesis,
                   council_search_documents, council_search_postings, council_search_statistics
                   TO guarded;
             INSERT INTO conversations (id, title)
                 VALUES ('00000000-0000-4000-8000-000000000001', 'Birds');
             INSERT INTO messages (id, conversation_id, role, content)
                 VALUES (1, '00000000-0000-4000-8000-000000000001', 'user', 'Ptarmigan plumage turns white'),
                        (2, '00000000-0000-4000-8000-000000000001', 'user', 'A ptarmigan in summer is brown');
             SELECT council_search_analyze();
             ALTER TABLE messages ENABLE ROW LEVEL SECURITY;
             CREATE POLICY first_only ON messages FOR SELECT USING (id = 1);",
        )
        .expect("a role that may read one message");
    let mut guarded = cluster
        .connect_as("council", "guarded", "guarded")
        .expect("connect as guarded");
    let shown: Vec<(i64, Option<String>)> = guarded
        .query(
            "SELECT row_id, snippet FROM council_search('ptarmigan') ORDER BY row_id",
            &[],
        )
        .expect("council_search")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        shown,
        vec![
            (1, Some("<b>Ptarmigan</b> plumage turns white".to_string())),
            (2, None),
        ]
    );
    // the superuser, whom no policy binds, sees both
    let snippets = count(
        &mut admin,
        "SELECT count(snippet) FROM council_search('ptarmigan')",
    );
    assert_eq!(snippets, 2);
}

/// council_search pins no search_path: it finds its tables by its own
/// schema and names every object its statements use, so a caller whose
/// search_path puts decoys first (a table of the same name, an `@@` that
/// matches nothing) gets the same rows, both from the documents written
/// since the last analyze (the GIN index's statement) and from the
/// postings.
#[test]
fn the_callers_search_path_reaches_nothing_a_search_uses() {
    let cluster = common::cluster();
    let mut client = common::database_with_extension(&cluster, "council");
    let a = "00000000-0000-4000-8000-00000000000a";
    client
        .batch_execute(&format!(
            "INSERT INTO conversations (id, title, created_at)
                 VALUES ('{a}', 'Replication questions', '2025-03-01+00');
             INSERT INTO messages (id, conversation_id, role, content, created_at)
                 VALUES (1, '{a}', 'user', 'Why does replication lag grow at night?', '2025-03-01+00'),
                        (2, '{a}', 'assistant', NULL, '2025-03-01+00');
             INSERT INTO stage1_responses (id, message_id, model, response, created_at)
                 VALUES (10, 2, 'm1', 'Replication lag follows the backups.', '2025-03-02+00');
             CREATE SCHEMA decoy;
             CREATE TABLE decoy.council_search_documents (LIKE public.council_search_documents);
             CREATE TABLE decoy.council_search_postings (LIKE public.council_search_postings);
             CREATE FUNCTION decoy.never(tsvector, tsquery) RETURNS boolean
                 LANGUAGE sql IMMUTABLE AS 'SELECT false';
             CREATE OPERATOR decoy.@@ (LEFTARG = tsvector, RIGHTARG = tsquery,
                                       FUNCTION = decoy.never);"
        ))
        .expect("rows and decoys");
    let found = |client: &mut Client, search_path: &str| {
        client
            .batch_execute(&format!("SET search_path = {search_path}"))
            .expect("search_path");
        client
            .query(
                "SELECT kind, row_id, rank, snippet FROM public.council_search('replication')",
                &[],
            )
            .expect("search")
            .iter()
            .map(|r| {
                (
                    r.get::<_, String>(0),
                    r.get::<_, Option<i64>>(1),
                    r.get::<_, f32>(2),
                    r.get::<_, String>(3),
                )
            })
            .collect::<Vec<_>>()
    };
    client
        .batch_execute("SELECT public.council_search_analyze()")
        .expect("analyze");
    for (state, then) in [
        (
            "in the postings",
            "UPDATE public.council_search_documents d SET indexed = false, document = s.document
             FROM public.council_search_stored_documents() s WHERE s.doc = d.doc",
        ),
        ("in the GIN index", ""),
    ] {
        let with_decoys = found(&mut client, "decoy, public, pg_catalog");
        let without = found(&mut client, "public");
        assert_eq!(with_decoys.len(), 3, "{state}: {with_decoys:?}");
        assert_eq!(with_decoys, without, "{state}");
        client.batch_execute(then).expect("the next state");
    }
}

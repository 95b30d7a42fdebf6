"""The benchmark: council_import against the ways people move a council.db
today, on one fixture, one cluster, one run; it prints ratios, since
absolute times on shared machines drift and ratios hold.

Contenders, each into a fresh database with the same schema, indexes and
foreign keys, in one transaction:
  council_import   the raw fixture, '' timestamps and all
  copy             server-side COPY of CSV files holding the same rows,
                   already converted to the target types (conversion not timed)
  floor            INSERT … SELECT of the same rows already typed in a second
                   schema of the same database, after a CHECKPOINT
  pgloader         data only into the same schema, reset sequences, on a copy
                   with '' timestamps replaced (pgloader cannot load them)
  seed procedure   the app's migration guide's script (psycopg2), same copy

Run by bench/run, which builds, installs and starts what this needs.
"""

import argparse
import datetime
import os
import platform
import random
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse

import psycopg2
from psycopg2 import sql

import prose

TABLES = [
    "conversations", "messages", "stage1_responses", "stage2_rankings",
    "stage3_synthesis", "deliberation_metadata", "api_keys", "api_key_audit_log",
]
TIMESTAMP_COLUMNS = {
    "conversations": ["created_at", "updated_at"],
    "messages": ["created_at"],
    "stage1_responses": ["created_at"],
    "stage2_rankings": ["created_at"],
    "stage3_synthesis": ["created_at"],
    "deliberation_metadata": ["created_at"],
    "api_keys": ["created_at", "last_used_at", "expires_at"],
    "api_key_audit_log": ["created_at"],
}


def db_url(url, database):
    """The cluster's URL (which names its password file) for another database."""
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(path="/" + database))


def with_password(url):
    """The URL with the password in it, for pgloader, which reads no password file."""
    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qs(parts.query)
    password = ""
    for line in open(query["passfile"][0]):
        if line.strip() and not line.startswith("#"):
            password = line.strip().rsplit(":", 1)[1]
            break
    netloc = f"{parts.username}:{password}@{parts.hostname}:{parts.port}"
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc, query=""))


def connect(url, database):
    conn = psycopg2.connect(db_url(url, database))
    conn.autocommit = True
    return conn


# The text search configuration of every database the benchmark makes
# (llm_council.search_config); None leaves the extension's default.
SEARCH_CONFIG = None


def fresh_database(url, name, search=True):
    """A new database with the extension; `search=False` sets
    llm_council.search off for it, before the first session."""
    admin = connect(url, "postgres")
    with admin.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}"')
        cur.execute(f'CREATE DATABASE "{name}"')
        if not search:
            cur.execute(f'ALTER DATABASE "{name}" SET llm_council.search = off')
        if SEARCH_CONFIG:
            cur.execute(sql.SQL("ALTER DATABASE {} SET llm_council.search_config = {}").format(
                sql.Identifier(name), sql.Literal(SEARCH_CONFIG)))
    admin.close()
    conn = connect(url, name)
    with conn.cursor() as cur:
        cur.execute("SET client_min_messages = warning")
        cur.execute("CREATE EXTENSION llm_council")
    return conn


def drop_database(url, name):
    admin = connect(url, "postgres")
    with admin.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}"')
    admin.close()


def checkpoint(conn):
    with conn.cursor() as cur:
        cur.execute("CHECKPOINT")


def loader(args, *command, **kwargs):
    return subprocess.run([args.loader, *command], check=True, capture_output=True, text=True, **kwargs)


def target_columns(conn, table):
    with conn.cursor() as cur:
        cur.execute(
            "SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) FROM pg_attribute "
            "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped",
            (table,),
        )
        return cur.fetchone()[0]


def source_rows(path):
    # immutable: the fixture is a WAL-mode file, and a plain read-only open
    # would leave -wal and -shm files beside it
    conn = sqlite3.connect(f"file:{path}?immutable=1", uri=True)
    rows = {}
    for table in TABLES:
        try:
            rows[table] = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        except sqlite3.OperationalError:
            rows[table] = 0
    conn.close()
    return rows


def mismatches(conn, fixture):
    """Rows of the file that are missing or differ in the database, by
    council_verify (content after the import's mapping, not counts)."""
    with conn.cursor() as cur:
        cur.execute("SELECT coalesce(sum(missing + differing), 0) FROM council_verify(%s)", (fixture,))
        return int(cur.fetchone()[0])


def loaded_rows(conn):
    total = 0
    with conn.cursor() as cur:
        for table in TABLES:
            cur.execute(f"SELECT count(*) FROM {table}")
            total += cur.fetchone()[0]
    return total


def prepare_copy_files(args, url, fixture):
    """The same rows as CSV in the target's types, and a schema `typed`
    template, made once from an imported database (not timed)."""
    conn = fresh_database(url, "bench_source")
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM council_import(%s)", (fixture,))
        for table in TABLES:
            cur.execute(f"COPY {table} TO %s (FORMAT csv)", (os.path.join(args.work, f"{table}.csv"),))
    columns = {table: target_columns(conn, table) for table in TABLES}
    conn.close()
    return columns


def set_sequences_sql():
    return ";\n".join(
        f"SELECT setval(pg_get_serial_sequence('{t}', 'id'), max(id)) FROM {t} HAVING max(id) IS NOT NULL"
        for t in TABLES if t != "conversations"
    )


def run_council_import(args, url, fixture, n, search=True):
    conn = fresh_database(url, f"bench_import_{n}", search)
    checkpoint(conn)
    with conn.cursor() as cur:
        started = time.perf_counter()
        cur.execute("SELECT coalesce(sum(imported), 0) FROM council_import(%s)", (fixture,))
        rows = int(cur.fetchone()[0])
        elapsed = time.perf_counter() - started
    return elapsed, rows, conn


def run_copy(args, url, fixture, n, columns, search=True):
    conn = fresh_database(url, f"bench_copy_{n}", search)
    checkpoint(conn)
    loads = []
    for table in TABLES:
        path = os.path.join(args.work, f"{table}.csv")
        loads.append(f"COPY {table} ({columns[table]}) FROM '{path}' (FORMAT csv)")
    elapsed = timed_load(conn, loads)
    return elapsed, loaded_rows(conn), conn


def run_floor(args, url, fixture, n, columns, search=True):
    conn = fresh_database(url, f"bench_floor_{n}", search)
    with conn.cursor() as cur:
        cur.execute("CREATE SCHEMA typed")
        for table in TABLES:
            cur.execute(f"CREATE TABLE typed.{table} (LIKE public.{table})")
            path = os.path.join(args.work, f"{table}.csv")
            cur.execute(f"COPY typed.{table} ({columns[table]}) FROM %s (FORMAT csv)", (path,))
            cur.execute(f"VACUUM ANALYZE typed.{table}")
    checkpoint(conn)
    elapsed = timed_load(conn, [
        f"INSERT INTO public.{table} ({columns[table]}) SELECT {columns[table]} FROM typed.{table}"
        for table in TABLES
    ])
    with conn.cursor() as cur:
        cur.execute("DROP SCHEMA typed CASCADE")
    return elapsed, loaded_rows(conn), conn


def timed_load(conn, loads):
    """Seconds the loads take in one transaction that also sets the
    sequences, as council_import does."""
    statements = ["BEGIN", *loads, set_sequences_sql(), "COMMIT"]
    with conn.cursor() as cur:
        started = time.perf_counter()
        cur.execute(";\n".join(statements))
        return time.perf_counter() - started


def cleaned_copy(args, fixture):
    """The fixture with '' timestamps replaced by NULL: pgloader and the seed
    procedure cannot load them at all."""
    path = os.path.join(args.work, "cleaned.db")
    if os.path.exists(path):
        os.remove(path)
    source = sqlite3.connect(f"file:{fixture}?immutable=1", uri=True)
    target = sqlite3.connect(path)
    source.backup(target)
    source.close()
    # A copy of the app's file may break its NOT NULL: the point is the data.
    target.execute("PRAGMA writable_schema = ON")
    target.execute("UPDATE sqlite_schema SET sql = replace(sql, 'NOT NULL', '') WHERE type = 'table'")
    target.commit()
    target.close()
    target = sqlite3.connect(path)
    for table, columns in TIMESTAMP_COLUMNS.items():
        for column in columns:
            try:
                target.execute(f"UPDATE {table} SET {column} = NULL WHERE {column} = ''")
            except sqlite3.OperationalError:
                pass
    target.commit()
    target.close()
    os.chmod(path, 0o644)
    return path


def run_pgloader(args, url, cleaned, n):
    name = f"bench_pgloader_{n}"
    conn = fresh_database(url, name)
    checkpoint(conn)
    command = os.path.join(args.work, f"pgloader-{n}.load")
    target = with_password(db_url(url, name))
    with open(command, "w") as f:
        f.write(
            f"LOAD DATABASE\n FROM sqlite://{cleaned}\n INTO {target}\n"
            " WITH data only, reset sequences, create no tables, create no indexes\n"
            " EXCLUDING TABLE NAMES LIKE 'sqlite_sequence';\n"
        )
    started = time.perf_counter()
    # SBCL's default heap is too small for this file's rows: without a larger
    # one pgloader dies in garbage collection partway, at random, and the run
    # would measure the crash instead of pgloader.
    result = subprocess.run(["pgloader", "--dynamic-space-size", "4096", "--quiet", command],
                            capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    rows = loaded_rows(conn)
    if result.returncode != 0:
        print(f"  pgloader exited {result.returncode}", file=sys.stderr)
    return elapsed, rows, conn


def run_seed(args, url, cleaned, n):
    name = f"bench_seed_{n}"
    conn = fresh_database(url, name)
    checkpoint(conn)
    env = dict(os.environ, DATABASE_URL=db_url(url, name), PYTHONPATH=args.seed)
    script = (
        "import migrate_to_postgres as m, sys\n"
        "stats = m.migrate_conversations(sys.argv[1])\n"
        "print(stats['errors'][:1])\n"
    )
    started = time.perf_counter()
    result = subprocess.run([args.python, "-c", script, cleaned], env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        print(f"  seed procedure failed: {result.stderr.strip()[-300:]}", file=sys.stderr)
    rows = loaded_rows(conn)
    return elapsed, rows, conn


def measure(label, runs, fixture, source_total, one_run):
    times, rows, equal = [], 0, None
    for n in range(runs):
        elapsed, loaded, conn = one_run(n)
        times.append(elapsed)
        rows = loaded
        if equal is None:
            equal = mismatches(conn, fixture) == 0 and loaded == source_total
        conn.close()
        print(f"  {label:<16} run {n + 1}: {elapsed:7.2f} s, {loaded} rows", file=sys.stderr)
    return {"contender": label, "seconds": statistics.median(times), "rows": rows, "equal": equal}


def peak_memory(url, fixture, name):
    """The importing backend's memory while it imports: its peak private
    memory (RssAnon, sampled every 10 ms) and VmHWM (which also counts the
    shared buffers it touched), in MB."""
    conn = fresh_database(url, name)
    with conn.cursor() as cur:
        cur.execute("SELECT pg_backend_pid()")
        pid = cur.fetchone()[0]

    def read_status():
        values = {}
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                key, _, value = line.partition(":")
                if key in ("RssAnon", "VmHWM"):
                    values[key] = int(value.split()[0]) / 1024
        return values

    result = {}

    def run():
        with conn.cursor() as cur:
            cur.execute("SELECT coalesce(sum(imported), 0) FROM council_import(%s)", (fixture,))
            result["rows"] = int(cur.fetchone()[0])

    worker = threading.Thread(target=run)
    worker.start()
    private = 0.0
    while worker.is_alive():
        private = max(private, read_status().get("RssAnon", 0.0))
        time.sleep(0.01)
    worker.join()
    hwm = read_status().get("VmHWM", 0.0)
    conn.close()
    return private, hwm, result.get("rows", 0)


def changed_copy(args, fixture):
    """The fixture as the app leaves it some days after the first import: 1%
    of every table's rows changed, 1% added, and 0.1% of the conversations
    deleted with their rows (ON DELETE CASCADE). Deterministic; made once."""
    path = fixture.replace(".db", "-changed.db")
    if os.path.exists(path):
        return path
    source = sqlite3.connect(f"file:{fixture}?immutable=1", uri=True)
    changed = sqlite3.connect(path)
    source.backup(changed)
    source.close()
    changed.execute("PRAGMA foreign_keys = ON")
    updates = {
        "conversations": "title = coalesce(title, '') || ' (renamed)', updated_at = '2026-11-20T10:00:00'",
        "messages": "content = coalesce(content, '') || ' (edited)'",
        "stage1_responses": "confidence = 0.5",
        "stage2_rankings": "debate_round = coalesce(debate_round, 1) + 1",
        "stage3_synthesis": "meta_evaluation = 'revised'",
        "deliberation_metadata": "voting_method = 'copeland'",
        "api_keys": "is_active = 1 - coalesce(is_active, 1)",
        "api_key_audit_log": "endpoint = '/v2/moved'",
    }
    for table, assignments in updates.items():
        changed.execute(f"UPDATE {table} SET {assignments} WHERE rowid % 100 = 7")
    # New rows: copies of 1% of the rows under new ids (a new conversation
    # id is a canonical UUID made from the old row's rowid).
    changed.execute(
        "INSERT INTO conversations (id, title, created_at, updated_at, is_pinned, is_hidden, message_count) "
        "SELECT printf('00000000-0000-4000-8000-%012d', rowid), title, created_at, updated_at, is_pinned, "
        "is_hidden, message_count FROM conversations WHERE rowid % 100 = 3"
    )
    for table, columns in {
        "messages": "conversation_id, role, content, created_at",
        "stage1_responses": "message_id, model, response, confidence, base_model, sample_id, created_at",
        "stage2_rankings": "message_id, evaluator_model, raw_ranking, parsed_ranking, debate_round, rubric_scores, created_at",
        "stage3_synthesis": "message_id, chairman_model, response, meta_evaluation, created_at",
        "api_key_audit_log": "api_key_id, action, endpoint, ip_address, user_agent, request_id, created_at",
    }.items():
        changed.execute(f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {table} WHERE id % 100 = 3")
    changed.execute(
        "INSERT INTO api_keys (key_hash, key_prefix, name, created_at, last_used_at, expires_at, is_active, "
        "rate_limit_override, permissions, metadata) SELECT key_hash || '-new', key_prefix, name, created_at, "
        "last_used_at, expires_at, is_active, rate_limit_override, permissions, metadata FROM api_keys "
        "WHERE id % 100 = 3"
    )
    changed.execute("DELETE FROM conversations WHERE rowid % 1000 = 5")
    changed.commit()
    changed.close()
    os.chmod(path, 0o644)
    return path


def timed(conn, sql, params):
    with conn.cursor() as cur:
        started = time.perf_counter()
        cur.execute(sql, params)
        rows = cur.fetchall()
        return time.perf_counter() - started, rows


def catch_up_benchmark(args, url, sizes, fixture_of):
    """The cutover's steps against a fresh import of the same file: the
    same file again (every row skipped), council_verify, and a sync after
    the app's changes, after the VACUUM (ANALYZE) the runbook runs once the
    first import is in. Median of the runs; each run on a fresh database."""
    table = []
    for conversations in sizes:
        path = fixture_of(conversations)
        changed = changed_copy(args, path)
        runs = {"fresh": [], "again": [], "verify": [], "sync": []}
        plan = None
        for n in range(args.runs):
            name = f"bench_catch_up_{conversations}"
            conn = fresh_database(url, name)
            checkpoint(conn)
            runs["fresh"].append(timed(conn, "SELECT sum(imported) FROM council_import(%s)", (path,))[0])
            # The runbook's step 2 (and autovacuum, minutes after an import
            # this size): the new rows' visibility and statistics are set
            # before the downtime, not by the catch-up.
            with conn.cursor() as cur:
                cur.execute("VACUUM (ANALYZE)")
            checkpoint(conn)
            runs["again"].append(timed(conn, "SELECT sum(skipped) FROM council_import(%s)", (path,))[0])
            runs["verify"].append(timed(conn, "SELECT sum(identical) FROM council_verify(%s)", (path,))[0])
            checkpoint(conn)
            elapsed, rows = timed(
                conn,
                "SELECT sum(imported), sum(updated), sum(deleted), sum(skipped) FROM council_import(%s, 'sync')",
                (changed,),
            )
            runs["sync"].append(elapsed)
            plan = rows[0]
            conn.close()
            drop_database(url, name)
        medians = {k: statistics.median(v) for k, v in runs.items()}
        table.append((conversations, medians, plan))
        print(f"  catch-up {conversations}: fresh {medians['fresh']:.2f} s, again {medians['again']:.2f} s, "
              f"verify {medians['verify']:.2f} s, sync {medians['sync']:.2f} s {plan}", file=sys.stderr)
    return table


def export_benchmark(args, url, fixture):
    """council_export against a fresh import of the same file: the file the
    server writes (into the work directory, which the server may write),
    and the same file streamed to this host by `council-loader export`.
    Median of the runs, each export into a new file; the last one is checked
    row for row with council_verify."""
    name = "bench_export"
    conn = fresh_database(url, name)
    checkpoint(conn)
    imported = timed(conn, "SELECT sum(imported) FROM council_import(%s)", (fixture,))[0]
    with conn.cursor() as cur:
        cur.execute("VACUUM (ANALYZE)")
    out = os.path.join(args.work, "exported.db")
    by_path, by_stream = [], []
    for n in range(args.runs):
        if os.path.exists(out):
            os.remove(out)
        checkpoint(conn)
        by_path.append(timed(conn, "SELECT sum(rows) FROM council_export(%s)", (out,))[0])
        os.remove(out)
        started = time.perf_counter()
        loader(args, "export", out, "--database-url", db_url(url, name))
        by_stream.append(time.perf_counter() - started)
    elapsed, rows = timed(conn, "SELECT sum(source_rows - identical), sum(source_rows) FROM council_verify(%s)",
                          (out,))
    differing, exported = rows[0]
    os.remove(out)
    conn.close()
    drop_database(url, name)
    result = (imported, statistics.median(by_path), statistics.median(by_stream), int(exported), differing == 0)
    print(f"  export: path {result[1]:.2f} s, stream {result[2]:.2f} s, fresh import {imported:.2f} s, "
          f"{result[3]} rows, identical {result[4]}", file=sys.stderr)
    return result


def peak_during(url, name, statements):
    """The backend's peak private memory (RssAnon, MB) while it runs the
    last of `statements` ((sql, file) pairs) on a database that ran the
    others first, in a backend of its own: what the others kept of the heap
    they grew does not count."""
    setup = fresh_database(url, name)
    with setup.cursor() as cur:
        for sql, path in statements[:-1]:
            cur.execute(sql, (path,))
    setup.close()
    conn = connect(url, name)
    with conn.cursor() as cur:
        cur.execute("SELECT pg_backend_pid()")
        pid = cur.fetchone()[0]
    done = threading.Event()

    def run():
        sql, path = statements[-1]
        with conn.cursor() as cur:
            cur.execute(sql, (path,))
            cur.fetchall()
        done.set()

    worker = threading.Thread(target=run)
    worker.start()
    private = 0.0
    while not done.is_set():
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("RssAnon:"):
                    private = max(private, int(line.split()[1]) / 1024)
        time.sleep(0.01)
    worker.join()
    conn.close()
    drop_database(url, name)
    return private


def loader_import(args, url, fixture, name, upload):
    """`council-loader import` into a fresh database, by server path or by
    streamed upload: wall time, and the importing backend's peak private
    memory (RssAnon, sampled every 10 ms)."""
    # Like every contender: a fresh database, after a checkpoint, so that
    # one run's dirty pages are not the next run's cost.
    conn = fresh_database(url, name)
    checkpoint(conn)
    conn.close()
    target = db_url(url, name)
    command = [args.loader, "import", "--json", "--database-url", target, fixture]
    if upload:
        command.append("--upload")
    watcher = connect(url, "postgres")
    # Output to files, not pipes: a pipe nobody drains would stall the loader
    # on its progress lines.
    errors = open(os.path.join(args.work, f"{name}.stderr"), "w+")
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=errors, text=True)
    private, pid = 0.0, None
    while process.poll() is None:
        if pid is None:
            with watcher.cursor() as cur:
                cur.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s AND backend_type = 'client backend'", (name,))
                row = cur.fetchone()
                pid = row[0] if row else None
        if pid is not None:
            try:
                with open(f"/proc/{pid}/status") as status:
                    for line in status:
                        if line.startswith("RssAnon:"):
                            private = max(private, int(line.split()[1]) / 1024)
            except OSError:
                pass
        time.sleep(0.01)
    elapsed = time.perf_counter() - started
    watcher.close()
    errors.seek(0)
    stderr = errors.read()
    errors.close()
    if process.returncode != 0:
        raise RuntimeError(f"council-loader import failed: {stderr.strip()[-500:]}")
    return elapsed, private


def upload_benchmark(args, url, sizes, fixture_of):
    """The loader by server path and by upload, on the same file, in turns;
    at least five runs each, since one run's page cache is the next one's
    noise."""
    results = []
    runs = max(args.runs, 5)
    for conversations in sizes:
        path = fixture_of(conversations)
        by_path, by_upload, memory_path, memory_upload = [], [], 0.0, 0.0
        for n in range(runs):
            # in turns, each first every other run, each database dropped after
            for upload in ([False, True] if n % 2 == 0 else [True, False]):
                name = f"bench_{'upload' if upload else 'path'}_{conversations}"
                elapsed, private = loader_import(args, url, path, name, upload)
                drop_database(url, name)
                if upload:
                    by_upload.append(elapsed)
                    memory_upload = max(memory_upload, private)
                else:
                    by_path.append(elapsed)
                    memory_path = max(memory_path, private)
        row = (conversations, os.path.getsize(path), statistics.median(by_path), statistics.median(by_upload),
               memory_path, memory_upload)
        print(f"  loader {conversations}: path {row[2]:.2f} s, upload {row[3]:.2f} s ({row[3] / row[2]:.2f}×), "
              f"backend private {memory_path:.0f} / {memory_upload:.0f} MB", file=sys.stderr)
        results.append(row)
    return results


def pgbench(args, url, script, seconds, settings="", database="bench_cache", variables=()):
    """8 clients running `script` against `database`; `settings` go into
    each session (PGOPTIONS), `variables` are pgbench's -D NAME=VALUE."""
    defines = [f"-D{name}={value}" for name, value in variables]
    result = subprocess.run(
        ["pgbench", "-n", "-M", "prepared", "-c", "8", "-j", "2", "-T", str(seconds), *defines, "-f", script,
         db_url(url, database)],
        capture_output=True, text=True, check=True, env={**os.environ, "PGOPTIONS": settings},
    )
    transactions = tps = None
    for line in result.stdout.splitlines():
        if "number of transactions actually processed" in line:
            transactions = int(line.split(":")[1].split("/")[0].strip())
        if line.startswith("tps") and "without initial connection" in line:
            tps = float(line.split("=")[1].split()[0])
    return tps, transactions


def cache_benchmark(args, url):
    conn = fresh_database(url, "bench_cache")
    with conn.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM (SELECT council_cache_put('key' || i, 'q', '[{\"model\": \"m\"}]', '[]', "
            "'{\"response\": \"r\"}', '{}', interval '1 day') FROM generate_series(1, 100) i) s"
        )
    get = os.path.join(args.work, "cache-get.sql")
    update = os.path.join(args.work, "cache-update.sql")
    with open(get, "w") as f:
        f.write("\\set k random(1, 100)\nSELECT * FROM council_cache_get('key' || :k);\n")
    with open(update, "w") as f:
        f.write(
            "\\set k random(1, 100)\n"
            "UPDATE response_cache SET hit_count = hit_count + 1, last_hit_at = now() "
            "WHERE cache_key = 'key' || :k AND (expires_at IS NULL OR expires_at > now()) RETURNING *;\n"
        )
    results = {"get": [], "update": []}
    total = 0
    for _ in range(args.cache_rounds):
        for name, script in (("get", get), ("update", update)):
            tps, transactions = pgbench(args, url, script, args.cache_seconds)
            results[name].append(tps)
            total += transactions
    with conn.cursor() as cur:
        cur.execute("SELECT sum(hit_count) FROM response_cache")
        hits = int(cur.fetchone()[0])
    conn.close()
    return statistics.median(results["get"]), statistics.median(results["update"]), hits, total


def trim_cache(conn, bound):
    """Bounded puts until the cache is back within its bound and the slack
    it may exceed it by (a put evicts at most 1000), then a vacuum, so that
    each run starts alike."""
    slack = min(bound // 64, 64)
    conn.commit()
    # Each put its own transaction: one transaction's evictions would leave
    # its later puts to step over the rows its earlier ones deleted.
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f"SET llm_council.cache_max_entries = {bound}")
        while True:
            cur.execute("SELECT council_cache_put('trim', 'q', '[]', '[]', '{}', '{}')")
            cur.execute("SELECT count(*) FROM response_cache")
            if cur.fetchone()[0] <= bound + slack:
                break
        cur.execute("RESET llm_council.cache_max_entries")
        cur.execute("VACUUM ANALYZE response_cache")
    conn.autocommit = False


def cache_put_benchmark(args, url):
    """Puts of new keys into a cache of --cache-entries entries, unbounded (it
    grows) and bounded at that many (each put's share of the evictions), in
    turns."""
    conn = fresh_database(url, "bench_cache")
    with conn.cursor() as cur:
        cur.execute(
            f"SELECT count(*) FROM (SELECT council_cache_put('seed' || i, 'q', '[{{\"model\": \"m\"}}]', '[]', "
            f"'{{\"response\": \"r\"}}', '{{}}', interval '1 day') FROM generate_series(1, {args.cache_entries}) i) s"
        )
    conn.commit()
    script = os.path.join(args.work, "cache-put.sql")
    with open(script, "w") as f:
        f.write("\\set k random(1, 1000000000)\n"
                "SELECT 1 FROM council_cache_put('k' || :k, 'q', '[{\"model\": \"m\"}]', '[]', "
                "'{\"response\": \"r\"}', '{}', interval '1 day');\n")
    results = {"unbounded": [], "bounded": []}
    for n in range(args.cache_rounds):
        for name in (["unbounded", "bounded"] if n % 2 == 0 else ["bounded", "unbounded"]):
            trim_cache(conn, args.cache_entries)
            bound = args.cache_entries if name == "bounded" else 0
            tps, _ = pgbench(args, url, script, args.cache_seconds, f"-c llm_council.cache_max_entries={bound}")
            results[name].append(tps)
    with conn.cursor() as cur:
        cur.execute("SELECT count(*), coalesce(pg_sequence_last_value('response_cache_inserted'), 0) "
                    "- coalesce(pg_sequence_last_value('response_cache_removed'), 0) FROM response_cache")
        entries, counted = cur.fetchone()
    conn.close()
    return statistics.median(results["unbounded"]), statistics.median(results["bounded"]), entries, counted


# The search queries of the benchmark: the kinds the issue names, with terms
# the sample's prose holds (websearch syntax, which FTS5 reads alike here).
# What a team that stays on SQLite would search with: one FTS5 table over
# the same text, English stemming like PostgreSQL's 'english'; each row
# keeps the key council_search reports, to compare rankings.
FTS5_SOURCES = [
    "SELECT title, 'title', id FROM src.conversations WHERE title IS NOT NULL",
    "SELECT content, 'user_message', id FROM src.messages WHERE role = 'user' AND content IS NOT NULL",
    "SELECT response, 'stage1', id FROM src.stage1_responses",
    "SELECT response, 'stage3', id FROM src.stage3_synthesis",
]

QUERY_CLASSES = ["one word", "several words", "phrase", "rare term", "common term", "-word", "non-Latin"]

# The app's add-assistant-message transaction: the message, three stage 1
# responses, three rankings, the synthesis and the metadata, and the
# conversation's count; its text is the file's own prose.
APP_WRITE = r"""\set c random(1, :conversations)
\set r random(1, :responses - 3)
BEGIN;
INSERT INTO messages (conversation_id, role, content, created_at)
    SELECT id, 'assistant', NULL, now() FROM bench_conversations WHERE n = :c RETURNING id AS message_id \gset
INSERT INTO stage1_responses (message_id, model, response, confidence, created_at)
    SELECT :message_id, 'model ' || n, response, 0.8, now() FROM bench_responses WHERE n BETWEEN :r AND :r + 2;
INSERT INTO stage2_rankings (message_id, evaluator_model, raw_ranking, parsed_ranking, rubric_scores, created_at)
    SELECT :message_id, 'model ' || g, 'FINAL RANKING:\n1. Response B\n2. Response A\n3. Response C',
           '["Response B", "Response A", "Response C"]', '{"accuracy": 8, "clarity": 7}', now()
    FROM generate_series(1, 3) g;
INSERT INTO stage3_synthesis (message_id, chairman_model, response, created_at)
    SELECT :message_id, 'chairman', response, now() FROM bench_responses WHERE n = :r + 3;
INSERT INTO deliberation_metadata (message_id, label_to_model, aggregate_rankings, voting_method, created_at)
    VALUES (:message_id, '{"Response A": "a", "Response B": "b", "Response C": "c"}', '[]', 'borda', now());
UPDATE conversations SET message_count = message_count + 1, updated_at = now()
    WHERE id = (SELECT id FROM bench_conversations WHERE n = :c);
COMMIT;
"""


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def prose_fixture(args, conversations, fixture_of):
    paragraphs = prose.corpus(args.corpus_cache)
    path = os.path.join(args.work, f"prose-{conversations}.db")
    return prose.fixture(fixture_of(conversations), paragraphs, path), len(paragraphs)


def import_timed(url, name, path, search):
    conn = fresh_database(url, name, search)
    checkpoint(conn)
    seconds, _ = timed(conn, "SELECT sum(imported) FROM council_import(%s)", (path,))
    return conn, seconds


def fts5_index(args, path, conversations):
    fts_path = os.path.join(args.work, f"fts5-{conversations}.db")
    if os.path.exists(fts_path):
        os.remove(fts_path)
    fts = sqlite3.connect(fts_path)
    fts.execute(f"ATTACH 'file:{path}?immutable=1' AS src")
    started = time.perf_counter()
    fts.execute("CREATE VIRTUAL TABLE docs USING fts5(body, kind UNINDEXED, key UNINDEXED, "
                "tokenize = 'porter unicode61')")
    for source in FTS5_SOURCES:
        fts.execute(f"INSERT INTO docs (body, kind, key) {source}")
    fts.commit()
    built = time.perf_counter() - started
    documents = [((kind, str(key)), body) for body, kind, key in fts.execute("SELECT body, kind, key FROM docs")]
    fts.execute("DETACH src")
    return fts, built, os.path.getsize(fts_path), documents


def app_writes(args, url, name, seconds):
    """tps of the app's add-assistant-message transaction, 8 clients, with
    search on and off, alternating, best of each."""
    conn = connect(url, name)
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE bench_conversations AS "
                    "SELECT row_number() OVER (ORDER BY id) AS n, id FROM conversations")
        cur.execute("CREATE TABLE bench_responses AS "
                    "SELECT row_number() OVER (ORDER BY id) AS n, response FROM stage1_responses")
        cur.execute("CREATE INDEX ON bench_conversations (n); CREATE INDEX ON bench_responses (n)")
        cur.execute("SELECT (SELECT count(*) FROM bench_conversations), (SELECT count(*) FROM bench_responses)")
        conversations, responses = cur.fetchone()
        cur.execute("VACUUM ANALYZE")
    script = os.path.join(args.work, "app-write.sql")
    with open(script, "w") as f:
        f.write(APP_WRITE)
    variables = [("conversations", conversations), ("responses", responses)]
    on, off = [], []
    for _ in range(2):
        on.append(pgbench(args, url, script, seconds, "", name, variables)[0])
        off.append(pgbench(args, url, script, seconds, "-c llm_council.search=off", name, variables)[0])
    with conn.cursor() as cur:
        cur.execute("SELECT council_search_reindex()")
    conn.close()
    return max(on), max(off)


def search_benchmark(args, url, conversations, fixture_of):
    """council_search against SQLite FTS5 over the same real prose: p50 and
    p95 per query class, top 20 with snippets, after a warm-up run of each;
    known-item MRR; the import with search on and off; the app's writes."""
    path, paragraphs = prose_fixture(args, conversations, fixture_of)
    # the import with search off and on, alternating, each into a fresh
    # database, and FTS5's build: the median of each, as this machine's
    # times drift from one run to the next; the last import is searched
    name = "bench_search"
    offs, ons, builds = [], [], []
    for n in range(args.runs):
        off_conn, seconds = import_timed(url, "bench_search_off", path, search=False)
        off_conn.close()
        drop_database(url, "bench_search_off")
        offs.append(seconds)
        conn, seconds = import_timed(url, name, path, search=True)
        ons.append(seconds)
        if n < args.runs - 1:
            conn.close()
    imported_off, imported = statistics.median(offs), statistics.median(ons)
    with conn.cursor() as cur:
        cur.execute("VACUUM (ANALYZE)")
        cur.execute("SELECT count(*), pg_table_size('council_search_documents'), "
                    "pg_total_relation_size('council_search_postings'), "
                    "pg_indexes_size('council_search_documents') FROM council_search_documents")
        documents, table_bytes, postings_bytes, index_bytes = cur.fetchone()
    print(f"  search: {documents:,} documents, import {imported:.1f} s (off: {imported_off:.1f} s)",
          file=sys.stderr)
    for n in range(args.runs):
        if n:
            fts.close()
        fts, fts_built, fts_bytes, texts = fts5_index(args, path, conversations)
        builds.append(fts_built)
    fts_built = statistics.median(builds)
    print(f"  search: FTS5 built in {fts_built:.1f} s, {fts_bytes / 1e6:.0f} MB", file=sys.stderr)

    rng = random.Random(7)
    asked = prose.queries(texts, rng, per_class=args.search_queries)
    rounds = args.search_rounds
    timings = {label: ([], []) for label in QUERY_CLASSES}
    hits = {label: [0, 0] for label in QUERY_CLASSES}
    examples = {}
    with conn.cursor() as cur:
        for label, web, fts_query in asked:
            examples.setdefault(label, web)
            for round_ in range(rounds + 1):
                started = time.perf_counter()
                cur.execute("SELECT kind, rank, snippet FROM council_search(%s)", (web,))
                found = cur.fetchall()
                pg_seconds = time.perf_counter() - started
                started = time.perf_counter()
                matched = fts.execute(
                    "SELECT rowid, snippet(docs, 0, '<b>', '</b>', ' … ', 20) FROM docs "
                    "WHERE docs MATCH ? ORDER BY rank LIMIT 20", (fts_query,)).fetchall()
                fts_seconds = time.perf_counter() - started
                if round_ > 0:  # the first is the warm-up
                    timings[label][0].append(pg_seconds)
                    timings[label][1].append(fts_seconds)
            hits[label][0] += len(found)
            hits[label][1] += len(matched)
        items = prose.known_items(texts, rng, count=args.search_known_items)
        reciprocal_pg, reciprocal_fts = [], []
        for web, fts_query, key in items:
            cur.execute("SELECT kind, coalesce(row_id::text, conversation_id::text) FROM council_search(%s)", (web,))
            ranked = [tuple(r) for r in cur.fetchall()]
            reciprocal_pg.append(1 / (ranked.index(key) + 1) if key in ranked else 0)
            ranked = [(k, str(v)) for k, v in fts.execute(
                "SELECT kind, key FROM docs WHERE docs MATCH ? ORDER BY rank LIMIT 20", (fts_query,))]
            reciprocal_fts.append(1 / (ranked.index(key) + 1) if key in ranked else 0)
    fts.close()
    conn.close()
    writes_on, writes_off = app_writes(args, url, name, args.search_write_seconds)
    drop_database(url, name)

    rows = []
    every_pg, every_fts = [], []
    for label in QUERY_CLASSES:
        pg, lite = timings[label]
        if not pg:
            continue
        every_pg += pg
        every_fts += lite
        rows.append((label, examples[label], tuple(hits[label]), percentile(pg, 0.5), percentile(pg, 0.95),
                     percentile(lite, 0.5), percentile(lite, 0.95)))
        print(f"  search {label}: p95 {percentile(pg, 0.95) * 1000:.1f} ms, "
              f"FTS5 {percentile(lite, 0.95) * 1000:.1f} ms", file=sys.stderr)
    mrr = statistics.mean(reciprocal_pg) if reciprocal_pg else 0.0
    fts_mrr = statistics.mean(reciprocal_fts) if reciprocal_fts else 0.0
    print(f"  search MRR {mrr:.2f}, FTS5 {fts_mrr:.2f}; app writes {writes_on:,.0f} tps on, "
          f"{writes_off:,.0f} tps off", file=sys.stderr)
    return {
        "conversations": conversations, "paragraphs": paragraphs, "documents": documents, "runs": args.runs,
        "table_bytes": table_bytes, "postings_bytes": postings_bytes, "index_bytes": index_bytes,
        "imported": imported, "imported_off": imported_off, "fts_built": fts_built, "fts_bytes": fts_bytes,
        "rows": rows, "rounds": rounds, "queries": len(asked), "known_items": len(items),
        "mrr": mrr, "fts_mrr": fts_mrr, "writes_on": writes_on, "writes_off": writes_off,
        "p95": percentile(every_pg, 0.95), "fts_p95": percentile(every_fts, 0.95),
        "p50": percentile(every_pg, 0.5), "fts_p50": percentile(every_fts, 0.5),
    }


def search_report(out, args, search):
    config = args.search_config or "council_english"
    out(f"Search on real prose, {search['conversations']:,} conversations, `llm_council.search_config = "
        f"'{config}'`: the sample's layout and rows with "
        f"every title, user message and stage 1 and 3 response replaced by paragraphs of the documentation "
        f"this machine carries (manual pages in every installed language, rendered by man(1), and the text "
        f"under /usr/share/doc: {search['paragraphs']:,} distinct paragraphs; `bench/prose.py`). "
        f"`council_search(query)` (top 20, ranked, with snippets and titles) against SQLite FTS5 over the same "
        f"text (`porter unicode61`, `ORDER BY rank LIMIT 20` with `snippet()`). {search['queries']} queries "
        f"drawn from the text, {search['rounds']} timed runs of each after a warm-up; PostgreSQL's times "
        f"include the round trip to the server:")
    out("")
    out("| class | e.g. | hits (PG, FTS5) | p50 | p95 | FTS5 p50 | FTS5 p95 | p95 × FTS5 |")
    out("|---|---|---|---|---|---|---|---|")
    for label, query, found, p50, p95, fts50, fts95 in search["rows"]:
        out(f"| {label} | `{query}` | {found[0]}, {found[1]} | {p50 * 1000:.1f} ms | {p95 * 1000:.1f} ms | "
            f"{fts50 * 1000:.1f} ms | {fts95 * 1000:.1f} ms | {p95 / fts95:.2f} |")
    out(f"| all | | | {search['p50'] * 1000:.1f} ms | {search['p95'] * 1000:.1f} ms | "
        f"{search['fts_p50'] * 1000:.1f} ms | {search['fts_p95'] * 1000:.1f} ms | "
        f"**{search['p95'] / search['fts_p95']:.2f}** |")
    out("")
    out(f"Ranking, known items: for {search['known_items']} stage 1 responses, the query is its three rarest "
        f"words; the score is where that response ranks in the top 20. Mean reciprocal rank: council_search "
        f"**{search['mrr']:.2f}**, FTS5 bm25 **{search['fts_mrr']:.2f}**.")
    out("")
    increment = search['imported'] - search['imported_off']
    out(f"Building the documents (the median of {search['runs']} runs each, the imports alternating "
        f"with search on and off, each into a fresh database): the import with search on "
        f"{search['imported']:.1f} s, with "
        f"`llm_council.search = off` {search['imported_off']:.1f} s: on − off = {increment:.1f} s, "
        f"{increment / search['fts_built']:.2f}× FTS5's build of its index over the same text "
        f"({search['fts_built']:.1f} s, {search['fts_bytes'] / 1e6:,.0f} MB); on ÷ off = "
        f"{search['imported'] / search['imported_off']:.2f}. The index: {search['documents']:,} documents, "
        f"{search['table_bytes'] / 1e6:,.0f} MB of tsvectors (their indexes {search['index_bytes'] / 1e6:,.0f} MB), "
        f"postings {search['postings_bytes'] / 1e6:,.0f} MB.")
    out("")
    out(f"The app's writes: its add-assistant-message transaction (the message, three stage 1 responses of "
        f"the file's prose, three rankings, the synthesis, the metadata, the conversation's count), "
        f"`pgbench -M prepared -c 8 -j 2 -T {args.search_write_seconds}`, best of two runs each: search on "
        f"{search['writes_on']:,.0f} tps, off {search['writes_off']:,.0f} tps: with search on a transaction "
        f"costs **{search['writes_off'] / search['writes_on']:.2f}×** what it costs with search off.")


def data_move(args, fixture, total, columns, search):
    """council_import, COPY and the floor into databases with search on or off."""
    return [
        measure("council_import", args.runs, fixture, total,
                lambda n: run_council_import(args, args.url, fixture, n, search=search)),
        measure("copy", args.runs, fixture, total,
                lambda n: run_copy(args, args.url, fixture, n, columns, search=search)),
        measure("floor", args.runs, fixture, total,
                lambda n: run_floor(args, args.url, fixture, n, columns, search=search)),
    ]


def data_move_report(out, on, off):
    out("The data move alone: the same file into databases with `llm_council.search = off` "
        "(no search documents), median of the same runs:")
    out("")
    out("| contender | seconds | × COPY | × floor | search on ÷ off | rows equal the source |")
    out("|---|---|---|---|---|---|")
    by_off = {r["contender"]: r for r in off}
    by_on = {r["contender"]: r for r in on}
    for r in off:
        out(f"| {r['contender']} | {r['seconds']:.2f} | {r['seconds'] / by_off['copy']['seconds']:.2f} | "
            f"{r['seconds'] / by_off['floor']['seconds']:.2f} | "
            f"{by_on[r['contender']]['seconds'] / r['seconds']:.2f} | {'yes' if r['equal'] else 'no'} |")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--loader", required=True)
    parser.add_argument("--work", required=True)
    parser.add_argument("--seed", required=True, help="directory of the seed procedure")
    parser.add_argument("--python", default="/usr/bin/python3")
    parser.add_argument("--conversations", type=int, default=3000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--scale", default="300,3000,30000")
    parser.add_argument("--memory", default="3000,18000")
    parser.add_argument("--catch-up", default="3000,30000")
    parser.add_argument("--search", type=int, default=30000, help="conversations of the search benchmark")
    parser.add_argument("--search-rounds", type=int, default=5)
    parser.add_argument("--search-queries", type=int, default=10, help="queries per class")
    parser.add_argument("--search-config", help="llm_council.search_config of the benchmark's databases")
    parser.add_argument("--search-known-items", type=int, default=100)
    parser.add_argument("--corpus-cache", default=os.environ.get("LLM_COUNCIL_CACHE", "/var/cache/llm_council"),
                        help="where the prose corpus is built once per machine")
    parser.add_argument("--search-write-seconds", type=int, default=20)
    parser.add_argument("--cache-seconds", type=int, default=20)
    parser.add_argument("--cache-rounds", type=int, default=2)
    parser.add_argument("--cache-entries", type=int, default=100_000)
    parser.add_argument("--output", help="write the markdown report here")
    parser.add_argument("--only-search", action="store_true",
                        help="run the search benchmark alone and print its report")
    parser.add_argument("--only-data-move", action="store_true",
                        help="council_import, COPY and the floor with search on and off, and print their report")
    args = parser.parse_args()
    global SEARCH_CONFIG
    SEARCH_CONFIG = args.search_config

    def fixture_of(conversations):
        path = os.path.join(args.work, f"council-{conversations}.db")
        if not os.path.exists(path):
            loader(args, "sample", path, "--conversations", str(conversations))
            os.chmod(path, 0o644)
        return path

    # The one setting a DBA changes for a bulk load, for every contender:
    # with the default 1 GB, a load past it triggers checkpoints midway, and
    # the full-page writes after them make the cost grow faster than the rows.
    admin = connect(args.url, "postgres")
    with admin.cursor() as cur:
        cur.execute("ALTER SYSTEM SET max_wal_size = '8GB'")
        cur.execute("SELECT pg_reload_conf()")
    admin.close()

    if args.only_search:
        lines = []
        search_report(lines.append, args, search_benchmark(args, args.url, args.search, fixture_of))
        print("\n".join(lines))
        return

    fixture = fixture_of(args.conversations)
    rows_by_table = source_rows(fixture)
    total = sum(rows_by_table.values())
    size = os.path.getsize(fixture)
    print(f"fixture: {args.conversations} conversations, {total} rows, {size / 1e6:.0f} MB", file=sys.stderr)

    columns = prepare_copy_files(args, args.url, fixture)
    if args.only_data_move:
        lines = []
        data_move_report(lines.append, data_move(args, fixture, total, columns, search=True),
                         data_move(args, fixture, total, columns, search=False))
        print("\n".join(lines))
        return
    cleaned = cleaned_copy(args, fixture)
    results = [
        measure("council_import", args.runs, fixture, total, lambda n: run_council_import(args, args.url, fixture, n)),
        measure("copy", args.runs, fixture, total, lambda n: run_copy(args, args.url, fixture, n, columns)),
        measure("floor", args.runs, fixture, total, lambda n: run_floor(args, args.url, fixture, n, columns)),
        measure("pgloader", args.runs, fixture, total, lambda n: run_pgloader(args, args.url, cleaned, n)),
        measure("seed procedure", min(args.runs, 1) if args.conversations > 1000 else args.runs, fixture, total,
                lambda n: run_seed(args, args.url, cleaned, n)),
    ]
    by = {r["contender"]: r for r in results}
    # The data move alone: the same three with llm_council.search = off.
    unsearched = data_move(args, fixture, total, columns, search=False)
    off = {r["contender"]: r for r in unsearched}

    scale = []
    for conversations in [int(c) for c in args.scale.split(",") if c]:
        path = fixture_of(conversations)
        times = []
        for n in range(args.runs):
            elapsed, rows, conn = run_council_import(args, args.url, path, f"scale_{conversations}")
            conn.close()
            times.append(elapsed)
        elapsed = statistics.median(times)
        scale.append((conversations, rows, elapsed))
        print(f"  scale {conversations}: {elapsed:.2f} s (median of {args.runs}), {rows} rows", file=sys.stderr)

    memory = []
    for conversations in [int(c) for c in args.memory.split(",") if c]:
        path = fixture_of(conversations)
        private, hwm, rows = peak_memory(args.url, path, f"bench_memory_{conversations}")
        memory.append((conversations, os.path.getsize(path), rows, private, hwm))
        print(f"  memory {conversations}: {private:.0f} MB private, {hwm:.0f} MB VmHWM", file=sys.stderr)

    uploads = upload_benchmark(args, args.url, [int(c) for c in args.memory.split(",") if c], fixture_of)

    catch_up = catch_up_benchmark(args, args.url, [int(c) for c in args.catch_up.split(",") if c], fixture_of)
    import_sql = "SELECT sum(imported) FROM council_import(%s)"
    catch_up_memory = []
    for conversations in [int(c) for c in args.memory.split(",") if c][-1:]:
        path = fixture_of(conversations)
        first = (import_sql, path)
        again = peak_during(args.url, "bench_memory_again",
                            [first, ("SELECT sum(skipped) FROM council_import(%s)", path)])
        verify = peak_during(args.url, "bench_memory_verify",
                             [first, ("SELECT sum(identical) FROM council_verify(%s)", path)])
        sync = peak_during(args.url, "bench_memory_sync",
                           [first, ("SELECT sum(updated) FROM council_import(%s, 'sync')", changed_copy(args, path))])
        catch_up_memory.append((conversations, os.path.getsize(path), again, verify, sync))
        print(f"  catch-up memory {conversations}: again {again:.0f} MB, verify {verify:.0f} MB, sync {sync:.0f} MB",
              file=sys.stderr)

    export = export_benchmark(args, args.url, fixture)
    export_memory = []
    for conversations in [int(c) for c in args.memory.split(",") if c][-1:]:
        path = fixture_of(conversations)
        out = os.path.join(args.work, "exported-memory.db")
        if os.path.exists(out):
            os.remove(out)
        private = peak_during(args.url, "bench_memory_export",
                              [(import_sql, path), ("SELECT sum(rows) FROM council_export(%s)", out)])
        os.remove(out)
        export_memory.append((conversations, os.path.getsize(path), private))
        print(f"  export memory {conversations}: {private:.0f} MB", file=sys.stderr)

    search = search_benchmark(args, args.url, args.search, fixture_of)

    get_tps, update_tps, hits, gets = cache_benchmark(args, args.url)
    unbounded_tps, bounded_tps, entries, counted = cache_put_benchmark(args, args.url)
    print(f"  cache put: {unbounded_tps:,.0f} tps unbounded, {bounded_tps:,.0f} tps bounded "
          f"({unbounded_tps / bounded_tps:.2f}× the time)", file=sys.stderr)

    lines = []
    out = lines.append
    out(f"Fixture: `council-loader sample --conversations {args.conversations}`: {total:,} rows, {size / 1e6:.0f} MB. "
        f"Median of {args.runs} runs, each into a fresh database, one transaction.")
    out("")
    out("| contender | seconds | rows | rows/s | × COPY | × floor | × council_import | rows equal the source |")
    out("|---|---|---|---|---|---|---|---|")
    for r in results:
        note = ""
        if r["contender"] in ("pgloader", "seed procedure"):
            note = " (copy with '' timestamps replaced)"
        if r["contender"] == "seed procedure":
            note += "; never copies api_key_audit_log"
            if r["rows"] < total:
                note += f"; stopped at its first error after {r['rows']:,} rows"
        out(
            f"| {r['contender']}{note} | {r['seconds']:.2f} | {r['rows']:,} | {r['rows'] / r['seconds']:,.0f} | "
            f"{r['seconds'] / by['copy']['seconds']:.2f} | {r['seconds'] / by['floor']['seconds']:.2f} | "
            f"{r['seconds'] / by['council_import']['seconds']:.2f} | {'yes' if r['equal'] else 'no'} |"
        )
    out("")
    data_move_report(out, results, unsearched)
    out("")
    out(f"Cost against size (council_import, median of {args.runs}):")
    out("")
    out("| conversations | rows | seconds | rows/s | × time of the smallest | × rows of the smallest |")
    out("|---|---|---|---|---|---|")
    for conversations, rows, elapsed in scale:
        out(f"| {conversations:,} | {rows:,} | {elapsed:.2f} | {rows / elapsed:,.0f} | {elapsed / scale[0][2]:.1f} | {rows / scale[0][1]:.1f} |")
    out("")
    out("Memory of the importing backend: its peak private memory (RssAnon, sampled every 10 ms) and VmHWM, "
        "which also counts the shared buffers it touched (shared_buffers is 128 MB here):")
    out("")
    out("| conversations | file | rows | peak private | VmHWM |")
    out("|---|---|---|---|---|")
    for conversations, file_size, rows, private, hwm in memory:
        out(f"| {conversations:,} | {file_size / 1e6:,.0f} MB | {rows:,} | {private:.0f} MB | {hwm:.0f} MB |")
    out("")
    out("From another host: `council-loader import` by server path (the server reads the file) and by "
        f"streamed upload (`--upload`), on the same file, median of {max(args.runs, 5)}; the importing backend's "
        "peak private memory (RssAnon):")
    out("")
    out("| conversations | file | server path | upload | upload × path | backend private, path | backend private, upload |")
    out("|---|---|---|---|---|---|---|")
    for conversations, file_size, by_path, by_upload, memory_path, memory_upload in uploads:
        out(f"| {conversations:,} | {file_size / 1e6:,.0f} MB | {by_path:.2f} s | {by_upload:.2f} s | "
            f"{by_upload / by_path:.2f} | {memory_path:.0f} MB | {memory_upload:.0f} MB |")
    out("")
    out("The cutover's catch-up, against a fresh import of the same file (median of "
        f"{args.runs}, each on a fresh database): the same file imported again (every row skipped), "
        "`council_verify`, and `council_import(…, 'sync')` after the app changed 1% of every table's rows, "
        "added 1% and deleted 0.1% of the conversations with their rows. Between the first import and the "
        "catch-up the database gets the `VACUUM (ANALYZE)` of the README's runbook (step 2), which "
        "autovacuum would also run minutes after an import this size; a CHECKPOINT precedes each step:")
    out("")
    out("| conversations | fresh import | again | × fresh | verify | × fresh | sync | × fresh | sync: imported, updated, deleted |")
    out("|---|---|---|---|---|---|---|---|---|")
    for conversations, m, plan in catch_up:
        imported, updated, deleted, _ = plan
        out(f"| {conversations:,} | {m['fresh']:.2f} s | {m['again']:.2f} s | {m['again'] / m['fresh']:.2f} | "
            f"{m['verify']:.2f} s | {m['verify'] / m['fresh']:.2f} | {m['sync']:.2f} s | {m['sync'] / m['fresh']:.2f} | "
            f"{imported:,}, {updated:,}, {deleted:,} |")
    out("")
    out("Backend private memory (RssAnon peak) of each catch-up step on the largest file:")
    out("")
    out("| conversations | file | again | verify | sync |")
    out("|---|---|---|---|---|")
    for conversations, file_size, again, verify, sync in catch_up_memory:
        out(f"| {conversations:,} | {file_size / 1e6:,.0f} MB | {again:.0f} MB | {verify:.0f} MB | {sync:.0f} MB |")
    out("")
    imported, by_path, by_stream, exported, identical = export
    out("The way back: `council_export` writes the database into a new council.db, after a fresh import of the "
        f"fixture (median of {args.runs}); `council-loader export` streams the same file to this host:")
    out("")
    out("| | seconds | × the fresh import | rows | the exported rows, verified |")
    out("|---|---|---|---|---|")
    out(f"| fresh `council_import` | {imported:.2f} | 1.00 | {exported:,} | |")
    out(f"| `council_export(path)` | {by_path:.2f} | {by_path / imported:.2f} | {exported:,} | "
        f"{'identical' if identical else 'NOT identical'} |")
    out(f"| `council-loader export` | {by_stream:.2f} | {by_stream / imported:.2f} | {exported:,} | |")
    out("| the sqlite_fdw route | not measured | | | |")
    out("")
    out("sqlite_fdw is not a Debian package, and its source cannot be fetched from this machine, so its route "
        "(eight hand-written `INSERT … SELECT` into an empty file of the app's schema) is not measured here.")
    out("")
    out("Backend private memory (RssAnon peak) of `council_export` on the largest file:")
    out("")
    out("| conversations | file | export |")
    out("|---|---|---|")
    for conversations, file_size, private in export_memory:
        out(f"| {conversations:,} | {file_size / 1e6:,.0f} MB | {private:.0f} MB |")
    out("")
    search_report(out, args, search)
    out("")
    out(f"Cache, `pgbench -M prepared -c 8 -j 2 -T {args.cache_seconds}` on 100 hot keys: "
        f"`council_cache_get` {get_tps:,.0f} tps, the hand-written `UPDATE … RETURNING` {update_tps:,.0f} tps: "
        f"{get_tps / update_tps:.2f}×; hit_count sum {hits:,} for {gets:,} gets and updates "
        f"({'exact' if hits == gets else 'NOT exact'}).")
    out("")
    out(f"Cache puts of new keys into {args.cache_entries:,} entries, same pgbench: unbounded {unbounded_tps:,.0f} tps, "
        f"with `llm_council.cache_max_entries = {args.cache_entries}` {bounded_tps:,.0f} tps: a bounded put takes "
        f"{unbounded_tps / bounded_tps:.2f}× the time of an unbounded one; after the last run "
        f"{entries:,} entries, counted {counted:,}.")
    report = "\n".join(lines)
    print(report)
    if args.output:
        machine = f"{os.cpu_count()} cores, {platform.platform()}"
        with connect(args.url, "postgres") as conn, conn.cursor() as cur:
            cur.execute("SELECT version()")
            version = cur.fetchone()[0]
        with open(args.output, "w") as f:
            f.write("# Benchmarks\n\n")
            f.write("Written by `bench/run`; do not edit by hand, run it again.\n\n")
            f.write(f"- when: {datetime.date.today().isoformat()}\n- machine: {machine}\n- server: {version}\n")
            f.write("- settings: defaults, but max_wal_size = 8GB (for every contender)\n")
            f.write(f"- command: `bench/run --conversations {args.conversations}`\n\n")
            f.write(report + "\n")


if __name__ == "__main__":
    main()

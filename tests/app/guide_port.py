"""The app's own statements on PostgreSQL with only the migration guide's
change (`?` becomes `%s`, cursors from its RealDictCursor `get_cursor`):
one probe per change that docs/porting-the-app.md lists, each reporting
what happens, so the test proves every change is needed.
"""

import json
from pathlib import Path

import psycopg2
from psycopg2.extras import RealDictCursor

SCHEMA = (Path(__file__).resolve().parents[2] / "app" / "schema.sql").read_text()
CONVERSATION = "1d0c0000-0000-4000-8000-00000000f00d"


def outcome(probe):
    """What a probe did: the error it raised (with its SQLSTATE when the
    server raised it), or the value it returned."""
    try:
        return {"value": probe()}
    except psycopg2.Error as err:
        return {"error": type(err).__name__, "sqlstate": err.pgcode}
    except Exception as err:  # the app's own code failing on what it got back
        return {"error": type(err).__name__}


def run(dsn):
    conn = psycopg2.connect(dsn)
    with conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO conversations (id, title) VALUES (%s, 'probe');"
            "INSERT INTO messages (conversation_id, role, created_at) VALUES (%s, 'assistant', now());"
            "INSERT INTO stage2_rankings (message_id, evaluator_model, raw_ranking, parsed_ranking) "
            "SELECT max(id), 'm', 'r', '[\"Response A\"]' FROM messages",
            (CONVERSATION, CONVERSATION),
        )

    def probe(body):
        """Runs body(cursor) in a transaction that is always rolled back."""
        def run_it():
            with conn.cursor(cursor_factory=RealDictCursor) as cur:
                try:
                    return body(cur)
                finally:
                    conn.rollback()
        return outcome(run_it)

    def lastrowid(cur):
        cur.execute("INSERT INTO messages (conversation_id, role, content, created_at) "
                    "VALUES (%s, 'user', 'hi', now())", (CONVERSATION,))
        given = cur.lastrowid
        cur.execute("SELECT max(id) AS id FROM messages")
        return {"lastrowid": given, "new id": cur.fetchone()["id"]}

    def select_rowcount(cur):
        cur.execute("SELECT council_cache_invalidate(%s)", ("no such key",))
        return cur.rowcount

    def first_column(cur):
        cur.execute("SELECT count(*) FROM conversations")
        return cur.fetchone()[0]

    def json_loads(cur):
        cur.execute("SELECT parsed_ranking FROM stage2_rankings")
        return json.loads(cur.fetchone()["parsed_ranking"])

    def times(cur):
        cur.execute("SELECT id, created_at FROM conversations WHERE id = %s", (CONVERSATION,))
        return json.dumps(dict(cur.fetchone()))

    def execute_on_connection(cur):
        return conn.execute("SELECT 1")

    probes = {
        "boolean comparison": lambda cur: cur.execute(
            "SELECT * FROM conversations WHERE is_hidden = 0 ORDER BY is_pinned DESC, updated_at DESC"),
        "boolean write": lambda cur: cur.execute(
            "UPDATE conversations SET is_pinned = %s WHERE id = %s", (1, CONVERSATION)),
        "lastrowid": lastrowid,
        "rowcount of a cache call": select_rowcount,
        "execute on the connection": execute_on_connection,
        "row by position": first_column,
        "json.loads on jsonb": json_loads,
        "timestamptz as text": times,
        "a non-UUID id": lambda cur: cur.execute(
            "SELECT * FROM conversations WHERE id = %s", ("import-2025-0042",)),
        "schema.sql at start": lambda cur: cur.execute(SCHEMA),
    }
    results = [[name, probe(body)] for name, body in probes.items()]
    with conn, conn.cursor() as cur:
        cur.execute("DELETE FROM conversations WHERE id = %s", (CONVERSATION,))
    conn.close()
    return results

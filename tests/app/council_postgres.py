"""The LLM Council app's storage ported to the llm_council extension.

Every difference from council_sqlite.py is one of the changes that
docs/porting-the-app.md lists, under the same names:
booleans, lastrowid, rowcount, rows, JSON, times, ids, the schema, the cache.
"""

import hashlib
import uuid
from contextlib import contextmanager
from datetime import datetime, timezone

import psycopg2
from psycopg2.extras import Json, RealDictCursor


def utc_now():
    return datetime.now(timezone.utc)


class Storage:
    def __init__(self, dsn, now=utc_now):
        self.now = now
        # The schema: the extension's, created once by the DBA. The app only
        # checks that it is there, and runs no schema.sql.
        self.conn = psycopg2.connect(dsn)
        with self.cursor() as cur:
            cur.execute("SELECT extversion FROM pg_extension WHERE extname = 'llm_council'")
            if cur.fetchone() is None:
                raise RuntimeError("the llm_council extension is not installed in this database")

    def close(self):
        self.conn.close()

    @contextmanager
    def cursor(self):
        """One transaction: committed when the block ends, rolled back when
        it raises. Reads end theirs too, so no session stays idle in one."""
        with self.conn:
            with self.conn.cursor(cursor_factory=RealDictCursor) as cur:
                yield cur

    # conversations

    def create_conversation(self, conversation_id, title="New Conversation"):
        now = self.now()
        with self.cursor() as cur:
            cur.execute(
                "INSERT INTO conversations (id, title, created_at, updated_at, is_pinned, is_hidden, message_count) "
                "VALUES (%s, %s, %s, %s, false, false, 0)",
                (conversation_id, title, now, now),
            )
        return self.get_conversation_summary(conversation_id)

    def get_conversation_summary(self, conversation_id):
        with self.cursor() as cur:
            column, value = conversation_key(conversation_id)
            cur.execute(f"SELECT * FROM conversations WHERE {column} = %s", (value,))
            row = cur.fetchone()
        return None if row is None else conversation_of(row)

    def list_conversations(self):
        with self.cursor() as cur:
            cur.execute(
                "SELECT * FROM conversations WHERE NOT is_hidden "
                "ORDER BY is_pinned DESC, updated_at DESC"
            )
            return [conversation_of(row) for row in cur.fetchall()]

    def rename_conversation(self, conversation_id, title):
        column, value = conversation_key(conversation_id)
        with self.cursor() as cur:
            cur.execute(
                f"UPDATE conversations SET title = %s, updated_at = %s WHERE {column} = %s",
                (title, self.now(), value),
            )
            return cur.rowcount > 0

    def set_pinned(self, conversation_id, pinned):
        column, value = conversation_key(conversation_id)
        with self.cursor() as cur:
            cur.execute(f"UPDATE conversations SET is_pinned = %s WHERE {column} = %s", (bool(pinned), value))
            return cur.rowcount > 0

    def set_hidden(self, conversation_id, hidden):
        column, value = conversation_key(conversation_id)
        with self.cursor() as cur:
            cur.execute(f"UPDATE conversations SET is_hidden = %s WHERE {column} = %s", (bool(hidden), value))
            return cur.rowcount > 0

    def delete_conversation(self, conversation_id):
        column, value = conversation_key(conversation_id)
        with self.cursor() as cur:
            cur.execute(f"DELETE FROM conversations WHERE {column} = %s", (value,))
            return cur.rowcount > 0

    # messages

    def add_user_message(self, conversation_id, content):
        now = self.now()
        with self.cursor() as cur:
            cur.execute(
                "INSERT INTO messages (conversation_id, role, content, created_at) "
                "VALUES (%s, 'user', %s, %s) RETURNING id",
                (conversation_id, content, now),
            )
            message_id = cur.fetchone()["id"]
            self._touch(cur, conversation_id, now)
        return message_id

    def add_assistant_message(self, conversation_id, stage1, stage2, stage3, metadata):
        now = self.now()
        with self.cursor() as cur:
            cur.execute(
                "INSERT INTO messages (conversation_id, role, content, created_at) "
                "VALUES (%s, 'assistant', NULL, %s) RETURNING id",
                (conversation_id, now),
            )
            message_id = cur.fetchone()["id"]
            for r in stage1:
                cur.execute(
                    "INSERT INTO stage1_responses (message_id, model, response, confidence, base_model, sample_id, created_at) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s)",
                    (message_id, r["model"], r["response"], r.get("confidence"),
                     r.get("base_model"), r.get("sample_id"), now),
                )
            for r in stage2:
                cur.execute(
                    "INSERT INTO stage2_rankings (message_id, evaluator_model, raw_ranking, parsed_ranking, debate_round, rubric_scores, created_at) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s)",
                    (message_id, r["model"], r["ranking"], Json(r["parsed_ranking"]),
                     r.get("debate_round", 1), json_or_none(r.get("rubric_scores")), now),
                )
            cur.execute(
                "INSERT INTO stage3_synthesis (message_id, chairman_model, response, meta_evaluation, created_at) "
                "VALUES (%s, %s, %s, %s, %s)",
                (message_id, stage3["model"], stage3["response"], stage3.get("meta_evaluation"), now),
            )
            cur.execute(
                "INSERT INTO deliberation_metadata (message_id, label_to_model, aggregate_rankings, consensus, "
                "voting_method, features, stage1_consensus, debate_history, created_at) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (message_id, Json(metadata["label_to_model"]),
                 json_or_none(metadata.get("aggregate_rankings")), json_or_none(metadata.get("consensus")),
                 metadata.get("voting_method"), json_or_none(metadata.get("features")),
                 json_or_none(metadata.get("stage1_consensus")), json_or_none(metadata.get("debate_history")),
                 now),
            )
            self._touch(cur, conversation_id, now)
        return message_id

    def _touch(self, cur, conversation_id, now):
        column, value = conversation_key(conversation_id)
        cur.execute(
            f"UPDATE conversations SET message_count = message_count + 1, updated_at = %s WHERE {column} = %s",
            (now, value),
        )

    def get_conversation(self, conversation_id):
        conversation = self.get_conversation_summary(conversation_id)
        if conversation is None:
            return None
        with self.cursor() as cur:
            cur.execute("SELECT * FROM messages WHERE conversation_id = %s ORDER BY id", (conversation["id"],))
            rows = cur.fetchall()
            messages = []
            for m in rows:
                if m["role"] == "user":
                    messages.append({"id": m["id"], "role": "user", "content": m["content"],
                                     "created_at": iso(m["created_at"])})
                else:
                    messages.append(self._assistant_message(cur, m))
        conversation["messages"] = messages
        return conversation

    def _assistant_message(self, cur, m):
        cur.execute("SELECT * FROM stage1_responses WHERE message_id = %s ORDER BY id", (m["id"],))
        stage1 = [
            {"id": r["id"], "model": r["model"], "response": r["response"], "confidence": r["confidence"],
             "base_model": r["base_model"], "sample_id": r["sample_id"], "created_at": iso(r["created_at"])}
            for r in cur.fetchall()
        ]
        cur.execute("SELECT * FROM stage2_rankings WHERE message_id = %s ORDER BY id", (m["id"],))
        stage2 = [
            # jsonb arrives decoded: no json.loads.
            {"id": r["id"], "model": r["evaluator_model"], "ranking": r["raw_ranking"],
             "parsed_ranking": r["parsed_ranking"] or [],
             "debate_round": r["debate_round"],
             "rubric_scores": r["rubric_scores"],
             "created_at": iso(r["created_at"])}
            for r in cur.fetchall()
        ]
        cur.execute("SELECT * FROM stage3_synthesis WHERE message_id = %s", (m["id"],))
        s3 = cur.fetchone()
        stage3 = None if s3 is None else {
            "model": s3["chairman_model"], "response": s3["response"],
            "meta_evaluation": s3["meta_evaluation"], "created_at": iso(s3["created_at"])}
        cur.execute("SELECT * FROM deliberation_metadata WHERE message_id = %s", (m["id"],))
        md = cur.fetchone()
        metadata = None if md is None else {
            "label_to_model": md["label_to_model"],
            "aggregate_rankings": md["aggregate_rankings"],
            "consensus": md["consensus"],
            "voting_method": md["voting_method"],
            "features": md["features"],
            "stage1_consensus": md["stage1_consensus"],
            "debate_history": md["debate_history"],
            "created_at": iso(md["created_at"])}
        return {"id": m["id"], "role": "assistant", "created_at": iso(m["created_at"]),
                "stage1": stage1, "stage2": stage2, "stage3": stage3, "metadata": metadata}

    # API keys

    def create_api_key(self, name, key_hash, key_prefix, permissions=None, expires_at=None,
                       rate_limit_override=None, metadata=None):
        with self.cursor() as cur:
            cur.execute(
                "INSERT INTO api_keys (key_hash, key_prefix, name, created_at, expires_at, is_active, "
                "rate_limit_override, permissions, metadata) VALUES (%s, %s, %s, %s, %s, true, %s, %s, %s) "
                "RETURNING id",
                (key_hash, key_prefix, name, self.now(), expires_at, rate_limit_override,
                 Json(permissions or ["read", "write", "stream"]), json_or_none(metadata)),
            )
            return cur.fetchone()["id"]

    def find_api_key(self, key_prefix):
        with self.cursor() as cur:
            cur.execute("SELECT * FROM api_keys WHERE key_prefix = %s AND is_active", (key_prefix,))
            row = cur.fetchone()
        return None if row is None else api_key_of(row)

    def list_api_keys(self, active_only):
        sql = "SELECT * FROM api_keys" + (" WHERE is_active" if active_only else "") + " ORDER BY id"
        with self.cursor() as cur:
            cur.execute(sql)
            return [api_key_of(row) for row in cur.fetchall()]

    def record_use(self, api_key_id):
        with self.cursor() as cur:
            cur.execute("UPDATE api_keys SET last_used_at = %s WHERE id = %s", (self.now(), api_key_id))
            return cur.rowcount > 0

    def revoke_api_key(self, api_key_id):
        with self.cursor() as cur:
            cur.execute("UPDATE api_keys SET is_active = false WHERE id = %s AND is_active", (api_key_id,))
            return cur.rowcount > 0

    def log_api_key_event(self, api_key_id, action, endpoint, ip_address, user_agent, request_id):
        with self.cursor() as cur:
            cur.execute(
                "INSERT INTO api_key_audit_log (api_key_id, action, endpoint, ip_address, user_agent, "
                "request_id, created_at) VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id",
                (api_key_id, action, endpoint, ip_address, user_agent, request_id, self.now()),
            )
            return cur.fetchone()["id"]

    def audit_log(self, api_key_id):
        with self.cursor() as cur:
            cur.execute("SELECT * FROM api_key_audit_log WHERE api_key_id = %s ORDER BY id", (api_key_id,))
            return [dict(row, created_at=iso(row["created_at"])) for row in cur.fetchall()]


def conversation_key(conversation_id):
    """Where a conversation id is found: a UUID (in any case) is `id`; any
    other text the app once accepted was imported into `legacy_id`."""
    try:
        return "id", str(uuid.UUID(conversation_id))
    except ValueError:
        return "legacy_id", conversation_id


def iso(value):
    """A timestamptz as the app wrote its times: isoformat text in UTC."""
    return None if value is None else value.astimezone(timezone.utc).isoformat()


def conversation_of(row):
    return {"id": row["id"], "title": row["title"], "created_at": iso(row["created_at"]),
            "updated_at": iso(row["updated_at"]), "is_pinned": row["is_pinned"],
            "is_hidden": row["is_hidden"], "message_count": row["message_count"]}


def api_key_of(row):
    return {"id": row["id"], "key_hash": row["key_hash"], "key_prefix": row["key_prefix"],
            "name": row["name"], "created_at": iso(row["created_at"]),
            "last_used_at": iso(row["last_used_at"]), "expires_at": iso(row["expires_at"]),
            "is_active": row["is_active"], "rate_limit_override": row["rate_limit_override"],
            "permissions": row["permissions"] or [], "metadata": row["metadata"]}


def json_or_none(value):
    return None if value is None else Json(value)


class ResponseCache:
    """The app's cache, kept in the database: shared by every app process,
    kept across restarts, expired by the extension's worker."""

    def __init__(self, storage, ttl=3600):
        self.storage = storage
        self.ttl = ttl

    def _key(self, cur, query, models, voting_method, options):
        cur.execute("SELECT council_cache_key(%s, %s, %s, %s) AS key",
                    (query, list(models), voting_method, Json(options or {})))
        return cur.fetchone()["key"]

    def get(self, query, models, voting_method="borda", options=None):
        with self.storage.cursor() as cur:
            key = self._key(cur, query, models, voting_method, options)
            cur.execute("SELECT stage1_data, stage2_data, stage3_data, metadata FROM council_cache_get(%s)", (key,))
            row = cur.fetchone()
        if row is None:
            return None
        return {"stage1": row["stage1_data"], "stage2": row["stage2_data"],
                "stage3": row["stage3_data"], "metadata": row["metadata"]}

    def put(self, query, models, voting_method, options, result, ttl=None):
        ttl = self.ttl if ttl is None else ttl
        with self.storage.cursor() as cur:
            key = self._key(cur, query, models, voting_method, options)
            cur.execute(
                "SELECT cache_key FROM council_cache_put(%s, %s, %s, %s, %s, %s, make_interval(secs => %s))",
                (key, hashlib.sha256(query.encode()).hexdigest(), Json(result["stage1"]),
                 Json(result["stage2"]), Json(result["stage3"]), Json(result["metadata"]), ttl),
            )
            return cur.fetchone()["cache_key"]

    def invalidate(self, query, models, voting_method="borda", options=None):
        with self.storage.cursor() as cur:
            key = self._key(cur, query, models, voting_method, options)
            cur.execute("SELECT council_cache_invalidate(%s) AS removed", (key,))
            return cur.fetchone()["removed"]

"""The LLM Council app's storage as the app runs it on SQLite.

Its repositories' statements and conventions, as docs/porting-the-app.md
quotes them under "Before": `?` placeholders, `execute` on the connection,
`sqlite3.Row`, `cursor.lastrowid`, `cursor.rowcount`, 0/1 booleans,
`isoformat()` text for times, `json.dumps` / `json.loads` for JSON columns,
and `executescript(schema.sql)` at every start. The in-memory response
cache is the app's too.
"""

import hashlib
import json
import sqlite3
import time
from collections import OrderedDict
from datetime import datetime, timezone
from pathlib import Path

SCHEMA = (Path(__file__).resolve().parents[2] / "app" / "schema.sql").read_text()


def utc_now():
    return datetime.now(timezone.utc)


class Storage:
    def __init__(self, path, now=utc_now):
        self.now = now
        self.conn = sqlite3.connect(path)
        self.conn.row_factory = sqlite3.Row
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA foreign_keys=ON")
        self.conn.executescript(SCHEMA)

    def close(self):
        self.conn.close()

    # conversations

    def create_conversation(self, conversation_id, title="New Conversation"):
        now = self.now().isoformat()
        self.conn.execute(
            "INSERT INTO conversations (id, title, created_at, updated_at, is_pinned, is_hidden, message_count) "
            "VALUES (?, ?, ?, ?, 0, 0, 0)",
            (conversation_id, title, now, now),
        )
        self.conn.commit()
        return self.get_conversation_summary(conversation_id)

    def get_conversation_summary(self, conversation_id):
        row = self.conn.execute(
            "SELECT * FROM conversations WHERE id = ?", (conversation_id,)
        ).fetchone()
        return None if row is None else conversation_of(row)

    def list_conversations(self):
        rows = self.conn.execute(
            "SELECT * FROM conversations WHERE is_hidden = 0 "
            "ORDER BY is_pinned DESC, updated_at DESC"
        ).fetchall()
        return [conversation_of(row) for row in rows]

    def rename_conversation(self, conversation_id, title):
        cursor = self.conn.execute(
            "UPDATE conversations SET title = ?, updated_at = ? WHERE id = ?",
            (title, self.now().isoformat(), conversation_id),
        )
        self.conn.commit()
        return cursor.rowcount > 0

    def set_pinned(self, conversation_id, pinned):
        cursor = self.conn.execute(
            "UPDATE conversations SET is_pinned = ? WHERE id = ?",
            (1 if pinned else 0, conversation_id),
        )
        self.conn.commit()
        return cursor.rowcount > 0

    def set_hidden(self, conversation_id, hidden):
        cursor = self.conn.execute(
            "UPDATE conversations SET is_hidden = ? WHERE id = ?",
            (1 if hidden else 0, conversation_id),
        )
        self.conn.commit()
        return cursor.rowcount > 0

    def delete_conversation(self, conversation_id):
        cursor = self.conn.execute(
            "DELETE FROM conversations WHERE id = ?", (conversation_id,)
        )
        self.conn.commit()
        return cursor.rowcount > 0

    # messages

    def add_user_message(self, conversation_id, content):
        now = self.now().isoformat()
        cursor = self.conn.execute(
            "INSERT INTO messages (conversation_id, role, content, created_at) VALUES (?, 'user', ?, ?)",
            (conversation_id, content, now),
        )
        message_id = cursor.lastrowid
        self._touch(conversation_id, now)
        self.conn.commit()
        return message_id

    def add_assistant_message(self, conversation_id, stage1, stage2, stage3, metadata):
        now = self.now().isoformat()
        cursor = self.conn.execute(
            "INSERT INTO messages (conversation_id, role, content, created_at) VALUES (?, 'assistant', NULL, ?)",
            (conversation_id, now),
        )
        message_id = cursor.lastrowid
        for r in stage1:
            self.conn.execute(
                "INSERT INTO stage1_responses (message_id, model, response, confidence, base_model, sample_id, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (message_id, r["model"], r["response"], r.get("confidence"),
                 r.get("base_model"), r.get("sample_id"), now),
            )
        for r in stage2:
            self.conn.execute(
                "INSERT INTO stage2_rankings (message_id, evaluator_model, raw_ranking, parsed_ranking, debate_round, rubric_scores, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (message_id, r["model"], r["ranking"], json.dumps(r["parsed_ranking"]),
                 r.get("debate_round", 1), dumps_or_none(r.get("rubric_scores")), now),
            )
        self.conn.execute(
            "INSERT INTO stage3_synthesis (message_id, chairman_model, response, meta_evaluation, created_at) "
            "VALUES (?, ?, ?, ?, ?)",
            (message_id, stage3["model"], stage3["response"], stage3.get("meta_evaluation"), now),
        )
        self.conn.execute(
            "INSERT INTO deliberation_metadata (message_id, label_to_model, aggregate_rankings, consensus, "
            "voting_method, features, stage1_consensus, debate_history, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (message_id, json.dumps(metadata["label_to_model"]),
             dumps_or_none(metadata.get("aggregate_rankings")), dumps_or_none(metadata.get("consensus")),
             metadata.get("voting_method"), dumps_or_none(metadata.get("features")),
             dumps_or_none(metadata.get("stage1_consensus")), dumps_or_none(metadata.get("debate_history")),
             now),
        )
        self._touch(conversation_id, now)
        self.conn.commit()
        return message_id

    def _touch(self, conversation_id, now):
        self.conn.execute(
            "UPDATE conversations SET message_count = message_count + 1, updated_at = ? WHERE id = ?",
            (now, conversation_id),
        )

    def get_conversation(self, conversation_id):
        conversation = self.get_conversation_summary(conversation_id)
        if conversation is None:
            return None
        messages = []
        for m in self.conn.execute(
            "SELECT * FROM messages WHERE conversation_id = ? ORDER BY id", (conversation_id,)
        ).fetchall():
            if m["role"] == "user":
                messages.append({"id": m["id"], "role": "user", "content": m["content"],
                                 "created_at": m["created_at"]})
            else:
                messages.append(self._assistant_message(m))
        conversation["messages"] = messages
        return conversation

    def _assistant_message(self, m):
        stage1 = [
            {"id": r["id"], "model": r["model"], "response": r["response"], "confidence": r["confidence"],
             "base_model": r["base_model"], "sample_id": r["sample_id"], "created_at": r["created_at"]}
            for r in self.conn.execute(
                "SELECT * FROM stage1_responses WHERE message_id = ? ORDER BY id", (m["id"],))
        ]
        stage2 = [
            {"id": r["id"], "model": r["evaluator_model"], "ranking": r["raw_ranking"],
             "parsed_ranking": json.loads(r["parsed_ranking"]) if r["parsed_ranking"] else [],
             "debate_round": r["debate_round"],
             "rubric_scores": json.loads(r["rubric_scores"]) if r["rubric_scores"] else None,
             "created_at": r["created_at"]}
            for r in self.conn.execute(
                "SELECT * FROM stage2_rankings WHERE message_id = ? ORDER BY id", (m["id"],))
        ]
        s3 = self.conn.execute(
            "SELECT * FROM stage3_synthesis WHERE message_id = ?", (m["id"],)).fetchone()
        stage3 = None if s3 is None else {
            "model": s3["chairman_model"], "response": s3["response"],
            "meta_evaluation": s3["meta_evaluation"], "created_at": s3["created_at"]}
        md = self.conn.execute(
            "SELECT * FROM deliberation_metadata WHERE message_id = ?", (m["id"],)).fetchone()
        metadata = None if md is None else {
            "label_to_model": json.loads(md["label_to_model"]),
            "aggregate_rankings": loads_or_none(md["aggregate_rankings"]),
            "consensus": loads_or_none(md["consensus"]),
            "voting_method": md["voting_method"],
            "features": loads_or_none(md["features"]),
            "stage1_consensus": loads_or_none(md["stage1_consensus"]),
            "debate_history": loads_or_none(md["debate_history"]),
            "created_at": md["created_at"]}
        return {"id": m["id"], "role": "assistant", "created_at": m["created_at"],
                "stage1": stage1, "stage2": stage2, "stage3": stage3, "metadata": metadata}

    # API keys

    def create_api_key(self, name, key_hash, key_prefix, permissions=None, expires_at=None,
                       rate_limit_override=None, metadata=None):
        cursor = self.conn.execute(
            "INSERT INTO api_keys (key_hash, key_prefix, name, created_at, expires_at, is_active, "
            "rate_limit_override, permissions, metadata) VALUES (?, ?, ?, ?, ?, 1, ?, ?, ?)",
            (key_hash, key_prefix, name, self.now().isoformat(),
             expires_at.isoformat() if expires_at else None, rate_limit_override,
             json.dumps(permissions or ["read", "write", "stream"]), dumps_or_none(metadata)),
        )
        self.conn.commit()
        return cursor.lastrowid

    def find_api_key(self, key_prefix):
        row = self.conn.execute(
            "SELECT * FROM api_keys WHERE key_prefix = ? AND is_active = 1", (key_prefix,)
        ).fetchone()
        return None if row is None else api_key_of(row)

    def list_api_keys(self, active_only):
        sql = "SELECT * FROM api_keys" + (" WHERE is_active = 1" if active_only else "") + " ORDER BY id"
        return [api_key_of(row) for row in self.conn.execute(sql).fetchall()]

    def record_use(self, api_key_id):
        cursor = self.conn.execute(
            "UPDATE api_keys SET last_used_at = ? WHERE id = ?", (self.now().isoformat(), api_key_id))
        self.conn.commit()
        return cursor.rowcount > 0

    def revoke_api_key(self, api_key_id):
        cursor = self.conn.execute(
            "UPDATE api_keys SET is_active = 0 WHERE id = ? AND is_active = 1", (api_key_id,))
        self.conn.commit()
        return cursor.rowcount > 0

    def log_api_key_event(self, api_key_id, action, endpoint, ip_address, user_agent, request_id):
        cursor = self.conn.execute(
            "INSERT INTO api_key_audit_log (api_key_id, action, endpoint, ip_address, user_agent, "
            "request_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (api_key_id, action, endpoint, ip_address, user_agent, request_id, self.now().isoformat()),
        )
        self.conn.commit()
        return cursor.lastrowid

    def audit_log(self, api_key_id):
        return [dict(row) for row in self.conn.execute(
            "SELECT * FROM api_key_audit_log WHERE api_key_id = ? ORDER BY id", (api_key_id,))]


def conversation_of(row):
    return {"id": row["id"], "title": row["title"], "created_at": row["created_at"],
            "updated_at": row["updated_at"], "is_pinned": bool(row["is_pinned"]),
            "is_hidden": bool(row["is_hidden"]), "message_count": row["message_count"]}


def api_key_of(row):
    return {"id": row["id"], "key_hash": row["key_hash"], "key_prefix": row["key_prefix"],
            "name": row["name"], "created_at": row["created_at"], "last_used_at": row["last_used_at"],
            "expires_at": row["expires_at"], "is_active": bool(row["is_active"]),
            "rate_limit_override": row["rate_limit_override"],
            "permissions": json.loads(row["permissions"]) if row["permissions"] else [],
            "metadata": loads_or_none(row["metadata"])}


def dumps_or_none(value):
    return None if value is None else json.dumps(value)


def loads_or_none(text):
    return json.loads(text) if text else None


def cache_key(query, models, voting_method, options):
    key_data = {"query": query.strip().lower(), "models": sorted(models),
                "voting_method": voting_method, "options": options or {}}
    return hashlib.sha256(json.dumps(key_data, sort_keys=True).encode()).hexdigest()[:32]


class ResponseCache:
    """The app's cache of whole deliberations, in process memory."""

    def __init__(self, ttl=3600, max_entries=100):
        self.ttl = ttl
        self.max_entries = max_entries
        self.entries = OrderedDict()

    def get(self, query, models, voting_method="borda", options=None):
        key = cache_key(query, models, voting_method, options)
        entry = self.entries.get(key)
        if entry is None:
            return None
        if entry["expires_at"] is not None and entry["expires_at"] <= time.time():
            del self.entries[key]
            return None
        entry["hit_count"] += 1
        self.entries.move_to_end(key)
        return entry["result"]

    def put(self, query, models, voting_method, options, result, ttl=None):
        key = cache_key(query, models, voting_method, options)
        ttl = self.ttl if ttl is None else ttl
        self.entries[key] = {"result": result, "hit_count": 0,
                             "expires_at": None if ttl < 0 else time.time() + ttl}
        self.entries.move_to_end(key)
        while len(self.entries) > self.max_entries:
            self.entries.popitem(last=False)
        return key

    def invalidate(self, query, models, voting_method="borda", options=None):
        return self.entries.pop(cache_key(query, models, voting_method, options), None) is not None

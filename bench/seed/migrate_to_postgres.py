"""The LLM Council app's migration script, as its PostgreSQL migration guide
gives it ("4. Migration Script"), for the benchmark to measure what people
run today. Only its import line differs: a module here, not a package."""

"""Migrate data from SQLite to PostgreSQL."""

import json
import sqlite3
from datetime import datetime

from postgres_connection import get_cursor, transaction


def migrate_conversations(sqlite_path: str) -> dict:
    """Migrate all data from SQLite to PostgreSQL."""
    stats = {
        "conversations": 0,
        "messages": 0,
        "stage1": 0,
        "stage2": 0,
        "stage3": 0,
        "metadata": 0,
        "api_keys": 0,
        "errors": []
    }

    sqlite_conn = sqlite3.connect(sqlite_path)
    sqlite_conn.row_factory = sqlite3.Row
    sqlite_cur = sqlite_conn.cursor()

    try:
        # Migrate conversations
        sqlite_cur.execute("SELECT * FROM conversations")
        for row in sqlite_cur.fetchall():
            with get_cursor() as pg_cur:
                pg_cur.execute("""
                    INSERT INTO conversations
                    (id, title, created_at, updated_at, is_pinned, is_hidden, message_count)
                    VALUES (%s, %s, %s, %s, %s, %s, %s)
                    ON CONFLICT (id) DO NOTHING
                """, (
                    row["id"],
                    row["title"],
                    row["created_at"],
                    row["updated_at"],
                    bool(row["is_pinned"]),
                    bool(row["is_hidden"]),
                    row["message_count"]
                ))
                stats["conversations"] += 1

        # Migrate messages with stage data
        sqlite_cur.execute("SELECT * FROM messages ORDER BY id")
        for msg in sqlite_cur.fetchall():
            with transaction() as pg_cur:
                # Insert message
                pg_cur.execute("""
                    INSERT INTO messages (id, conversation_id, role, content, created_at)
                    VALUES (%s, %s, %s, %s, %s)
                    ON CONFLICT DO NOTHING
                    RETURNING id
                """, (
                    msg["id"],
                    msg["conversation_id"],
                    msg["role"],
                    msg["content"],
                    msg["created_at"]
                ))
                stats["messages"] += 1

                # Migrate stage1 responses
                sqlite_cur2 = sqlite_conn.cursor()
                sqlite_cur2.execute(
                    "SELECT * FROM stage1_responses WHERE message_id = ?",
                    (msg["id"],)
                )
                for s1 in sqlite_cur2.fetchall():
                    pg_cur.execute("""
                        INSERT INTO stage1_responses
                        (message_id, model, response, confidence, base_model, sample_id)
                        VALUES (%s, %s, %s, %s, %s, %s)
                    """, (
                        s1["message_id"],
                        s1["model"],
                        s1["response"],
                        s1["confidence"],
                        s1["base_model"],
                        s1["sample_id"]
                    ))
                    stats["stage1"] += 1

                # Migrate stage2 rankings
                sqlite_cur2.execute(
                    "SELECT * FROM stage2_rankings WHERE message_id = ?",
                    (msg["id"],)
                )
                for s2 in sqlite_cur2.fetchall():
                    pg_cur.execute("""
                        INSERT INTO stage2_rankings
                        (message_id, evaluator_model, raw_ranking, parsed_ranking,
                         debate_round, rubric_scores)
                        VALUES (%s, %s, %s, %s, %s, %s)
                    """, (
                        s2["message_id"],
                        s2["evaluator_model"],
                        s2["raw_ranking"],
                        s2["parsed_ranking"],  # Already JSON in SQLite
                        s2["debate_round"],
                        s2["rubric_scores"]
                    ))
                    stats["stage2"] += 1

                # Migrate stage3 synthesis
                sqlite_cur2.execute(
                    "SELECT * FROM stage3_synthesis WHERE message_id = ?",
                    (msg["id"],)
                )
                for s3 in sqlite_cur2.fetchall():
                    pg_cur.execute("""
                        INSERT INTO stage3_synthesis
                        (message_id, chairman_model, response, meta_evaluation)
                        VALUES (%s, %s, %s, %s)
                    """, (
                        s3["message_id"],
                        s3["chairman_model"],
                        s3["response"],
                        s3["meta_evaluation"]
                    ))
                    stats["stage3"] += 1

                # Migrate metadata
                sqlite_cur2.execute(
                    "SELECT * FROM deliberation_metadata WHERE message_id = ?",
                    (msg["id"],)
                )
                for meta in sqlite_cur2.fetchall():
                    pg_cur.execute("""
                        INSERT INTO deliberation_metadata
                        (message_id, label_to_model, aggregate_rankings, consensus,
                         voting_method, features, stage1_consensus, debate_history)
                        VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
                    """, (
                        meta["message_id"],
                        meta["label_to_model"],
                        meta["aggregate_rankings"],
                        meta["consensus"],
                        meta["voting_method"],
                        meta["features"],
                        meta["stage1_consensus"],
                        meta["debate_history"]
                    ))
                    stats["metadata"] += 1

        # Migrate API keys
        sqlite_cur.execute("SELECT * FROM api_keys")
        for key in sqlite_cur.fetchall():
            with get_cursor() as pg_cur:
                pg_cur.execute("""
                    INSERT INTO api_keys
                    (key_hash, key_prefix, name, created_at, last_used_at,
                     expires_at, is_active, rate_limit_override, permissions, metadata)
                    VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
                    ON CONFLICT (key_hash) DO NOTHING
                """, (
                    key["key_hash"],
                    key["key_prefix"],
                    key["name"],
                    key["created_at"],
                    key["last_used_at"],
                    key["expires_at"],
                    bool(key["is_active"]),
                    key["rate_limit_override"],
                    key["permissions"],
                    key["metadata"]
                ))
                stats["api_keys"] += 1

    except Exception as e:
        stats["errors"].append(str(e))
    finally:
        sqlite_conn.close()

    return stats


def verify_migration(sqlite_path: str) -> dict:
    """Verify migration by comparing record counts."""
    sqlite_conn = sqlite3.connect(sqlite_path)
    sqlite_cur = sqlite_conn.cursor()

    tables = [
        "conversations", "messages", "stage1_responses",
        "stage2_rankings", "stage3_synthesis", "deliberation_metadata", "api_keys"
    ]

    comparison = {}
    for table in tables:
        sqlite_cur.execute(f"SELECT COUNT(*) FROM {table}")
        sqlite_count = sqlite_cur.fetchone()[0]

        with get_cursor() as pg_cur:
            pg_cur.execute(f"SELECT COUNT(*) FROM {table}")
            pg_count = pg_cur.fetchone()["count"]

        comparison[table] = {
            "sqlite": sqlite_count,
            "postgres": pg_count,
            "match": sqlite_count == pg_count
        }

    sqlite_conn.close()
    return comparison


if __name__ == "__main__":
    import sys

    sqlite_path = sys.argv[1] if len(sys.argv) > 1 else "data/council.db"

    print(f"Migrating from {sqlite_path}...")
    stats = migrate_conversations(sqlite_path)
    print(f"Migration complete: {stats}")

    print("\nVerifying...")
    verification = verify_migration(sqlite_path)
    for table, counts in verification.items():
        status = "✓" if counts["match"] else "✗"
        print(f"  {status} {table}: {counts['sqlite']} → {counts['postgres']}")

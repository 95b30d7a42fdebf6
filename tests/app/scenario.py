"""Runs every operation the LLM Council app performs, through the app's
storage on SQLite or through its port to PostgreSQL, and prints what the
app reads back as JSON: one [step, value] pair per read.

    scenario.py sqlite PATH      the app as it runs today, on a new council.db
    scenario.py postgres DSN     the ported app, on a database with the extension
    scenario.py reads PATH       only the final reads, on an existing council.db
                                 (an export), through the app's SQLite storage
    scenario.py guide-port DSN   the app's statements with only the guide's change
                                 (? to %s), one per change the port needs: what fails

Times and ids are fixed, so both runs write the same values.
"""

import json
import sys
import uuid
from datetime import datetime, timedelta, timezone

import council_sqlite

START = datetime(2026, 1, 17, 10, 20, 30, 123456, tzinfo=timezone.utc)
CONVERSATIONS = [str(uuid.UUID(int=0x1D0C_0000_0000_4000_8000_0000_0000_0000 + n)) for n in range(4)]
MODELS = ["openai/gpt-5", "anthropic/claude-sonnet-4.5", "google/gemini-2.5-pro"]


class Clock:
    """A clock that moves 1.001001 s per reading, never on a whole second."""

    def __init__(self):
        self.readings = 0

    def __call__(self):
        self.readings += 1
        return START + timedelta(seconds=self.readings, microseconds=1001 * self.readings)


def deliberation(n):
    labels = {f"Response {chr(65 + i)}": model for i, model in enumerate(MODELS)}
    stage1 = [{"model": model, "response": f"Answer {n} from {model}: 2 + 2 = 4.\n\n```python\nprint(2 + 2)\n```",
               "confidence": [0.85, 0.6, None][i], "base_model": model.split("/")[1] if i else None,
               "sample_id": i if i < 2 else None}
              for i, model in enumerate(MODELS)]
    stage2 = [{"model": model, "ranking": f"FINAL RANKING:\n1. Response B\n2. Response A\n3. Response C ({n})",
               "parsed_ranking": ["Response B", "Response A", "Response C"], "debate_round": 1 + (i == 2),
               "rubric_scores": {"accuracy": 9, "clarity": 7.5, "élan": [1, 2.25]} if i != 1 else None}
              for i, model in enumerate(MODELS)]
    stage3 = {"model": MODELS[0], "response": f"The council agrees: 4. ({n}) — résumé, 数学, Ελληνικά",
              "meta_evaluation": None if n % 2 else "unanimous"}
    metadata = {"label_to_model": labels,
                "aggregate_rankings": [{"model": MODELS[1], "average_rank": 1.33, "rankings_count": 3}],
                "consensus": {"agreement": 0.67, "winner": "Response B"},
                "voting_method": ["borda", "mrr"][n % 2],
                "features": {"debate": n % 2 == 0, "rubric": True},
                "stage1_consensus": None, "debate_history": [] if n % 2 else None}
    return stage1, stage2, stage3, metadata


def final_reads(storage, api_key_prefix="llmc_7Hq2xZa"):
    reads = [["list", storage.list_conversations()]]
    reads += [[f"get {cid}", storage.get_conversation(cid)] for cid in CONVERSATIONS]
    reads.append(["all keys", storage.list_api_keys(active_only=False)])
    reads.append(["active keys", storage.list_api_keys(active_only=True)])
    for key in storage.list_api_keys(active_only=False):
        reads.append([f"audit {key['id']}", storage.audit_log(key["id"])])
    reads.append(["find revoked", storage.find_api_key(api_key_prefix)])
    return reads


def run(storage, cache):
    reads = []
    read = lambda step, value: reads.append([step, value])
    a, b, c, d = CONVERSATIONS
    for cid in (a, b, c):
        read(f"create {cid}", storage.create_conversation(cid))
    read("create titled", storage.create_conversation(d, title="Groceries ✓"))
    read("user message", storage.add_user_message(a, "What is 2+2? Explain like I'm five."))
    stage1, stage2, stage3, metadata = deliberation(1)
    read("assistant message", storage.add_assistant_message(a, stage1, stage2, stage3, metadata))
    read("second user message", storage.add_user_message(b, "And 3*3?"))
    read("second assistant message", storage.add_assistant_message(b, *deliberation(2)))
    read("list", storage.list_conversations())
    read("rename", storage.rename_conversation(a, "Arithmetic"))
    read("rename missing", storage.rename_conversation(str(uuid.UUID(int=7)), "Nothing"))
    read("pin", storage.set_pinned(c, True))
    read("hide", storage.set_hidden(d, True))
    read("list after pin and hide", storage.list_conversations())
    read("get", storage.get_conversation(a))
    read("get missing legacy id", storage.get_conversation("import-2025-0042"))
    read("delete", storage.delete_conversation(b))
    read("delete again", storage.delete_conversation(b))
    read("delete missing legacy id", storage.delete_conversation("import-2025-0042"))
    read("get deleted", storage.get_conversation(b))
    read("unpin", storage.set_pinned(c, False))
    read("unhide", storage.set_hidden(d, False))
    read("list after unpin", storage.list_conversations())

    key_id = storage.create_api_key("ci", "$2b$12$" + "K" * 53, "llmc_7Hq2xZa",
                                    metadata={"owner": "ops", "ticket": 42})
    read("create key", key_id)
    other = storage.create_api_key("reader", "$2b$12$" + "R" * 53, "llmc_Rd3rKey",
                                   permissions=["read"], rate_limit_override=10,
                                   expires_at=START + timedelta(days=30))
    read("create second key", other)
    read("find key", storage.find_api_key("llmc_7Hq2xZa"))
    read("record use", storage.record_use(key_id))
    for action, endpoint in [("request", "/api/conversations"), ("rate_limited", "/api/conversations/x/message")]:
        read(f"audit {action}", storage.log_api_key_event(
            key_id, action, endpoint, "203.0.113.7", "curl/8.5.0", str(uuid.UUID(int=0xA0D1 + len(action)))))
    read("audit", storage.audit_log(key_id))
    read("revoke", storage.revoke_api_key(key_id))
    read("revoke again", storage.revoke_api_key(key_id))
    read("find revoked", storage.find_api_key("llmc_7Hq2xZa"))
    read("active keys", storage.list_api_keys(active_only=True))

    question = ("  What is 2+2?  ", ["openai/gpt-5", "anthropic/claude"], "borda", {"temperature": 0.5})
    read("cache miss", cache.get(*question))
    stage1, stage2, stage3, metadata = deliberation(3)
    result = {"stage1": stage1, "stage2": stage2, "stage3": stage3, "metadata": metadata}
    read("cache put", cache.put(*question, result))
    read("cache hit", cache.get(*question))
    read("cache hit, other case and order", cache.get("what is 2+2?", ["anthropic/claude", "openai/gpt-5"],
                                                      "borda", {"temperature": 0.5}))
    read("cache other voting method", cache.get(question[0], question[1], "mrr", question[3]))
    read("cache invalidate", cache.invalidate(*question))
    read("cache after invalidate", cache.get(*question))
    return reads + [["final " + step, value] for step, value in final_reads(storage)]


def main(argv):
    mode, target = argv[1], argv[2]
    if mode == "sqlite":
        storage = council_sqlite.Storage(target, now=Clock())
        out = run(storage, council_sqlite.ResponseCache())
    elif mode == "postgres":
        import council_postgres
        storage = council_postgres.Storage(target, now=Clock())
        out = run(storage, council_postgres.ResponseCache(storage))
    elif mode == "reads":
        storage = council_sqlite.Storage(target)
        out = final_reads(storage)
    elif mode == "guide-port":
        import guide_port
        out = guide_port.run(target)
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    json.dump(out, sys.stdout, ensure_ascii=False, indent=1)


if __name__ == "__main__":
    main(sys.argv)

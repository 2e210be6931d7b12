"""Measure the NLU and the procedure resolution on a JSONL evaluation set.

Each line: {"text", "intent", "procedures": [acceptable codes], "diacritics", "style"}.
Reports intent accuracy overall, with/without diacritics and per intent, plus how often the
procedure the actions would pick (or offer among ≤3 buttons) is an acceptable one.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from bot.config import Settings
from bot.jsonl import JsonlError, read_objects


def read_eval(path: Path) -> list[dict[str, Any]]:
    rows = []
    try:
        for i, row in read_objects(path):
            if "text" not in row or "intent" not in row:
                raise SystemExit(f"{path.name} dòng {i}: cần các trường text và intent")
            rows.append(row)
    except JsonlError as exc:
        raise SystemExit(str(exc)) from exc
    return rows


async def evaluate_file(agent: Any, path: Path, settings: Settings) -> dict[str, Any]:
    """Run every row through the model and the catalog resolver; return the report."""
    from actions.catalog_client import CatalogClient

    client = CatalogClient(settings.database_url)
    rows = read_eval(path)
    correct = 0
    by_intent: dict[str, Counter] = defaultdict(Counter)
    by_diacritics: dict[str, Counter] = defaultdict(Counter)
    confusion: Counter = Counter()
    proc_total = proc_top1 = proc_offered = 0
    for row in rows:
        data = await agent.parse_message(row["text"])
        predicted = (data.get("intent") or {}).get("name")
        ok = predicted == row["intent"]
        correct += ok
        by_intent[row["intent"]]["n"] += 1
        by_intent[row["intent"]]["ok"] += ok
        key = "with" if row.get("diacritics", True) else "without"
        by_diacritics[key]["n"] += 1
        by_diacritics[key]["ok"] += ok
        if not ok:
            confusion[f"{row['intent']} → {predicted}"] += 1
        wanted = set(row.get("procedures") or [])
        if wanted:
            proc_total += 1
            with client.session() as s:
                res = client.resolve(s, data.get("entities") or [], row["text"], None)
                picked = res.procedure.code if res.procedure is not None else None
                offered = {c.code for c in res.candidates}
            proc_top1 += picked in wanted
            proc_offered += bool((offered | {picked}) & wanted)
    n = len(rows) or 1
    return {
        "data": str(path),
        "examples": len(rows),
        "intent_accuracy": round(correct / n, 4),
        "intent_accuracy_by_diacritics": {
            k: round(v["ok"] / v["n"], 4) for k, v in sorted(by_diacritics.items())},
        "intent_accuracy_by_intent": {
            k: round(v["ok"] / v["n"], 4) for k, v in sorted(by_intent.items())},
        "top_confusions": dict(confusion.most_common(10)),
        "procedure_examples": proc_total,
        "procedure_answered_correctly": round(proc_top1 / (proc_total or 1), 4),
        "procedure_answered_or_offered": round(proc_offered / (proc_total or 1), 4),
    }

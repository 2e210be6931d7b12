"""Helper process for tests/test_rasa_runtime.py: load a model, parse stdin lines, print JSON.

`python tests/rasa_parse_probe.py MODEL original|patched < texts` — a process of its own
per load, so the two loads cannot share TensorFlow state.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


async def main() -> None:
    from rasa.core.agent import Agent

    if sys.argv[2] == "patched":
        from bot.rasa_runtime import apply

        apply()
    agent = Agent.load(sys.argv[1])
    out = []
    for line in sys.stdin.read().splitlines():
        data = await agent.parse_message(line)
        out.append({"intent": data["intent"]["name"],
                    "confidence": data["intent"]["confidence"],
                    "ranking": [(r["name"], r["confidence"])
                                for r in data.get("intent_ranking") or []],
                    "entities": sorted((e["entity"], str(e["value"]), e["start"], e["end"])
                                       for e in data["entities"])})
    print(json.dumps(out, ensure_ascii=False))


if __name__ == "__main__":
    sys.path.insert(0, os.getcwd())
    asyncio.run(main())

"""`bot eval dialogue` against the real stack: action server, Rasa and gateway (the
session's shared stack, tests/conftest.py), on a small question file this test writes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot import eval_dialogue as ed
from bot.catalog.db import session_scope
from bot.catalog.models import Procedure
from bot.text import fold

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def gateway(shared_stack) -> str:  # noqa: ANN001
    st = shared_stack
    return f"http://{st.settings.bot_host}:{st.settings.bot_port}"


def seed_codes(database_url: str, short_name: str) -> list[str]:
    """The seed procedures whose short name is `short_name` (folded), from the catalog."""
    with session_scope(database_url) as s:
        return sorted(p.code for p in s.query(Procedure).all()
                      if fold(p.short_name or "") == fold(short_name))


def test_dialogue_evaluation_on_the_real_stack(trained, gateway: str,  # noqa: ANN001
                                               tmp_path: Path) -> None:
    settings, _ = trained
    birth = seed_codes(settings.database_url, "Đăng ký khai sinh")
    marriage = seed_codes(settings.database_url, "Đăng ký kết hôn")
    death = seed_codes(settings.database_url, "Đăng ký khai tử")
    assert birth and marriage and death
    rows = [
        {"question": "đăng ký khai sinh cần giấy tờ gì", "procedure_codes": birth},
        {"text": "đăng ký kết hôn mất bao lâu", "procedures": marriage},
        {"text": "dang ky khai tu o dau", "procedures": death},
        {"text": "chào bạn", "intent": "greet", "procedures": []},  # skipped: no gold
    ]
    path = tmp_path / "questions.jsonl"
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows)
                    + "\n{bad line\n", encoding="utf-8")

    report = ed.run_eval([path], gateway, ed.EvalOptions(concurrency=2, progress=False,
                                                         details=True))
    [f] = report["files"]
    assert (f["lines"], f["sent"], f["skipped"], f["errors"]) == (5, 3, 1, 0)
    assert f["bad_lines"] == [{"line": 5, "error": f["bad_lines"][0]["error"]}]
    p = f["procedure"]
    assert p["n"] == 3
    total = (p["answered"]["count"] + p["offered"]["count"] + p["error"]["count"]
             + sum(v["count"] for v in p["no_procedure"].values()))
    assert total == 3
    assert p["answered_or_offered"]["count"] == p["answered"]["count"] + p["offered"]["count"]
    first = f["questions"][0]
    assert first["outcome"] == "answered", first  # the obvious one
    assert first["named"][0] in birth and "documents" in first["asked"]
    for aspect in f["aspects"]["per_aspect"].values():
        assert aspect["answered"] <= aspect["in_answers"] <= aspect["asked"]
    assert f["latency_ms"]["n"] == 3 and f["latency_ms"]["p95"] >= f["latency_ms"]["mean"] > 0
    assert f["qa"] is None
    assert "answered" in ed.format_report(report)

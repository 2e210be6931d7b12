"""The status actions against a real SQLite database: validation, asking, lookup outcomes."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.status import (
    AskReceiptCode,
    CancelStatus,
    CheckStatus,
    ValidateStatusForm,
    remember_lookup,
)
from bot.catalog.db import session_scope
from bot.config import ROOT
from bot.fees.service import vietnam_today
from bot.status.codes import CodeMatcher, load_patterns
from bot.status.importer import import_status_csv

EXAMPLE = CodeMatcher(load_patterns(ROOT / "data" / "status" / "receipt_codes.yaml")).example
CODE = "000.00.20.H26-250312-0045"


@pytest.fixture()
def db(seeded_db: str, monkeypatch: pytest.MonkeyPatch, tmp_path) -> str:  # noqa: ANN001
    monkeypatch.setenv("DATABASE_URL", seeded_db)
    monkeypatch.setenv("STATUS_SOURCE", "database")
    today = vietnam_today()
    path = tmp_path / "s.csv"
    path.write_text(
        "receipt_code,procedure_code,agency,status,received_at,due_at,finished_at,note\n"
        f"{CODE},1.001193,UBND phường Ba Đình,processing,{today - timedelta(days=3)},"
        f"{today + timedelta(days=30)},,\n", encoding="utf-8")
    with session_scope(seeded_db) as s:
        import_status_csv(s, path, CodeMatcher(load_patterns(
            ROOT / "data" / "status" / "receipt_codes.yaml")))
    return seeded_db


def tracker(text: str = "", slots: dict | None = None, intent: str = "check_status") -> Tracker:
    return Tracker(sender_id="t", slots=slots or {}, latest_message={
        "text": text, "intent": {"name": intent, "confidence": 0.99}, "entities": []},
        events=[], paused=False, followup_action=None, active_loop={"name": "status_form"},
        latest_action_name="action_listen")


async def check(slots: dict) -> tuple[str, dict]:
    dispatcher = CollectingDispatcher()
    events = await CheckStatus().run(dispatcher, tracker(slots=slots), {})
    return "\n".join(m["text"] for m in dispatcher.messages), \
        {e["name"]: e["value"] for e in events}


def test_validation_accepts_any_tolerated_spelling_and_counts_the_rest() -> None:
    v, d = ValidateStatusForm(), CollectingDispatcher()
    assert v.validate_receipt_code("mã là 000.00.20.h26 - 250312 - 0045 ạ", d, tracker(), {}) \
        == {"receipt_code": CODE}
    assert v.validate_receipt_code("000.00.20-2503", d, tracker(), {}) == \
        {"receipt_code": None, "receipt_code_attempts": 1}
    # The second wrong answer ends the form (requested_slot None).
    assert v.validate_receipt_code("abc", d, tracker(slots={"receipt_code_attempts": 1}), {}) \
        == {"receipt_code": None, "receipt_code_attempts": 2, "requested_slot": None}


def test_the_question_and_the_re_ask_show_an_example() -> None:
    d = CollectingDispatcher()
    assert AskReceiptCode().run(d, tracker("hồ sơ của tôi đến đâu rồi"), {}) == []
    assert EXAMPLE in d.messages[0]["text"] and "chưa đúng dạng" not in d.messages[0]["text"]
    d = CollectingDispatcher()
    AskReceiptCode().run(d, tracker("000.00.21-2411", slots={"receipt_code_attempts": 1}), {})
    assert "\u201c000.00.21-2411\u201d chưa đúng dạng" in d.messages[0]["text"]
    assert EXAMPLE in d.messages[0]["text"]
    # A bad code in the very first message counts as the first attempt.
    d = CollectingDispatcher()
    events = AskReceiptCode().run(d, tracker("tra cứu hồ sơ H26-0045 giúp"), {})
    assert "\u201cH26-0045\u201d chưa đúng dạng" in d.messages[0]["text"]
    assert events == [{"event": "slot", "timestamp": None, "name": "receipt_code_attempts",
                       "value": 1}]


def test_cancel_resets_the_form_slots() -> None:
    d = CollectingDispatcher()
    events = CancelStatus().run(d, tracker("thôi"), {})
    assert "dừng tra cứu" in d.messages[0]["text"]
    assert {e["name"]: e["value"] for e in events} == {"receipt_code": None,
                                                      "receipt_code_attempts": 0}


async def test_lookup_found_names_the_procedure_and_keeps_it_for_follow_ups(db: str) -> None:
    text, slots = await check({"receipt_code": CODE})
    assert CODE in text and "Đăng ký khai sinh" in text and "Đang giải quyết" in text
    assert "chưa quá hạn" in text
    assert slots["procedure_code"] == "1.001193" and slots["receipt_code"] is None
    assert len(slots["status_lookups"]) == 1 and CODE not in slots["status_lookups"][0]


async def test_lookup_not_found_and_no_code(db: str) -> None:
    text, slots = await check({"receipt_code": "000.00.20.H26-250312-9999"})
    assert "không tìm thấy hồ sơ" in text and "procedure_code" not in slots
    text, slots = await check({"receipt_code": None, "receipt_code_attempts": 2})
    assert "tạm dừng tra cứu" in text and slots["receipt_code_attempts"] == 0


async def test_lookup_is_refused_over_the_limit(db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STATUS_LOOKUP_LIMIT", "2")
    now = time.time()
    seen = remember_lookup(None, "H26-250312-0001", now, 60)
    seen = remember_lookup(seen, "H26-250312-0002", now, 60)
    text, slots = await check({"receipt_code": CODE, "status_lookups": seen})
    assert "tạm dừng tra cứu mã mới" in text and "Đang giải quyết" not in text
    assert "status_lookups" not in slots  # a refused lookup is not remembered


async def test_an_unreachable_source_gets_a_try_later_answer(
        db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STATUS_SOURCE", "http")
    monkeypatch.setenv("STATUS_HTTP_URL", "http://127.0.0.1:9/hoso/{code}")  # discard port
    monkeypatch.setenv("STATUS_HTTP_TIMEOUT", "1")
    text, _ = await check({"receipt_code": CODE})
    assert "tạm thời không truy cập được" in text and "thử lại sau" in text
    from actions.status import _SOURCES

    for source in _SOURCES.values():
        await source.close()
    _SOURCES.clear()


async def test_several_codes_in_one_message_are_each_answered(db: str) -> None:
    dispatcher = CollectingDispatcher()
    trk = tracker(f"hồ sơ {CODE} và 000.00.20.H26-250312-9999 thế nào",
                  slots={"receipt_code": ["000.00.20.H26-250312-9999", CODE]})
    events = await CheckStatus().run(dispatcher, trk, {})
    texts = [m["text"] for m in dispatcher.messages]
    assert len(texts) == 2 and "Đang giải quyết" in texts[0] and "không tìm thấy" in texts[1]
    lookups = next(e["value"] for e in events if e["name"] == "status_lookups")
    assert len(lookups) == 2

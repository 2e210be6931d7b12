"""The handover actions (actions/handover.py) with real trackers and a real SQLite database."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.answers import HANDOFF_BUTTON
from actions.handover import Fallback, RequestHuman, channel_of
from bot.handover import queue
from bot.handover.hours import vietnam_now


@pytest.fixture()
def db(db_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("HANDOVER_HOURS", "always")
    monkeypatch.delenv("HANDOVER_AFTER_FALLBACKS", raising=False)
    monkeypatch.delenv("WORK_CALENDAR", raising=False)
    return db_url


def user(text: str, intent: str = "ask_fee", channel: str = "widget") -> dict[str, Any]:
    return {"event": "user", "text": text, "timestamp": time.time(),
            "parse_data": {"intent": {"name": intent}}, "metadata": {"channel": channel}}


def action(name: str) -> dict[str, Any]:
    return {"event": "action", "name": name, "timestamp": time.time()}


def bot(text: str, buttons: list[dict] | None = None) -> dict[str, Any]:
    return {"event": "bot", "text": text, "timestamp": time.time(),
            "data": {"buttons": buttons or []}}


FALLBACK_TURN = [user("asdf qwer", "nlu_fallback"), action("action_fallback"),
                 bot("Xin lỗi, mình chưa hiểu ý bạn."), action("action_listen")]
SERVED_TURN = [user("đăng ký khai sinh cần gì", "ask_documents"),
               action("action_answer_documents"), bot("Hồ sơ cần chuẩn bị: …"),
               action("action_listen")]


def tracker(events: list[dict[str, Any]], sender: str = "w-session-1") -> Tracker:
    latest = next(e for e in reversed(events) if e["event"] == "user")
    return Tracker(sender_id=sender, slots={}, latest_message={
        "text": latest["text"], "intent": latest["parse_data"]["intent"], "entities": [],
        "metadata": latest["metadata"]}, events=events, paused=False, followup_action=None,
        active_loop={}, latest_action_name="action_listen")


def run(act: Any, events: list[dict[str, Any]], sender: str = "w-session-1"
        ) -> tuple[str, list[dict]]:
    dispatcher = CollectingDispatcher()
    out = act.run(dispatcher, tracker(events, sender), {})
    (message,) = dispatcher.messages
    return message.get("text") or message.get("response"), out


def test_request_human_opens_a_handover_with_the_conversation(db: str) -> None:
    events = [*SERVED_TURN, user("cho tôi gặp cán bộ", "request_human")]
    text, out = run(RequestHuman(), events)
    assert "chuyển cuộc trò chuyện tới cán bộ" in text and "18001096" in text
    (h,) = queue.list_open(db)
    assert (h.sender_id, h.channel, h.address, h.reason, h.after_hours) == (
        "w-session-1", "widget", "w-session-1", "requested", False)
    assert out == [{"event": "slot", "name": "handover_id", "value": float(h.id),
                    "timestamp": None}]
    assert [(m.author, m.text) for m in queue.get(db, h.id).messages] == [
        ("citizen", "đăng ký khai sinh cần gì"), ("bot", "Hồ sơ cần chuẩn bị: …"),
        ("citizen", "cho tôi gặp cán bộ")]
    run(RequestHuman(), events)  # asked again: the same handover
    assert len(queue.list_open(db)) == 1


def test_after_hours_says_when_staff_are_back_and_still_queues(
        db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    today = vietnam_now().date().isoformat()
    calendar = tmp_path / "calendar.yaml"
    calendar.write_text(f"calendar:\n  extra_days_off:\n    - {{date: {today}}}\n",
                        encoding="utf-8")
    monkeypatch.setenv("WORK_CALENDAR", str(calendar))
    monkeypatch.setenv("HANDOVER_HOURS", "mon-sun 08:00-17:00")  # but today is a day off
    text, _ = run(RequestHuman(), [user("tôi muốn để lại lời nhắn cho cán bộ",
                                        "request_human")])
    assert "ngoài giờ làm việc" in text and "để lại lời nhắn" in text
    assert "chuyển cuộc trò chuyện tới cán bộ" in text and "8:00" in text
    (h,) = queue.list_open(db)
    assert h.after_hours and h.status == "waiting"


def test_one_fallback_asks_to_rephrase(db: str) -> None:
    text, out = run(Fallback(), [*SERVED_TURN, user("xyz abc", "nlu_fallback")])
    assert text == "utter_default" and out == []
    assert queue.list_open(db) == []


def test_second_fallback_in_a_row_hands_over(db: str) -> None:
    text, _ = run(Fallback(), [*SERVED_TURN, *FALLBACK_TURN, user("ghjk", "nlu_fallback")])
    assert "vẫn chưa hiểu" in text and "chuyển cuộc trò chuyện tới cán bộ" in text
    (h,) = queue.list_open(db)
    assert h.reason == "fallback"


def test_a_served_turn_in_between_resets_the_count(db: str) -> None:
    text, _ = run(Fallback(), [*FALLBACK_TURN, *SERVED_TURN, user("ghjk", "nlu_fallback")])
    assert text == "utter_default" and queue.list_open(db) == []


def test_rejected_candidates_then_not_understood_hands_over(db: str) -> None:
    rejected = [user("/none_of_these", "none_of_these"), action("action_none_of_these"),
                bot("Dạ, vậy là mình chưa tìm đúng thủ tục…", [dict(HANDOFF_BUTTON)]),
                action("action_listen")]
    text, _ = run(Fallback(), [*SERVED_TURN, *rejected, user("ghjk", "nlu_fallback")])
    assert "chuyển cuộc trò chuyện tới cán bộ" in text


def test_after_a_handover_the_count_starts_again(db: str) -> None:
    handed = [user("qwer", "nlu_fallback"), action("action_fallback"),
              {"event": "slot", "name": "handover_id", "value": 1.0},
              bot("Xin lỗi, mình vẫn chưa hiểu ý bạn. Mình đã chuyển…"),
              action("action_listen")]
    text, _ = run(Fallback(), [*FALLBACK_TURN, *handed, user("zxcv", "nlu_fallback")])
    assert text == "utter_default"
    restarted = [{"event": "session_started"}, action("action_listen")]
    text, _ = run(Fallback(), [*FALLBACK_TURN, *restarted, user("zxcv", "nlu_fallback")])
    assert text == "utter_default"


def test_fallback_handover_can_be_switched_off(db: str, monkeypatch: pytest.MonkeyPatch
                                               ) -> None:
    monkeypatch.setenv("HANDOVER_AFTER_FALLBACKS", "0")
    text, _ = run(Fallback(), [*FALLBACK_TURN, *FALLBACK_TURN, user("x", "nlu_fallback")])
    assert text == "utter_default" and queue.list_open(db) == []


def test_channel_and_address_of_each_channel() -> None:
    assert channel_of(tracker([user("a", channel="zalo")], "zalo-123")) == ("zalo", "123")
    # Only the Zalo worker's own conversations are Zalo; a claim elsewhere is "web".
    assert channel_of(tracker([user("a", channel="zalo")], "w-1")) == ("web", "w-1")
    assert channel_of(tracker([user("a", channel="widget")], "abcdefgh")) == (
        "widget", "abcdefgh")
    assert channel_of(tracker([user("a", channel="web")], "web-1")) == ("web", "web-1")


def test_a_broken_database_gives_the_hotline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "sqlite:////proc/no-such-dir/db.sqlite3")
    monkeypatch.setenv("HANDOVER_HOURS", "always")
    text, out = run(RequestHuman(), [user("gặp cán bộ", "request_human")])
    assert "chưa chuyển được" in text and "18001096" in text and out == []

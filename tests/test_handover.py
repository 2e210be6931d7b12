"""The handover queue and working hours on a real SQLite database (bot/handover).

Everything here is the synchronous service the action server, the gateway and the console
share; the gateway and channel paths are in test_handover_gateway.py and
test_handover_stack.py.
"""

from __future__ import annotations

import asyncio
import json
import threading
from datetime import date, datetime
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from bot.catalog.db import session_scope
from bot.catalog.models import ZaloOutbox
from bot.channels.zalo import queue as zalo_queue
from bot.handover import queue
from bot.handover.events import ChangeFeed
from bot.handover.hours import (
    VIETNAM,
    HoursError,
    WorkingHours,
    describe_opening,
    parse_hours,
)
from bot.handover.models import Handover
from bot.handover.queue import Conflict, HandoverError, NotFound
from bot.status.workdays import WorkCalendar

OFFICE = "mon-fri 07:30-11:30, 13:30-17:00; sat 08:00-12:00"


def vn(*args: int) -> datetime:
    return datetime(*args, tzinfo=VIETNAM)


def hours(spec: str = OFFICE, calendar: WorkCalendar | None = None) -> WorkingHours:
    return WorkingHours(parse_hours(spec), calendar or WorkCalendar())


# --------------------------------------------------------------------------- hours


def test_hours_parser_reads_days_ranges_lists_and_vietnamese_names() -> None:
    week = parse_hours(OFFICE)
    assert week.describe() == ("thứ Hai – thứ Sáu 7:30–11:30, 13:30–17:00; "
                               "thứ Bảy 8:00–12:00")
    assert parse_hours("t2,t4 8h00-12h00; cn 08:00-24:00;").describe() == (
        "thứ Hai 8:00–12:00; thứ Tư 8:00–12:00; Chủ nhật 8:00–24:00")
    assert parse_hours(" Mon - Fri  08:00 - 17:00 ").describe() == "thứ Hai – thứ Sáu 8:00–17:00"
    assert parse_hours("always").always and parse_hours("24/7").always


@pytest.mark.parametrize(("spec", "says"), [
    ("", "trống"),
    ("mon-fry 08:00-17:00", "“fry” không phải tên ngày"),
    ("fri-mon 08:00-17:00", "ngược chiều"),
    ("mon 17:00-08:00", "giờ kết thúc phải sau giờ bắt đầu"),
    ("mon 08:00-12:00, 11:00-13:00", "chồng lên nhau"),
    ("mon 25:00-26:00", "không hợp lệ"),
    ("08:00-17:00", "cần ngày rồi khoảng giờ"),
    ("mon 8-17", "cần ngày rồi khoảng giờ"),
    ("mon 08:00-12:00 sáng", "không phải khoảng giờ"),
    (";", "không có khoảng giờ"),
])
def test_hours_parser_says_what_is_wrong(spec: str, says: str) -> None:
    with pytest.raises(HoursError, match=says):
        parse_hours(spec)


def test_open_and_next_opening_across_lunch_weekend_and_tet() -> None:
    h = hours(calendar=WorkCalendar())
    assert h.is_open(vn(2026, 3, 2, 9, 0))  # Monday morning
    assert not h.is_open(vn(2026, 3, 2, 12, 0))  # lunch break
    assert h.next_opening(vn(2026, 3, 2, 12, 0)) == vn(2026, 3, 2, 13, 30)
    assert h.next_opening(vn(2026, 3, 2, 9, 0)) == vn(2026, 3, 2, 9, 0)  # open: now
    # Friday evening → Saturday morning; Saturday noon → Monday.
    assert h.next_opening(vn(2026, 3, 6, 18, 0)) == vn(2026, 3, 7, 8, 0)
    assert h.next_opening(vn(2026, 3, 7, 12, 0)) == vn(2026, 3, 9, 7, 30)
    # Tết 2026: 16–20 February are days off (statutory), whatever the weekday says.
    assert h.next_opening(vn(2026, 2, 13, 17, 30)) == vn(2026, 2, 14, 8, 0)
    assert h.next_opening(vn(2026, 2, 14, 12, 0)) == vn(2026, 2, 21, 8, 0)  # Saturday after
    weekdays = hours("mon-fri 08:00-17:00")
    assert weekdays.next_opening(vn(2026, 2, 13, 17, 30)) == vn(2026, 2, 23, 8, 0)
    # A UTC time is read as Vietnam time (UTC+7): 01:00Z is 08:00 in Hà Nội.
    assert h.is_open(datetime.fromisoformat("2026-03-02T01:00:00+00:00"))


def test_calendar_days_off_close_and_make_up_days_open(tmp_path: Path) -> None:
    path = tmp_path / "calendar.yaml"
    path.write_text("calendar:\n  weekend: [sat, sun]\n  extra_days_off:\n"
                    "    - {date: 2026-03-04, name: Nghỉ bù}\n  extra_working_days:\n"
                    "    - {date: 2026-03-08, name: Làm bù}\n", encoding="utf-8")
    cal = WorkCalendar.load(path)
    h = WorkingHours(parse_hours("mon-fri 08:00-17:00"), cal)
    assert not h.is_open(vn(2026, 3, 4, 9, 0))  # an extra day off on a Wednesday
    assert h.next_opening(vn(2026, 3, 3, 18, 0)) == vn(2026, 3, 5, 8, 0)
    # Sunday 8 March is a make-up working day: a weekday's hours apply.
    assert h.next_opening(vn(2026, 3, 7, 10, 0)) == vn(2026, 3, 8, 8, 0)
    assert h.is_open(vn(2026, 3, 8, 16, 59))


def test_describe_opening_in_words() -> None:
    assert describe_opening(vn(2026, 3, 2, 12, 0), vn(2026, 3, 2, 13, 30)) == "13:30 hôm nay"
    assert describe_opening(vn(2026, 3, 2, 18, 0), vn(2026, 3, 3, 7, 30)) == \
        "7:30 sáng mai (thứ Ba, 03/03)"
    assert describe_opening(vn(2026, 3, 6, 18, 0), vn(2026, 3, 9, 8, 0)) == \
        "8:00 thứ Hai, ngày 09/03"
    assert describe_opening(vn(2026, 12, 31, 18, 0), vn(2027, 1, 4, 8, 0)) == \
        "8:00 thứ Hai, ngày 04/01/2027"


def test_nothing_opens_within_the_search_window() -> None:
    from datetime import timedelta

    from bot.handover import texts

    off = {date(2026, 3, 2) + timedelta(days=i): "x" for i in range(70)}
    h = WorkingHours(parse_hours("mon 08:00-09:00"), WorkCalendar(extra_days_off=off))
    assert h.next_opening(vn(2026, 3, 1, 10, 0)) is None
    assert "giờ làm việc tiếp theo" in texts.opened(h, vn(2026, 3, 1, 10, 0), "requested",
                                                    "18001096")
    # The calendar's weekend alone does not close a day the hours name.
    assert WorkingHours(parse_hours("mon 08:00-09:00"),
                        WorkCalendar(weekend=frozenset({0}))).next_opening(
        vn(2026, 3, 1, 10, 0)) == vn(2026, 3, 2, 8, 0)


# --------------------------------------------------------------------------- queue


def open_one(db: str, sender: str = "s-1", channel: str = "widget", **kw: object):
    args = {"sender_id": sender, "channel": channel,
            "address": sender.removeprefix("zalo-"), "reason": "requested",
            "after_hours": False, **kw}
    return queue.open_handover(db, **args)


def test_one_open_handover_per_conversation(db_url: str) -> None:
    first, created = open_one(db_url, context=[
        ("citizen", "đăng ký khai sinh cần gì", datetime(2026, 1, 1, 1, 0)),
        ("bot", "Hồ sơ cần chuẩn bị: …", datetime(2026, 1, 1, 1, 0, 1)),
        ("citizen", "cho tôi gặp cán bộ", datetime(2026, 1, 1, 1, 1))])
    assert created and first.status == "waiting"
    again, created = open_one(db_url, reason="fallback")
    assert not created and again.id == first.id and again.reason == "requested"
    assert queue.find_open(db_url, "s-1").id == first.id
    assert queue.find_open(db_url, "s-2") is None
    # The database itself refuses a second open row (two processes racing).
    with pytest.raises(IntegrityError), session_scope(db_url) as s:
        s.add(Handover(sender_id="s-1", channel="widget", address="s-1", reason="requested",
                       after_hours=False, status="held", created_at=datetime(2026, 1, 1)))
    detail = queue.get(db_url, first.id)
    assert [(m.author, m.text) for m in detail.messages] == [
        ("citizen", "đăng ký khai sinh cần gì"), ("bot", "Hồ sơ cần chuẩn bị: …"),
        ("citizen", "cho tôi gặp cán bộ")]
    assert all(m.delivery is None for m in detail.messages)
    queue.close(db_url, first.id, "cb.lan")
    assert queue.find_open(db_url, "s-1") is None
    second, created = open_one(db_url)  # a closed one does not block the next
    assert created and second.id != first.id


def test_citizen_messages_are_stored_with_one_acknowledgement(db_url: str) -> None:
    assert queue.route_citizen_message(db_url, "s-1", "xin chào", hours=None,
                                       with_pending=True) is None
    h, _ = open_one(db_url)
    r1 = queue.route_citizen_message(db_url, "s-1", "Tôi cần hỏi về sổ đỏ", hours=None,
                                     with_pending=True)
    assert r1 is not None and r1.state.status == "waiting"
    assert [m.author for m in r1.notes] == ["system"] and "cán bộ" in r1.notes[0].text
    assert r1.notes[0].public()["id"].startswith("hm-")
    r2 = queue.route_citizen_message(db_url, "s-1", "Co\u0300n ai không?", hours=None,
                                     with_pending=True)
    assert r2 is not None and r2.notes == []  # a single note, not one per message
    detail = queue.get(db_url, h.id)
    assert [m.author for m in detail.messages] == ["citizen", "system", "citizen"]
    assert detail.messages[-1].text == "Còn ai không?"  # NFC
    assert detail.handover.last_text == "Còn ai không?"
    assert detail.handover.last_citizen_message_at is not None
    # A channel event replayed after a crash is stored once.
    for _ in range(2):
        queue.route_citizen_message(db_url, "s-1", "lặp", hours=None, with_pending=True,
                                    external_id="zalo-inbox:7")
    assert [m.text for m in queue.get(db_url, h.id).messages].count("lặp") == 1


def test_after_hours_acknowledgement_says_when_staff_are_back(db_url: str) -> None:
    open_one(db_url, after_hours=True)
    closed = hours("mon 08:00-08:01")  # almost never open: the note names next Monday
    r = queue.route_citizen_message(db_url, "s-1", "để lại lời nhắn", hours=closed,
                                    with_pending=True)
    assert r is not None and r.state.after_hours
    assert "ghi lại lời nhắn" in r.notes[0].text and "8:00" in r.notes[0].text


def test_take_reply_close_rules(db_url: str) -> None:
    h, _ = open_one(db_url)
    held = queue.take(db_url, h.id, "cb.lan")
    assert (held.status, held.taken_by) == ("held", "cb.lan") and held.taken_at
    assert queue.take(db_url, h.id, "cb.lan").version == held.version  # own again: no-op
    with pytest.raises(Conflict, match="cb.lan đang hỗ trợ"):
        queue.take(db_url, h.id, "cb.minh")
    with pytest.raises(Conflict):
        queue.reply(db_url, h.id, "cb.minh", "Chào bạn")
    with pytest.raises(Conflict):
        queue.close(db_url, h.id, "cb.minh")
    _, message = queue.reply(db_url, h.id, "cb.lan", "  Chào bạn, mình là Lan.  ")
    assert (message.author, message.agent, message.text) == ("agent", "cb.lan",
                                                            "Chào bạn, mình là Lan.")
    assert "agent" not in message.public() or message.public()["author"] == "agent"
    assert "cb.lan" not in json.dumps(message.public())  # operator names stay inside
    with pytest.raises(HandoverError, match="trống"):
        queue.reply(db_url, h.id, "cb.lan", "   ")
    with pytest.raises(HandoverError, match="tối đa"):
        queue.reply(db_url, h.id, "cb.lan", "x" * (queue.MAX_TEXT_CHARS + 1))
    with pytest.raises(HandoverError):
        queue.take(db_url, h.id, " ")
    forced = queue.take(db_url, h.id, "cb.minh", force=True)  # a supervisor takes over
    assert forced.taken_by == "cb.minh"
    closed = queue.close(db_url, h.id, "cb.minh")
    assert (closed.status, closed.closed_by) == ("closed", "cb.minh")
    assert queue.close(db_url, h.id, "cb.lan").closed_by == "cb.minh"  # no-op when closed
    with pytest.raises(Conflict, match="đã được đóng"):
        queue.reply(db_url, h.id, "cb.minh", "còn đó không")
    with pytest.raises(Conflict):
        queue.take(db_url, h.id, "cb.minh")
    with pytest.raises(NotFound):
        queue.take(db_url, 999, "cb.lan")
    notes = [m.text for m in queue.get(db_url, h.id).messages if m.author == "system"]
    assert len(notes) == 3 and "kết thúc" in notes[-1]  # taken, taken over, closed


def test_reply_to_a_waiting_handover_takes_it(db_url: str) -> None:
    h, _ = open_one(db_url)
    view, _ = queue.reply(db_url, h.id, "cb.lan", "Mình nghe đây ạ")
    assert (view.status, view.taken_by) == ("held", "cb.lan")


def test_widget_delivery_state_cursor_and_pending(db_url: str) -> None:
    h, _ = open_one(db_url)
    queue.take(db_url, h.id, "cb.lan")
    _, m1 = queue.reply(db_url, h.id, "cb.lan", "Câu trả lời 1")
    state, pending = queue.after_turn(db_url, "s-1")
    assert state is not None and state.status == "held"
    assert [m.text for m in pending] == [queue.texts.TAKEN, "Câu trả lời 1"]
    assert queue.after_turn(db_url, "s-1")[1] == []  # handed over once
    assert queue.get(db_url, h.id).messages[-1].delivery == "delivered"
    _, m2 = queue.reply(db_url, h.id, "cb.lan", "Câu trả lời 2")
    assert [m.id for m in queue.undelivered_widget(db_url, {"s-1"})[0][1:]] == [m2.id]
    assert queue.undelivered_widget(db_url, {"other"}) == []
    state, after = queue.messages_after(db_url, "s-1", m1.id)
    assert [m.text for m in after] == ["Câu trả lời 2"] and state.status == "held"
    assert queue.undelivered_widget(db_url, {"s-1"}) == []  # the pull delivered it
    _, everything = queue.messages_after(db_url, "s-1", 0)
    assert [m.author for m in everything] == ["system", "agent", "agent"]  # staff only


def test_zalo_replies_go_through_the_durable_outbox(db_url: str) -> None:
    h, _ = open_one(db_url, sender="zalo-u1", channel="zalo")
    long = "Hồ sơ gồm tờ khai và giấy tờ tùy thân. " * 80  # > 2,000 characters
    queue.reply(db_url, h.id, "cb.lan", long)
    due = zalo_queue.due(db_url)
    assert [o.user_id for o in due] == ["u1"]  # one at a time per user, in order
    with session_scope(db_url) as s:
        bodies = [json.loads(b) for b in s.execute(
            select(ZaloOutbox.body).where(ZaloOutbox.user_id == "u1")
            .order_by(ZaloOutbox.id)).scalars()]
    assert len(bodies) >= 2 and all(len(b["text"]) <= 2000 for b in bodies)
    assert queue.after_turn(db_url, "zalo-u1")[1] == []  # never piggybacked
    detail = queue.get(db_url, h.id)
    assert detail.messages[-1].delivery == "pending"
    with session_scope(db_url) as s:
        ids = s.execute(select(ZaloOutbox.id).where(ZaloOutbox.user_id == "u1")).scalars()
        ids = list(ids)
    for oid in ids:
        zalo_queue.mark_sent(db_url, oid, "zmsg")
    assert queue.get(db_url, h.id).messages[-1].delivery == "delivered"
    queue.close(db_url, h.id, "cb.lan")
    with session_scope(db_url) as s:
        last = s.execute(select(ZaloOutbox).order_by(ZaloOutbox.id.desc())).scalars().first()
        zalo_queue.mark_failed(db_url, last.id, True, "-230: user not interacted", 0)
    assert queue.get(db_url, h.id).messages[-1].delivery == "failed"


def test_lists_previews_and_changes_since(db_url: str) -> None:
    v0 = queue.current_version(db_url)
    a, _ = open_one(db_url, sender="s-a")
    b, _ = open_one(db_url, sender="s-b", channel="web", reason="fallback")
    queue.route_citizen_message(db_url, "s-b", "x" * 300, hours=None, with_pending=False)
    assert [h.id for h in queue.list_open(db_url)] == [a.id, b.id]
    assert queue.list_open(db_url)[1].last_text.endswith("…")
    changes = queue.changes_since(db_url, v0)
    assert {h.id for h in changes.handovers} == {a.id, b.id}
    assert changes.version == queue.current_version(db_url) > v0
    queue.close(db_url, a.id, "cb.lan")
    later = queue.changes_since(db_url, changes.version)
    assert [(h.id, h.status) for h in later.handovers] == [(a.id, "closed")]
    assert queue.changes_since(db_url, later.version).handovers == []
    page = queue.changes_since(db_url, v0, limit=1)  # a short page resumes after itself
    assert len(page.handovers) == 1 and page.version < later.version
    assert [h.id for h in queue.list_open(db_url)] == [b.id]
    assert [h.id for h in queue.list_handovers(db_url, status="closed")] == [a.id]
    assert [h.id for h in queue.list_handovers(db_url, channel="web")] == [b.id]
    assert [h.id for h in queue.list_handovers(db_url, before_id=b.id)] == [a.id]
    assert json.loads(json.dumps(queue.get(db_url, b.id).as_dict()))["reason"] == "fallback"


def test_threads_of_a_conversation_in_a_fixed_number_of_queries(db_url: str) -> None:
    """The console's conversation reader: every hand-over of one sender with its own thread,
    newest first, read with the same few queries however many hand-overs there are (it
    used to read each thread with its own queries)."""
    from sqlalchemy import event

    from bot.catalog.db import get_engine

    ids = []
    for n in range(3):
        h, _ = open_one(db_url, sender="s-many")
        queue.reply(db_url, h.id, "cb.lan", f"trả lời {n}")
        queue.close(db_url, h.id, "cb.lan")
        ids.append(h.id)
    open_one(db_url, sender="s-other")
    statements: list[str] = []

    def count(*args: object) -> None:
        statements.append(str(args[2]))

    engine = get_engine(db_url)
    event.listen(engine, "before_cursor_execute", count)
    try:
        threads = queue.threads_of(db_url, "s-many")
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert [t.handover.id for t in threads] == ids[::-1]
    for n, thread in zip(range(2, -1, -1), threads, strict=True):
        assert [m.text for m in thread.messages if m.author == "agent"] == [f"trả lời {n}"]
        assert thread.messages == queue.get(db_url, thread.handover.id).messages
    assert len(statements) <= 4, statements  # hand-overs, previews, messages
    assert queue.threads_of(db_url, "s-nobody") == []


def test_citizen_can_go_back_to_the_assistant(db_url: str) -> None:
    assert queue.cancel_by_citizen(db_url, "s-1") is None
    h, _ = open_one(db_url)
    queue.take(db_url, h.id, "cb.lan")
    view = queue.cancel_by_citizen(db_url, "s-1")
    assert (view.status, view.closed_by) == ("closed", "citizen")
    assert "quay lại trò chuyện với trợ lý ảo" in queue.get(db_url, h.id).messages[-1].text


async def test_change_feed_wakes_on_changes_from_another_process(db_url: str) -> None:
    """A change written by someone else (a thread standing in for the action server) wakes
    a waiting page within the poll interval."""
    feed = ChangeFeed(lambda: asyncio.to_thread(queue.current_version, db_url), 0.05)
    feed.version = queue.current_version(db_url)
    seen: list[int] = []

    async def listener(version: int) -> None:
        seen.append(version)

    feed.on_change(listener)
    feed.start()
    try:
        start = feed.version
        assert await feed.wait(start, timeout=0.2) == start  # nothing changed: times out
        threading.Thread(target=open_one, args=(db_url,)).start()
        assert await feed.wait(start, timeout=5) > start
        assert seen and seen[-1] == feed.version
        await feed.publish(feed.version + 10)  # an in-process change: at once
        assert await asyncio.wait_for(feed.wait(feed.version - 1), 0.1) == feed.version
    finally:
        await feed.stop()

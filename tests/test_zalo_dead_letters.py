"""Per-item failure handling in the Zalo worker (issue 18 item 10): retries with backoff, a
dead-letter state after ZALO_MAX_ATTEMPTS or ZALO_MAX_AGE_HOURS, and the rest keeps flowing.

Before: one event whose answering always raised failed every round of `process_inbox` (so
the events behind it were never answered, and `deliver` never ran), a reply whose sending
raised did the same to the replies behind it, and a reply Zalo kept refusing (not a
permanent refusal) was retried forever, holding back the user's later replies.

A real SQLite database, the fake Zalo OA on loopback and a stub assistant: no Rasa.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
from sqlalchemy import update

from bot.catalog.db import session_scope
from bot.catalog.models import ZaloInbox, ZaloOutbox
from bot.channels.zalo import channel as zalo_channel
from bot.channels.zalo import queue
from bot.channels.zalo.channel import ZaloChannel, deliver, process_inbox
from bot.channels.zalo.client import MemoryTokenStore, ZaloClient
from bot.config import Settings
from bot.gateway.rasa_client import RasaUnavailable
from tests.zalo_fake import FakeZalo

POISON = "câu làm hỏng trợ lý"


class StubRasa:
    """Answers every text, except that `POISON` always raises (a bug on one message) and
    `down` makes every call fail like an unreachable assistant."""

    def __init__(self) -> None:
        self.down = False
        self.asked: list[str] = []

    async def send(self, sender: str, text: str, metadata: dict[str, Any]) -> list[dict]:
        self.asked.append(text)
        if self.down:
            raise RasaUnavailable("connection refused")
        if text == POISON:
            # The message quotes the citizen: what is recorded must be masked.
            raise KeyError(f"no text in the answer to {sender}, sđt 0912 345 678")
        return [{"text": f"Trả lời: {text}", "buttons": []}]


def text_event(user: str, msg_id: str, text: str) -> bytes:
    return json.dumps({"event_name": "user_send_text", "sender": {"id": user},
                       "recipient": {"id": "oa"}, "timestamp": "1700000000000",
                       "message": {"msg_id": msg_id, "text": text}}).encode()


def receive(db_url: str, user: str, msg_id: str, text: str) -> int:
    assert queue.record_event(db_url, msg_id, user, text_event(user, msg_id, text))
    with session_scope(db_url) as s:
        return s.query(ZaloInbox.id).filter(ZaloInbox.dedup_key == msg_id).scalar()


def inbox_row(db_url: str, inbox_id: int) -> dict[str, Any]:
    with session_scope(db_url) as s:
        row = s.get(ZaloInbox, inbox_id)
        return {"attempts": row.attempts, "dead": row.dead_at is not None,
                "processed": row.processed_at is not None, "error": row.last_error or "",
                "waits": row.next_attempt_at is not None}


def outbox_rows(db_url: str, user: str) -> list[tuple[str, str, int]]:
    """(text, status, attempts) of a user's replies, in order."""
    with session_scope(db_url) as s:
        rows = s.query(ZaloOutbox).filter(ZaloOutbox.user_id == user).order_by(ZaloOutbox.id)
        return [(json.loads(r.body).get("text", ""), r.status, r.attempts) for r in rows]


def make_due(db_url: str) -> None:
    """Skip the backoff: every waiting event and reply is due now."""
    past = queue.utcnow() - timedelta(seconds=1)
    with session_scope(db_url) as s:
        s.execute(update(ZaloInbox).values(next_attempt_at=None))
        s.execute(update(ZaloOutbox).where(ZaloOutbox.status == "pending")
                  .values(next_attempt_at=past))


def age(db_url: str, hours: float) -> None:
    """Everything queued arrived `hours` ago."""
    then = queue.utcnow() - timedelta(hours=hours)
    with session_scope(db_url) as s:
        s.execute(update(ZaloInbox).values(received_at=then))
        s.execute(update(ZaloOutbox).values(created_at=then))


@pytest.fixture
async def zalo() -> AsyncIterator[FakeZalo]:
    async with FakeZalo() as fake:
        yield fake


@pytest.fixture
async def channel(db_url: str, zalo: FakeZalo) -> AsyncIterator[ZaloChannel]:
    settings = Settings(database_url=db_url, zalo_max_attempts=3, zalo_max_age_hours=24.0)
    rasa = StubRasa()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
        client = ZaloClient(session, MemoryTokenStore(zalo.access_token, zalo.refresh_token),
                            zalo.app_id, zalo.app_secret, zalo.base_url, zalo.base_url,
                            max_attempts=1, base_delay=0.01)
        yield ZaloChannel(settings, client, lambda: rasa)  # type: ignore[arg-type, return-value]


# --------------------------------------------------------------------------- the inbox


async def test_an_event_that_always_fails_is_retried_then_set_aside(
        db_url: str, channel: ZaloChannel) -> None:
    poison = receive(db_url, "u1", "m1", POISON)
    other = receive(db_url, "u2", "m2", "xin chào")
    later = receive(db_url, "u1", "m3", "câu hỏi sau")

    assert await process_inbox(channel) == 1  # u2 is answered in the same round
    assert inbox_row(db_url, other)["processed"]
    first = inbox_row(db_url, poison)
    assert first["attempts"] == 1 and first["waits"] and not first["dead"]
    assert "KeyError" in first["error"] and "channel.py" not in first["error"]  # raised here
    assert "test_zalo_dead_letters.py" in first["error"]  # where it was raised
    assert "345 678" not in first["error"] and "0912" not in first["error"]  # masked
    # u1's later message waits behind the failed one (order), without being tried.
    assert not inbox_row(db_url, later)["processed"]
    assert await process_inbox(channel) == 0  # backoff: nothing due yet

    for attempt in (2, 3):
        make_due(db_url)
        await process_inbox(channel)
        assert inbox_row(db_url, poison)["attempts"] == attempt
    assert inbox_row(db_url, poison)["dead"]  # ZALO_MAX_ATTEMPTS = 3
    assert inbox_row(db_url, later)["processed"]  # u1's next message went on
    replies = [text for text, _, _ in outbox_rows(db_url, "u1")]
    assert replies == ["Trả lời: câu hỏi sau"]
    [dead] = queue.dead_letters(db_url)
    assert (dead.kind, dead.id, dead.user_id, dead.what, dead.attempts) == (
        "event", poison, "u1", "user_send_text", 3)


async def test_a_failing_event_older_than_the_maximum_age_is_set_aside_at_once(
        db_url: str, channel: ZaloChannel) -> None:
    poison = receive(db_url, "u1", "m1", POISON)
    age(db_url, 25)
    await process_inbox(channel)
    assert inbox_row(db_url, poison) | {"error": ""} == {
        "attempts": 1, "dead": True, "processed": False, "error": "", "waits": True}


async def test_an_unavailable_assistant_costs_no_attempt_but_the_age_limit_holds(
        db_url: str, channel: ZaloChannel) -> None:
    rasa = channel.rasa()
    rasa.down = True  # type: ignore[attr-defined]
    fresh = receive(db_url, "u1", "m1", "xin chào")
    for _ in range(3):
        assert await process_inbox(channel) == 0
    assert inbox_row(db_url, fresh) == {"attempts": 0, "dead": False, "processed": False,
                                        "error": "", "waits": False}
    age(db_url, 25)
    await process_inbox(channel)
    row = inbox_row(db_url, fresh)
    assert row["dead"] and row["attempts"] == 0 and "RasaUnavailable" in row["error"]


async def test_an_admin_sends_a_dead_event_back_with_a_fresh_start(
        db_url: str, channel: ZaloChannel) -> None:
    poison = receive(db_url, "u1", "m1", POISON)
    age(db_url, 25)
    await process_inbox(channel)
    assert inbox_row(db_url, poison)["dead"]
    assert queue.retry_dead_letter(db_url, "event", poison)
    assert not queue.retry_dead_letter(db_url, "event", poison)  # already back in the queue
    assert queue.dead_letters(db_url) == []
    await process_inbox(channel)  # fails again, but its age now counts from the retry
    row = inbox_row(db_url, poison)
    assert row["attempts"] == 1 and not row["dead"]
    assert queue.discard_dead_letter(db_url, "event", poison) is False  # not dead now
    for _ in range(2):
        make_due(db_url)
        await process_inbox(channel)
    assert inbox_row(db_url, poison)["dead"]
    assert queue.discard_dead_letter(db_url, "event", poison)
    assert inbox_row(db_url, poison)["processed"] and queue.dead_letters(db_url) == []
    assert queue.unprocessed(db_url) == []


# --------------------------------------------------------------------------- the outbox


async def test_a_reply_zalo_keeps_refusing_becomes_a_dead_letter(
        db_url: str, channel: ZaloChannel, zalo: FakeZalo) -> None:
    """Not a permanent refusal (an unknown code): retried, but not forever."""
    inbox_id = receive(db_url, "u1", "m1", "x")
    queue.complete(db_url, inbox_id, "u1", [("text", {"text": "một"}), ("text", {"text": "hai"})])
    zalo.error_next(3, code=-999)
    for attempt in (1, 2, 3):
        assert await deliver(channel) == 0
        assert outbox_rows(db_url, "u1")[0][1:] == (
            "pending" if attempt < 3 else "dead", attempt)
        make_due(db_url)
    assert await deliver(channel) == 1  # the user's next reply is no longer held back
    assert [m.text for m in zalo.messages_to("u1")] == ["hai"]
    [dead] = queue.dead_letters(db_url)
    assert (dead.kind, dead.what, dead.attempts, dead.error) == (
        "reply", "text", 3, "-999: fake error")
    # An admin sends it again once Zalo takes it.
    assert queue.retry_dead_letter(db_url, "reply", dead.id)
    assert await deliver(channel) == 1
    assert [m.text for m in zalo.messages_to("u1")] == ["hai", "một"]
    assert outbox_rows(db_url, "u1")[0][1] == "sent"


async def test_an_old_reply_stops_being_retried(db_url: str, channel: ZaloChannel,
                                                zalo: FakeZalo) -> None:
    inbox_id = receive(db_url, "u1", "m1", "x")
    queue.complete(db_url, inbox_id, "u1", [("text", {"text": "một"})])
    age(db_url, 25)
    zalo.error_next(1, code=-999)
    await deliver(channel)
    assert outbox_rows(db_url, "u1") == [("một", "dead", 1)]
    assert queue.discard_dead_letter(db_url, "reply", queue.dead_letters(db_url)[0].id)
    assert outbox_rows(db_url, "u1") == [("một", "discarded", 1)]
    assert queue.dead_letters(db_url) == []


async def test_a_reply_that_cannot_even_be_sent_does_not_stop_the_others(
        db_url: str, channel: ZaloChannel, zalo: FakeZalo) -> None:
    """A blank text makes the client raise (ValueError): before, the whole round failed on
    it every time and every reply queued after it waited forever."""
    first = receive(db_url, "u1", "m1", "x")
    second = receive(db_url, "u2", "m2", "y")
    queue.complete(db_url, first, "u1", [("text", {"text": "   "})])
    queue.complete(db_url, second, "u2", [("text", {"text": "cho u2"})])
    assert await deliver(channel) == 1
    assert [m.text for m in zalo.messages_to("u2")] == ["cho u2"]
    [(_, status, attempts)] = outbox_rows(db_url, "u1")
    assert (status, attempts) == ("pending", 1)
    with session_scope(db_url) as s:
        error = s.query(ZaloOutbox.last_error).filter(ZaloOutbox.user_id == "u1").scalar()
    assert error.startswith("None: ValueError: empty text (client.py:")


async def test_the_worker_delivers_even_when_answering_fails(
        db_url: str, channel: ZaloChannel, zalo: FakeZalo, monkeypatch) -> None:  # noqa: ANN001
    """A round whose answering step fails (here: the database is away for the inbox) still
    sends the replies already queued."""
    done = receive(db_url, "u2", "m0", "y")
    queue.complete(db_url, done, "u2", [("text", {"text": "cho u2"})])
    receive(db_url, "u1", "m1", POISON)

    def broken(url: str, limit: int = 0) -> list:
        raise RuntimeError("inbox unreadable")

    monkeypatch.setattr(queue, "pending_events", broken, raising=False)
    monkeypatch.setattr(queue, "unprocessed_by_user", broken)  # the same step, before the fix
    task = asyncio.create_task(zalo_channel._worker(channel))
    channel.wake.set()
    try:
        for _ in range(40):
            if zalo.messages_to("u2"):
                break
            await asyncio.sleep(0.05)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert [m.text for m in zalo.messages_to("u2")] == ["cho u2"]


def test_handover_notes_given_up_on_show_as_failed() -> None:
    assert {"undeliverable", "dead", "discarded"} <= queue.GIVEN_UP

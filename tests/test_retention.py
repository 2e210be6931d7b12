"""Data retention (RETENTION_DAYS): citizen data older than the limit is deleted, the rest
stays, on SQLite and PostgreSQL, by `bot retention run` and by the gateway by itself.

Every table is filled with rows on both sides of the limit, plus the rows that must survive
although old: a conversation with a recent turn (kept whole), Zalo work still pending, an
open hand-over and the reply its thread shows. Rasa's `events` table is Rasa's own
(`SQLTrackerStore.SQLEvent`), and one test goes through Rasa's tracker store itself.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, insert, select

from bot.catalog.db import get_engine, session_scope
from bot.catalog.models import Feedback, StatusLookup, ZaloInbox, ZaloOutbox
from bot.cli import main
from bot.config import Settings
from bot.console.conversations import EVENTS
from bot.console.inbox_models import NluReview
from bot.console.models import AuditEntry
from bot.gateway.app import create_app
from bot.handover.models import Handover, HandoverMessage
from bot.registry import locks
from bot.retention import runs
from bot.retention.purge import TABLES, purge
from bot.timeutil import utcnow
from tests.conftest import free_port, throwaway_postgres

DAYS = 180
NOW = utcnow()
OLD = NOW - timedelta(days=DAYS + 20)
RECENT = NOW - timedelta(days=DAYS - 20)
MINUTE = timedelta(minutes=1)


def ts(at: datetime) -> float:
    return at.replace(tzinfo=timezone.utc).timestamp()


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, db_url: str) -> Iterator[str]:
    if request.param == "sqlite":
        yield db_url
        return
    with throwaway_postgres("dvc_retention") as pg_url:
        yield pg_url


def rasa_events_table(url: str) -> None:
    """Rasa's own `events` table, as its SQL tracker store creates it."""
    from rasa.core.tracker_store import SQLTrackerStore

    SQLTrackerStore.SQLEvent.__table__.create(get_engine(url), checkfirst=True)


def add_events(url: str, sender: str, *times: datetime) -> None:
    with session_scope(url) as s:
        s.execute(insert(EVENTS), [
            {"sender_id": sender, "type_name": "user", "timestamp": ts(at),
             "data": '{"event": "user", "text": "CCCD 001099012345"}'} for at in times])


def populate(url: str) -> None:
    """Rows on both sides of the limit in every table (the markers name what each is)."""
    rasa_events_table(url)
    add_events(url, "gone-1", OLD, OLD + MINUTE)
    add_events(url, "gone-2", OLD)
    add_events(url, "mixed", OLD, OLD + MINUTE, RECENT)  # came back: kept whole
    add_events(url, "fresh", RECENT)
    with session_scope(url) as s:
        for sender in ("gone-1", "mixed"):
            s.add(NluReview(sender_id=sender, event_id=1, status="ignored", reviewed_by="lan",
                            reviewed_at=OLD))

        def outbox(marker: str, status: str, created: datetime, **kw: object) -> ZaloOutbox:
            row = ZaloOutbox(user_id=marker, kind="text", body='{"text": "Dạ, chào anh"}',
                             status=status, attempts=1, next_attempt_at=created,
                             created_at=created, **kw)
            s.add(row)
            return row

        def inbox(marker: str, received: datetime, **kw: object) -> ZaloInbox:
            row = ZaloInbox(dedup_key=marker, user_id="84901", event='{"text": "SĐT 0901"}',
                            received_at=received, **kw)
            s.add(row)
            return row

        inbox("answered-old", OLD, processed_at=OLD)
        inbox("dead-old", OLD, dead_at=OLD, attempts=20)
        inbox("discarded-old", OLD, dead_at=OLD, processed_at=OLD + MINUTE)
        inbox("pending-old", OLD)  # waiting for its answer: pending work
        inbox("answered-recent", RECENT, processed_at=RECENT)
        waiting = inbox("answered-with-pending-reply", OLD, processed_at=OLD)
        s.flush()
        outbox("pending-of-answered", "pending", OLD, inbox_id=waiting.id)
        outbox("sent-old", "sent", OLD, sent_at=OLD)
        outbox("dead-old", "dead", OLD, dead_at=OLD)
        outbox("undeliverable-old", "undeliverable", OLD)
        outbox("discarded-old", "discarded", OLD, dead_at=OLD)
        outbox("pending-old", "pending", OLD)
        outbox("sent-recent", "sent", RECENT, sent_at=RECENT)
        outbox("sent-late", "sent", OLD, sent_at=RECENT)  # delivered after retries
        shown = outbox("shown-by-open-handover", "sent", OLD, sent_at=OLD)
        s.flush()

        def handover(marker: str, status: str, closed_at: datetime | None,
                     outbox_id: int | None = None) -> None:
            s.add(Handover(sender_id=marker, channel="zalo", address="84901",
                           reason="requested", after_hours=False, status=status,
                           created_at=OLD, closed_at=closed_at, messages=[
                               HandoverMessage(author="citizen", text="tôi tên Nguyễn Văn A",
                                               created_at=OLD),
                               HandoverMessage(author="agent", agent="lan", text="Dạ",
                                               created_at=OLD, outbox_id=outbox_id)]))

        handover("closed-old", "closed", OLD + MINUTE)
        handover("closed-recently", "closed", RECENT)
        handover("open-old", "waiting", None, outbox_id=shown.id)
        for marker, at in (("old", OLD), ("new", RECENT)):
            s.add(Feedback(session="w-1", message_id=marker, rating="down", text="Trả lời sai",
                           channel="widget", created_at=at))
            s.add(StatusLookup(client="k", code=marker, looked_up_at=at))


def remaining(url: str) -> dict[str, object]:
    """What is left, by marker (conversations: sender -> number of events)."""
    with session_scope(url) as s:
        def markers(column: object) -> set[str]:
            return set(s.execute(select(column)).scalars())

        return {
            "events": dict(s.execute(select(EVENTS.c.sender_id, func.count())
                                     .group_by(EVENTS.c.sender_id)).all()),
            "nlu_reviews": markers(NluReview.sender_id),
            "handovers": markers(Handover.sender_id),
            "handover_messages": s.execute(select(func.count(HandoverMessage.id))).scalar(),
            "zalo_outbox": markers(ZaloOutbox.user_id),
            "zalo_inbox": markers(ZaloInbox.dedup_key),
            "feedback": markers(Feedback.message_id),
            "status_lookups": markers(StatusLookup.code),
        }


KEPT = {
    "events": {"mixed": 3, "fresh": 1},
    "nlu_reviews": {"mixed"},
    "handovers": {"closed-recently", "open-old"},
    "handover_messages": 4,
    "zalo_outbox": {"pending-of-answered", "pending-old", "sent-recent", "sent-late",
                    "shown-by-open-handover"},
    "zalo_inbox": {"pending-old", "answered-recent", "answered-with-pending-reply"},
    "feedback": {"new"},
    "status_lookups": {"new"},
}
DELETED = {"events": 3, "nlu_reviews": 1, "handover_messages": 2, "handovers": 1,
           "zalo_outbox": 4, "zalo_inbox": 3, "feedback": 1, "status_lookups": 1}


def test_old_rows_go_and_the_rest_stays(url: str) -> None:
    populate(url)
    before = remaining(url)
    dry = purge(url, DAYS, dry_run=True)
    assert remaining(url) == before  # a dry run deletes nothing...
    assert (dry.deleted, dry.conversations) == (DELETED, 2)  # ...and counts what will go

    report = purge(url, DAYS)
    assert (report.deleted, report.conversations, report.complete) == (DELETED, 2, True)
    assert remaining(url) == KEPT
    assert purge(url, DAYS).total == 0  # nothing left to delete


def test_a_conversation_goes_whole_or_not_at_all(db_url: str) -> None:
    """Its last event decides: a sender with one recent event keeps every old one."""
    rasa_events_table(db_url)
    add_events(db_url, "web-back", OLD, OLD + MINUTE, NOW - timedelta(days=DAYS) + MINUTE)
    add_events(db_url, "web-left", OLD, NOW - timedelta(days=DAYS) - MINUTE)
    report = purge(db_url, DAYS, now=NOW)
    assert (report.deleted["events"], report.conversations) == (2, 1)
    assert remaining(db_url)["events"] == {"web-back": 3}


def test_rasa_tracker_store(tmp_path: Path) -> None:
    """Through Rasa's own store: an old conversation is gone, one with a recent turn comes
    back with every event."""
    from rasa.core.tracker_store import SQLTrackerStore
    from rasa.shared.core.domain import Domain
    from rasa.shared.core.events import ActionExecuted, BotUttered, UserUttered
    from rasa.shared.core.trackers import DialogueStateTracker

    path = tmp_path / "rasa.sqlite3"

    def turn(at: datetime) -> list:
        t = ts(at)
        return [ActionExecuted("action_listen", timestamp=t),
                UserUttered("lệ phí làm căn cước", timestamp=t + 1),
                BotUttered("Lệ phí là 30.000 đồng.", timestamp=t + 2)]

    async def save_and_read() -> tuple[object, object]:
        store = SQLTrackerStore(Domain.empty(), dialect="sqlite", db=str(path))
        await store.save(DialogueStateTracker.from_events("web-old", turn(OLD), []))
        await store.save(DialogueStateTracker.from_events(
            "web-back", turn(OLD) + turn(RECENT), []))
        store.engine.dispose()
        report = purge(f"sqlite:///{path}", DAYS)
        assert (report.deleted["events"], report.conversations) == (3, 1)
        return (await store.retrieve_full_tracker("web-old"),
                await store.retrieve_full_tracker("web-back"))

    gone, back = asyncio.run(save_and_read())
    assert gone is None
    assert [e.timestamp for e in back.events] == [e.timestamp for e in turn(OLD) + turn(RECENT)]


def test_batches_are_short_transactions_and_a_run_stops_between_them(db_url: str) -> None:
    rasa_events_table(db_url)
    for i in range(7):
        add_events(db_url, f"old-{i}", OLD, OLD + MINUTE)
    with session_scope(db_url) as s:
        s.add_all(Feedback(session="w", message_id=str(i), rating="up", created_at=OLD)
                  for i in range(23))

    def left() -> tuple[int, int]:
        r = remaining(db_url)
        return len(r["events"]), len(r["feedback"])

    seen: list[tuple[int, int]] = []

    def keep_going() -> bool:  # asked after each full batch, after its commit
        seen.append(left())
        return True

    report = purge(db_url, DAYS, batch=5, keep_going=keep_going)
    assert seen == [(2, 23), (0, 18), (0, 13), (0, 8), (0, 3)]
    assert (report.conversations, report.deleted["events"], report.deleted["feedback"]) == \
        (7, 14, 23)

    for i in range(7):
        add_events(db_url, f"again-{i}", OLD)
    stopped = purge(db_url, DAYS, batch=5, keep_going=lambda: False)
    assert (stopped.complete, stopped.conversations, left()) == (False, 5, (2, 0))


def test_setting() -> None:
    assert Settings.from_env({}).retention_days == 180
    assert Settings.from_env({"RETENTION_DAYS": "30"}).retention_days == 30
    assert Settings.from_env({"RETENTION_DAYS": "0"}).retention_days == 0
    with pytest.raises(SystemExit, match="RETENTION_DAYS must be at least 0"):
        Settings.from_env({"RETENTION_DAYS": "-1"})
    with pytest.raises(ValueError):
        purge("sqlite://", 0)  # 0 means "keep forever", never "everything is old"


@pytest.fixture()
def cli_env(db_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("RETENTION_DAYS", str(DAYS))
    populate(db_url)
    return db_url


def test_cli_dry_run_then_run(cli_env: str, capsys: pytest.CaptureFixture[str]) -> None:
    before = remaining(cli_env)
    assert main(["retention", "run", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"Chạy thử (--dry-run), chưa xoá gì. Dữ liệu cũ hơn {DAYS} ngày")
    assert "  events                    3  (2 cuộc hội thoại)\n" in out
    assert "  zalo_outbox               4\n" in out
    assert out.endswith("Tổng cộng: 16 dòng.\n")
    assert remaining(cli_env) == before

    assert main(["retention", "run"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"Đã xoá dữ liệu cũ hơn {DAYS} ngày (trước ")
    assert [line.split()[0] for line in out.splitlines()[1:-1]] == list(TABLES)
    assert out.endswith("Tổng cộng: 16 dòng.\n")
    assert remaining(cli_env) == KEPT
    with session_scope(cli_env) as s:
        entry = s.execute(select(AuditEntry)).scalar_one()
    assert (entry.action, entry.actor.split(":")[0], entry.target) == (
        "retention.run", "cli", f"{DAYS} ngày")
    assert '"zalo_inbox": 3' in entry.detail

    assert main(["retention", "run", "--json"]) == 0
    assert '"total": 0' in capsys.readouterr().out


def test_cli_keep_forever_and_busy(cli_env: str, monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    before = remaining(cli_env)
    monkeypatch.setenv("RETENTION_DAYS", "0")
    assert main(["retention", "run"]) == 0
    assert "giữ vĩnh viễn" in capsys.readouterr().out
    assert remaining(cli_env) == before

    monkeypatch.setenv("RETENTION_DAYS", str(DAYS))
    locks.acquire(cli_env, runs.LOCK_NAME, "retention:other-gateway", pid=os.getpid())
    assert main(["retention", "run"]) == 1
    assert "retention:other-gateway" in capsys.readouterr().err
    assert remaining(cli_env) == before


def test_one_run_a_day_whatever_the_number_of_gateways(db_url: str) -> None:
    populate(db_url)
    stop = threading.Event()
    locks.acquire(db_url, runs.LOCK_NAME, "retention:other-gateway", pid=os.getpid())
    assert runs.scheduled_run(db_url, DAYS, stop) is None  # another one is running it
    locks.release(db_url, runs.LOCK_NAME, "retention:other-gateway")
    assert runs.scheduled_run(db_url, DAYS, stop).deleted == DELETED
    assert locks.read_lock(db_url, runs.LOCK_NAME) is None  # released
    populate_more_old_feedback(db_url)
    assert runs.scheduled_run(db_url, DAYS, stop) is None  # done today
    assert "again" in remaining(db_url)["feedback"]


def populate_more_old_feedback(url: str) -> None:
    with session_scope(url) as s:
        s.add(Feedback(session="w", message_id="again", rating="up", created_at=OLD))


async def test_the_gateway_runs_it_by_itself(db_url: str,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Registered in create_app: old data goes a moment after start, without a cron; the
    hourly checks that follow find it done for the day."""
    populate(db_url)
    monkeypatch.setattr(runs, "FIRST_CHECK_AFTER", 0.0)
    monkeypatch.setattr(runs, "CHECK_EVERY", 0.05)
    settings = Settings.from_env({"DATABASE_URL": db_url, "RETENTION_DAYS": str(DAYS),
                                  "RASA_URL": f"http://127.0.0.1:{free_port()}",
                                  "ACTIONS_URL": f"http://127.0.0.1:{free_port()}"})
    async with TestClient(TestServer(create_app(settings))):
        for _ in range(200):
            if remaining(db_url) == KEPT:
                break
            await asyncio.sleep(0.05)
        assert remaining(db_url) == KEPT
        populate_more_old_feedback(db_url)
        await asyncio.sleep(0.3)  # several checks
        assert "again" in remaining(db_url)["feedback"]
    with session_scope(db_url) as s:
        actors = s.execute(select(AuditEntry.actor).where(
            AuditEntry.action == "retention.run")).scalars().all()
    assert actors == ["system:retention"]


async def test_keep_forever_starts_no_task(db_url: str) -> None:
    ctx = runs.retention_ctx(Settings(database_url=db_url, retention_days=0))
    steps = ctx(web.Application())
    await steps.__anext__()
    assert not [t for t in asyncio.all_tasks() if t.get_name() == "retention"]
    with pytest.raises(StopAsyncIteration):
        await steps.__anext__()

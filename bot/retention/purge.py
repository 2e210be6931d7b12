"""Deleting what is older than the retention limit, table by table, in short batches.

Blocking SQLAlchemy (run it in a thread from the event loop). Each batch is one transaction
and its DELETE checks the condition again: a row that changed since it was selected (a dead
letter retried, a citizen back in an old conversation) stays.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import and_, delete, exists, func, or_, select
from sqlalchemy.orm import Session
from sqlalchemy.sql import Select
from sqlalchemy.sql.elements import ColumnElement

from bot.catalog.db import session_scope
from bot.catalog.models import Feedback, StatusLookup, ZaloInbox, ZaloOutbox
from bot.console.conversations import EVENTS, events_table_exists
from bot.console.inbox_models import NluReview
from bot.handover.models import CLOSED, Handover, HandoverMessage
from bot.timeutil import utcnow

BATCH = 200  # rows (or conversations) per transaction
# Outbox statuses of a reply that is done with (bot.channels.zalo.queue): never "pending".
FINISHED_REPLIES = ("sent", "undeliverable", "dead", "discarded")
# The tables, in the order they are purged (a thread before the replies it shows).
TABLES = ("events", "nlu_reviews", "handover_messages", "handovers", "zalo_outbox",
          "zalo_inbox", "feedback", "status_lookups")

E = EVENTS.c


@dataclass
class RetentionReport:
    """What one run deleted (or, dry, would delete), per table."""

    days: int
    cutoff: datetime  # naive UTC: older than this goes
    dry_run: bool
    deleted: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TABLES, 0))
    conversations: int = 0  # senders whose events went
    complete: bool = True  # False: stopped between two batches (shutdown, lock lost)

    @property
    def total(self) -> int:
        return sum(self.deleted.values())

    def as_dict(self) -> dict[str, Any]:
        return {"days": self.days, "cutoff": self.cutoff.isoformat(timespec="seconds") + "Z",
                "dry_run": self.dry_run, "complete": self.complete,
                "conversations": self.conversations, "deleted": dict(self.deleted),
                "total": self.total}


class Stopped(Exception):
    """The run was asked to stop between two batches."""


def cutoff_for(days: int, now: datetime | None = None) -> datetime:
    """The instant (naive UTC) before which data is older than `days` days."""
    return (now or utcnow()) - timedelta(days=days)


@dataclass(frozen=True)
class _Run:
    """One run's parameters; `keep_going` is asked after every full batch."""

    url: str
    cutoff: datetime
    batch: int
    dry_run: bool
    keep_going: Callable[[], bool]

    @property
    def cutoff_ts(self) -> float:
        """The cutoff as Rasa stores times (Unix seconds, float)."""
        return self.cutoff.replace(tzinfo=timezone.utc).timestamp()

    def next_batch(self) -> None:
        if not self.keep_going():
            raise Stopped


def purge(database_url: str, days: int, *, dry_run: bool = False, batch: int = BATCH,
          now: datetime | None = None,
          keep_going: Callable[[], bool] = lambda: True) -> RetentionReport:
    """Delete (or count, `dry_run`) what is older than `days` days; blocking, in batches.

    No lock is taken here (`locked_run` does): every DELETE checks its condition again, so
    two runs at once only share the work.
    """
    if days <= 0:
        raise ValueError("days must be positive (0 keeps everything: nothing to purge)")
    run = _Run(database_url, cutoff_for(days, now), max(1, batch), dry_run, keep_going)
    report = RetentionReport(days, run.cutoff, dry_run)
    try:
        _conversations(run, report)
        _handovers(run, report)
        _table(run, report, "zalo_outbox", ZaloOutbox, ZaloOutbox.id, _finished_replies(run))
        _table(run, report, "zalo_inbox", ZaloInbox, ZaloInbox.id, _finished_events(run))
        _table(run, report, "feedback", Feedback, Feedback.id,
               Feedback.created_at < run.cutoff)
        _table(run, report, "status_lookups", StatusLookup, StatusLookup.id,
               StatusLookup.looked_up_at < run.cutoff)
    except Stopped:
        report.complete = False
    return report


# --------------------------------------------------------------------------- conditions


def _none_or_before(cutoff: datetime, *columns: Any) -> list[ColumnElement[bool]]:
    """Each optional time is unset or before the cutoff: an item counts as old only when
    its last change is (a dead letter retried yesterday is not old)."""
    return [or_(c.is_(None), c < cutoff) for c in columns]


def _closed_before(cutoff: datetime) -> ColumnElement[bool]:
    return and_(Handover.status == CLOSED, Handover.closed_at < cutoff)


def _kept_handover(cutoff: datetime) -> ColumnElement[bool]:
    """Not `_closed_before` (spelt out: NOT of an unknown closing time is unknown in SQL)."""
    return or_(Handover.status != CLOSED, Handover.closed_at.is_(None),
               Handover.closed_at >= cutoff)


def _finished_replies(run: _Run) -> ColumnElement[bool]:
    """Zalo replies done with before the cutoff, and not shown by a hand-over thread that
    is kept (its page would lose the delivery state)."""
    shown = exists().where(HandoverMessage.outbox_id == ZaloOutbox.id,
                           HandoverMessage.handover_id == Handover.id,
                           _kept_handover(run.cutoff))
    return and_(ZaloOutbox.status.in_(FINISHED_REPLIES), ZaloOutbox.created_at < run.cutoff,
                *_none_or_before(run.cutoff, ZaloOutbox.sent_at, ZaloOutbox.dead_at,
                                 ZaloOutbox.retried_at),
                ~shown)


def _finished_events(run: _Run) -> ColumnElement[bool]:
    """Zalo events answered (or discarded) or given up on before the cutoff, without a reply
    still waiting to be sent. An unanswered event that is no dead letter is pending work."""
    answered = and_(ZaloInbox.processed_at.is_not(None), ZaloInbox.processed_at < run.cutoff)
    given_up = and_(ZaloInbox.processed_at.is_(None), ZaloInbox.dead_at.is_not(None),
                    ZaloInbox.dead_at < run.cutoff)
    reply_pending = exists().where(ZaloOutbox.inbox_id == ZaloInbox.id,
                                   ZaloOutbox.status == "pending")
    return and_(or_(answered, given_up), ZaloInbox.received_at < run.cutoff,
                *_none_or_before(run.cutoff, ZaloInbox.retried_at), ~reply_pending)


# --------------------------------------------------------------------------- batches


def _each_batch(run: _Run, keys_query: Select, key: Any,
                work: Callable[[Session, list[Any]], None]) -> None:
    """Call `work` with the next `run.batch` keys `keys_query` selects, each batch in its own
    transaction, in `key` order, each query going on after the last key of the one before
    (a batch whose rows changed meanwhile is skipped over, not read again)."""
    after: Any = None
    while True:
        with session_scope(run.url) as s:
            query = keys_query.order_by(key).limit(run.batch)
            if after is not None:
                query = query.where(key > after)
            keys = list(s.execute(query).scalars())
            if keys:
                work(s, keys)
        if len(keys) < run.batch:
            return
        after = keys[-1]
        run.next_batch()


def _count(run: _Run, query: Any) -> int:
    with session_scope(run.url) as s:
        return int(s.execute(query).scalar_one())


def _table(run: _Run, report: RetentionReport, name: str, model: Any, pk: Any,
           where: ColumnElement[bool]) -> None:
    """Purge one table whose rows go on their own."""
    if run.dry_run:
        report.deleted[name] += _count(run, select(func.count()).select_from(model).where(where))
        return

    def work(s: Session, keys: list[Any]) -> None:
        done = s.execute(delete(model).where(pk.in_(keys), where)
                         .execution_options(synchronize_session=False))
        report.deleted[name] += done.rowcount

    _each_batch(run, select(pk).where(where), pk, work)


def _handovers(run: _Run, report: RetentionReport) -> None:
    """Hand-overs closed before the cutoff, each with its whole thread."""
    closed = _closed_before(run.cutoff)
    if run.dry_run:
        report.deleted["handovers"] += _count(
            run, select(func.count()).select_from(Handover).where(closed))
        report.deleted["handover_messages"] += _count(
            run, select(func.count()).select_from(HandoverMessage).join(Handover).where(closed))
        return

    def work(s: Session, keys: list[Any]) -> None:
        # A closed hand-over stays closed (a new one is a new row): no recheck needed for
        # its messages; explicit, not left to ON DELETE CASCADE, to count them.
        report.deleted["handover_messages"] += s.execute(
            delete(HandoverMessage).where(HandoverMessage.handover_id.in_(keys))
            .execution_options(synchronize_session=False)).rowcount
        report.deleted["handovers"] += s.execute(
            delete(Handover).where(Handover.id.in_(keys), closed)
            .execution_options(synchronize_session=False)).rowcount

    _each_batch(run, select(Handover.id).where(closed), Handover.id, work)


def _conversations(run: _Run, report: RetentionReport) -> None:
    """Rasa's conversations whose last event is older than the cutoff, whole.

    Senders are walked in order (`sender_id` is indexed) so each batch's query goes on where
    the last one stopped. The DELETE keeps any sender that has a recent event by now: a
    citizen coming back while the batch runs keeps the conversation.
    """
    with session_scope(run.url) as s:
        if not events_table_exists(s):
            return  # Rasa has not started on this database (or keeps trackers in memory)
    stale = (select(E.sender_id).group_by(E.sender_id)
             .having(func.max(E.timestamp) < run.cutoff_ts))
    if run.dry_run:
        senders = stale.subquery()
        report.conversations += _count(run, select(func.count()).select_from(senders))
        report.deleted["events"] += _count(run, select(func.count()).select_from(EVENTS).where(
            E.sender_id.in_(select(senders.c.sender_id))))
        report.deleted["nlu_reviews"] += _count(
            run, select(func.count()).select_from(NluReview).where(
                NluReview.sender_id.in_(select(senders.c.sender_id))))
        return
    _each_batch(run, stale, E.sender_id,
                lambda s, senders: _delete_conversations(s, run, report, senders))


def _delete_conversations(s: Session, run: _Run, report: RetentionReport,
                          senders: Sequence[str]) -> None:
    """One batch: the senders' events unless one is recent now, then the inbox decisions of
    the senders that are gone."""
    recent = EVENTS.alias("recent")  # the same table, not correlated with the DELETE's
    alive = select(recent.c.sender_id).where(recent.c.sender_id.in_(senders),
                                             recent.c.timestamp >= run.cutoff_ts)
    report.deleted["events"] += s.execute(
        delete(EVENTS).where(E.sender_id.in_(senders), E.sender_id.not_in(alive))).rowcount
    left = set(s.execute(select(E.sender_id).where(E.sender_id.in_(senders)).distinct())
               .scalars())
    gone = [sender for sender in senders if sender not in left]
    report.conversations += len(gone)
    if gone:
        report.deleted["nlu_reviews"] += s.execute(
            delete(NluReview).where(NluReview.sender_id.in_(gone))
            .execution_options(synchronize_session=False)).rowcount

"""The Zalo channel's durable state: accepted events (inbox), replies to send (outbox), tokens.

Nothing a citizen sent and nothing the bot answered may be lost to a crash or a Zalo outage:
an event is stored (deduplicated by msg_id) before the webhook answers 200; its replies are
stored in the same transaction that marks it processed; a reply is marked sent only after
Zalo accepted it. Everything here is synchronous SQLAlchemy, run in a thread by the channel.

Nor may one bad item hold up the others: an event whose processing fails, or a reply Zalo
does not take, is retried with backoff (`retry_delay`) and, after `max_attempts` tries or
once older than `max_age` (ZALO_MAX_ATTEMPTS, ZALO_MAX_AGE_HOURS), set aside as a dead
letter; the user's later events and replies then go on. Dead letters are listed in the
console (`dead_letters`), where an admin sends one back to the queue or discards it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.catalog.db import session_scope
from bot.catalog.models import ZaloInbox, ZaloLease, ZaloOutbox, ZaloToken
from bot.timeutil import utcnow

LEASE_SECONDS = 120.0  # longer than a turn (RASA_TIMEOUT) plus a send; renewed per item
DEFAULT_MAX_ATTEMPTS = 20  # with the backoff below: about an hour of tries (Settings)
DEFAULT_MAX_AGE = timedelta(hours=24)
MAX_RETRY_SECONDS = 300.0
ERROR_CHARS = 500
SCAN_ROWS = 500  # queued rows read per round: a user's rows waiting for a retry are skipped
# Outbox statuses of a reply that will not be sent (the hand-over page shows them as failed).
GIVEN_UP = frozenset({"undeliverable", "dead", "discarded"})


@dataclass(frozen=True)
class Outgoing:
    """One reply ready to send."""

    id: int
    user_id: str
    kind: str
    body: dict[str, Any]
    attempts: int


@dataclass(frozen=True)
class PendingEvent:
    """A stored event without replies yet (its JSON is read under the user's lease)."""

    id: int
    user_id: str | None
    due: bool  # False while it waits for a retry: the user's later events wait behind it
    since: datetime  # its age counts from here: received, or sent back by an admin


@dataclass(frozen=True)
class DeadLetter:
    """An event or a reply given up on, as the console lists it."""

    kind: str  # "event" | "reply"
    id: int
    user_id: str | None
    what: str  # the event's name ("user_send_text") or the reply's kind ("text", "list")
    queued_at: datetime
    dead_at: datetime | None
    attempts: int
    error: str


def retry_delay(attempts: int) -> float:
    """Seconds to wait after `attempts` failed tries: 1, 2, 4 … at most 5 minutes, so an
    outage costs a try every few minutes, not one per worker round."""
    return min(MAX_RETRY_SECONDS, 2.0 ** max(0, attempts - 1))


def _given_up(attempts: int, since: datetime, now: datetime, max_attempts: int,
              max_age: timedelta) -> bool:
    """Whether a failing item goes to the dead letters now (too many tries or too old)."""
    return attempts >= max_attempts or now - since >= max_age


def record_event(url: str, key: str, user_id: str | None, raw: bytes) -> bool:
    """Store an accepted event; False when this dedup key was seen before (a Zalo retry)."""
    try:
        with session_scope(url) as s:
            s.add(ZaloInbox(dedup_key=key[:128], user_id=user_id,
                            event=raw.decode("utf-8", "replace"), received_at=utcnow()))
        return True
    except IntegrityError:
        return False


def unprocessed(url: str, limit: int = 50) -> list[tuple[int, str]]:
    """(id, event JSON) of stored events waiting for replies (not dead letters), oldest
    first."""
    return [(i, raw) for i, _, raw in unprocessed_by_user(url, limit)]


def unprocessed_by_user(url: str, limit: int = 50) -> list[tuple[int, str | None, str]]:
    """(id, user id, event JSON) of stored events waiting for replies, oldest first."""
    with session_scope(url) as s:
        rows = s.execute(select(ZaloInbox.id, ZaloInbox.user_id, ZaloInbox.event)
                         .where(ZaloInbox.processed_at.is_(None), ZaloInbox.dead_at.is_(None))
                         .order_by(ZaloInbox.id).limit(limit)).all()
        return [(r.id, r.user_id, r.event) for r in rows]


def pending_events(url: str, limit: int = SCAN_ROWS) -> list[PendingEvent]:
    """Events waiting for replies, oldest first, each marked due or waiting for a retry.

    Bodies are not read here (up to 64 KB each, every round): `event_to_process` reads the
    one about to be answered.
    """
    now = utcnow()
    with session_scope(url) as s:
        rows = s.execute(select(ZaloInbox.id, ZaloInbox.user_id, ZaloInbox.next_attempt_at,
                                ZaloInbox.received_at, ZaloInbox.retried_at)
                         .where(ZaloInbox.processed_at.is_(None), ZaloInbox.dead_at.is_(None))
                         .order_by(ZaloInbox.id).limit(limit)).all()
    return [PendingEvent(r.id, r.user_id, r.next_attempt_at is None or r.next_attempt_at <= now,
                         r.retried_at or r.received_at) for r in rows]


def still_unprocessed(url: str, inbox_id: int) -> bool:
    """Whether an event still waits for its answer: read again after taking the user's
    lease, because the list it came from may predate another worker's round."""
    return event_to_process(url, inbox_id) is not None


def event_to_process(url: str, inbox_id: int) -> str | None:
    """The event's JSON if it still waits for its answer and is due (read under the user's
    lease: another worker may have answered it, or marked it failed, since the list)."""
    with session_scope(url) as s:
        return s.execute(select(ZaloInbox.event).where(
            ZaloInbox.id == inbox_id, ZaloInbox.processed_at.is_(None),
            ZaloInbox.dead_at.is_(None),
            or_(ZaloInbox.next_attempt_at.is_(None), ZaloInbox.next_attempt_at <= utcnow()))
        ).scalar_one_or_none()


def event_failed(url: str, inbox_id: int, error: str, *, count: bool = True,
                 max_attempts: int = DEFAULT_MAX_ATTEMPTS,
                 max_age: timedelta = DEFAULT_MAX_AGE) -> bool:
    """Record a failed try at answering an event; True when it became a dead letter.

    `count=False` records a failure that is not the event's own (the assistant is down):
    no attempt is counted and no backoff set, only the age limit applies.
    """
    now = utcnow()
    with session_scope(url) as s:
        row = s.get(ZaloInbox, inbox_id, with_for_update=True)
        if row is None or row.processed_at is not None or row.dead_at is not None:
            return False
        if count:
            row.attempts = (row.attempts or 0) + 1
            row.next_attempt_at = now + timedelta(seconds=retry_delay(row.attempts))
        row.last_error = error[:ERROR_CHARS]
        if _given_up(row.attempts, row.retried_at or row.received_at, now, max_attempts,
                     max_age):
            row.dead_at = now
            return True
        return False


def still_due(url: str, outbox_id: int) -> bool:
    """Whether a reply is still pending and due (read again under the user's lease)."""
    with session_scope(url) as s:
        return s.execute(select(ZaloOutbox.id).where(
            ZaloOutbox.id == outbox_id, ZaloOutbox.status == "pending",
            ZaloOutbox.next_attempt_at <= utcnow())).first() is not None


def claim(url: str, owner: str, user_id: str, seconds: float = LEASE_SECONDS) -> bool:
    """Take or renew the lease on a Zalo user for `owner`; False when another live worker
    holds it. One conditional UPDATE (or an INSERT racing on the primary key): atomic on
    SQLite and PostgreSQL alike, whatever the isolation level."""
    now = utcnow()
    until = now + timedelta(seconds=seconds)
    with session_scope(url) as s:
        taken = s.execute(update(ZaloLease)
                          .where(ZaloLease.user_id == user_id,
                                 or_(ZaloLease.owner == owner, ZaloLease.lease_until < now))
                          .values(owner=owner, lease_until=until)
                          .execution_options(synchronize_session=False))
        if taken.rowcount == 1:
            return True
        exists = s.execute(select(ZaloLease.user_id)
                           .where(ZaloLease.user_id == user_id)).first()
        if exists is not None:
            return False
    try:
        with session_scope(url) as s:
            s.add(ZaloLease(user_id=user_id, owner=owner, lease_until=until))
        return True
    except IntegrityError:  # another worker inserted it first
        return False


def release(url: str, owner: str, user_ids: list[str]) -> None:
    """Give up `owner`'s leases on these users (done with them for this round)."""
    if not user_ids:
        return
    with session_scope(url) as s:
        s.execute(delete(ZaloLease).where(ZaloLease.owner == owner,
                                          ZaloLease.user_id.in_(user_ids))
                  .execution_options(synchronize_session=False))


def complete(url: str, inbox_id: int, user_id: str | None,
             replies: list[tuple[str, dict[str, Any]]]) -> bool:
    """Queue the replies of an event and mark it processed, atomically.

    False when the event was already processed (two workers raced): its replies are not
    queued twice.
    """
    now = utcnow()
    with session_scope(url) as s:
        row = s.get(ZaloInbox, inbox_id, with_for_update=True)
        if row is None or row.processed_at is not None:
            return False
        row.processed_at, row.dead_at = now, None  # answered after all: no dead letter
        for kind, body in replies:
            s.add(ZaloOutbox(inbox_id=inbox_id, user_id=user_id, kind=kind,
                             body=json.dumps(body, ensure_ascii=False), status="pending",
                             attempts=0, next_attempt_at=now, created_at=now))
    return True


def due(url: str, limit: int = 20) -> list[Outgoing]:
    """Pending replies whose time has come, keeping each user's replies in order.

    A user's later reply waits while an earlier one is pending (not yet due): answers must
    arrive in the order they were written.
    """
    now = utcnow()
    with session_scope(url) as s:
        rows = s.execute(select(ZaloOutbox).where(ZaloOutbox.status == "pending")
                         .order_by(ZaloOutbox.id).limit(500)).scalars().all()
        out: list[Outgoing] = []
        blocked: set[str] = set()
        for r in rows:
            if r.user_id in blocked:
                continue
            blocked.add(r.user_id)  # only the user's first pending reply may go now
            if r.next_attempt_at <= now:
                out.append(Outgoing(r.id, r.user_id, r.kind, _body(r.body), r.attempts))
            if len(out) >= limit:
                break
        return out


def _body(raw: str) -> dict[str, Any]:
    """A reply's JSON body; {} when unreadable, so that sending it fails on its own (and
    becomes a dead letter) instead of failing the list every reply comes from."""
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        return {}
    return body if isinstance(body, dict) else {}


def mark_sent(url: str, outbox_id: int, message_id: str | None) -> None:
    with session_scope(url) as s:
        row = s.get(ZaloOutbox, outbox_id)
        if row is not None:
            row.status, row.sent_at, row.message_id = "sent", utcnow(), message_id
            row.attempts += 1


def mark_failed(url: str, outbox_id: int, permanent: bool, error: str, retry_in: float, *,
                max_attempts: int = DEFAULT_MAX_ATTEMPTS,
                max_age: timedelta = DEFAULT_MAX_AGE) -> str:
    """A failed attempt: given up (permanent: "undeliverable"), retried after `retry_in`
    seconds ("pending"), or, after `max_attempts` tries or `max_age`, a dead letter ("dead").
    Returns the reply's status ("" when it is gone)."""
    now = utcnow()
    with session_scope(url) as s:
        row = s.get(ZaloOutbox, outbox_id)
        if row is None:
            return ""
        row.attempts += 1
        row.last_error = error[:ERROR_CHARS]
        if permanent:
            row.status = "undeliverable"
        elif _given_up(row.attempts, row.retried_at or row.created_at, now, max_attempts,
                       max_age):
            row.status, row.dead_at = "dead", now
        else:
            row.next_attempt_at = now + timedelta(seconds=retry_in)
        return row.status


def dead_letters(url: str, limit: int = 200) -> list[DeadLetter]:
    """Events and replies given up on and not yet retried or discarded, newest first."""
    with session_scope(url) as s:
        events = s.execute(select(ZaloInbox).where(ZaloInbox.dead_at.is_not(None),
                                                   ZaloInbox.processed_at.is_(None))
                           .order_by(ZaloInbox.dead_at.desc()).limit(limit)).scalars().all()
        replies = s.execute(select(ZaloOutbox).where(ZaloOutbox.status == "dead")
                            .order_by(ZaloOutbox.dead_at.desc()).limit(limit)).scalars().all()
        found = [DeadLetter("event", e.id, e.user_id, _event_name(e.event), e.received_at,
                            e.dead_at, e.attempts or 0, e.last_error or "") for e in events]
        found += [DeadLetter("reply", r.id, r.user_id, r.kind, r.created_at, r.dead_at,
                             r.attempts, r.last_error or "") for r in replies]
    found.sort(key=lambda d: d.dead_at or d.queued_at, reverse=True)
    return found[:limit]


def _event_name(raw: str) -> str:
    """An event's `event_name` for the dead-letter list (never its text: personal data)."""
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        return "?"
    name = data.get("event_name") if isinstance(data, dict) else None
    return name[:64] if isinstance(name, str) else "?"


def retry_dead_letter(url: str, kind: str, item_id: int) -> bool:
    """Send a dead letter back to the queue with fresh attempts and age; False when there
    is no such dead letter (already retried or discarded by someone else)."""
    now = utcnow()
    with session_scope(url) as s:
        if kind == "event":
            done = s.execute(update(ZaloInbox).where(
                ZaloInbox.id == item_id, ZaloInbox.dead_at.is_not(None),
                ZaloInbox.processed_at.is_(None)).values(
                dead_at=None, attempts=0, next_attempt_at=None, retried_at=now)
                .execution_options(synchronize_session=False))
        elif kind == "reply":
            done = s.execute(update(ZaloOutbox).where(
                ZaloOutbox.id == item_id, ZaloOutbox.status == "dead").values(
                status="pending", dead_at=None, attempts=0, next_attempt_at=now,
                retried_at=now).execution_options(synchronize_session=False))
        else:
            return False
        return done.rowcount == 1


def discard_dead_letter(url: str, kind: str, item_id: int) -> bool:
    """Give up on a dead letter for good (an event counts as processed, without replies;
    a reply becomes "discarded"); False when there is no such dead letter."""
    now = utcnow()
    with session_scope(url) as s:
        if kind == "event":
            done = s.execute(update(ZaloInbox).where(
                ZaloInbox.id == item_id, ZaloInbox.dead_at.is_not(None),
                ZaloInbox.processed_at.is_(None)).values(processed_at=now)
                .execution_options(synchronize_session=False))
        elif kind == "reply":
            done = s.execute(update(ZaloOutbox).where(
                ZaloOutbox.id == item_id, ZaloOutbox.status == "dead").values(
                status="discarded").execution_options(synchronize_session=False))
        else:
            return False
        return done.rowcount == 1


def last_buttons(url: str, user_id: str) -> list[dict[str, str]]:
    """The buttons of the last list sent to a user (a reply "2" picks the second)."""
    with session_scope(url) as s:
        body = s.execute(select(ZaloOutbox.body).where(
            ZaloOutbox.user_id == user_id, ZaloOutbox.kind == "list")
            .order_by(ZaloOutbox.id.desc()).limit(1)).scalar_one_or_none()
    return list(json.loads(body).get("buttons") or []) if body else []


class DbTokenStore:
    """The OA token pair in the database: refresh tokens rotate, so each new pair is stored
    before it is used, and every gateway process reads the latest one."""

    def __init__(self, url: str, access: str, refresh: str) -> None:
        self.url = url
        self._initial = (access, refresh)
        self._configured = hashlib.sha256(f"{access}\n{refresh}".encode()).hexdigest()

    def __repr__(self) -> str:
        return "DbTokenStore(<tokens hidden>)"

    @staticmethod
    def _latest(s: Session) -> ZaloToken | None:
        return s.execute(select(ZaloToken).order_by(ZaloToken.id.desc()).limit(1)
                         ).scalar_one_or_none()

    def _get(self) -> tuple[str, str]:
        with session_scope(self.url) as s:
            row = self._latest(s)
            if row is None or (row.configured and row.configured != self._configured):
                # Nothing stored yet, or the operator configured a new pair (re-authorised
                # the OA): the stored one grew from the old authorisation.
                return self._initial
            return row.access_token, row.refresh_token

    def _save(self, access: str, refresh: str) -> None:
        with session_scope(self.url) as s:
            row = self._latest(s)
            if row is None:
                s.add(ZaloToken(access_token=access, refresh_token=refresh,
                                updated_at=utcnow(), configured=self._configured))
            else:
                row.access_token, row.refresh_token, row.updated_at = access, refresh, utcnow()
                row.configured = self._configured

    async def get(self) -> tuple[str, str]:
        return await asyncio.to_thread(self._get)

    async def save(self, access: str, refresh: str) -> None:
        await asyncio.to_thread(self._save, access, refresh)

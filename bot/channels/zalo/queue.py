"""The Zalo channel's durable state: accepted events (inbox), replies to send (outbox), tokens.

Nothing a citizen sent and nothing the bot answered may be lost to a crash or a Zalo outage:
an event is stored (deduplicated by msg_id) before the webhook answers 200; its replies are
stored in the same transaction that marks it processed; a reply is marked sent only after
Zalo accepted it. Everything here is synchronous SQLAlchemy, run in a thread by the channel.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import delete, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.catalog.db import session_scope
from bot.catalog.models import ZaloInbox, ZaloLease, ZaloOutbox, ZaloToken

LEASE_SECONDS = 120.0  # longer than a turn (RASA_TIMEOUT) plus a send; renewed per item


def utcnow() -> datetime:
    """Naive UTC (the columns are timezone-less on SQLite and PostgreSQL alike)."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


@dataclass(frozen=True)
class Outgoing:
    """One reply ready to send."""

    id: int
    user_id: str
    kind: str
    body: dict[str, Any]
    attempts: int


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
    """(id, event JSON) of stored events without replies yet, oldest first."""
    return [(i, raw) for i, _, raw in unprocessed_by_user(url, limit)]


def unprocessed_by_user(url: str, limit: int = 50) -> list[tuple[int, str | None, str]]:
    """(id, user id, event JSON) of stored events without replies yet, oldest first."""
    with session_scope(url) as s:
        rows = s.execute(select(ZaloInbox.id, ZaloInbox.user_id, ZaloInbox.event)
                         .where(ZaloInbox.processed_at.is_(None))
                         .order_by(ZaloInbox.id).limit(limit)).all()
        return [(r.id, r.user_id, r.event) for r in rows]


def still_unprocessed(url: str, inbox_id: int) -> bool:
    """Whether an event still waits for its answer: read again after taking the user's
    lease, because the list it came from may predate another worker's round."""
    with session_scope(url) as s:
        return s.execute(select(ZaloInbox.id).where(ZaloInbox.id == inbox_id,
                                                    ZaloInbox.processed_at.is_(None))
                         ).first() is not None


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
        row.processed_at = now
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
                out.append(Outgoing(r.id, r.user_id, r.kind, json.loads(r.body), r.attempts))
            if len(out) >= limit:
                break
        return out


def mark_sent(url: str, outbox_id: int, message_id: str | None) -> None:
    with session_scope(url) as s:
        row = s.get(ZaloOutbox, outbox_id)
        if row is not None:
            row.status, row.sent_at, row.message_id = "sent", utcnow(), message_id
            row.attempts += 1


def mark_failed(url: str, outbox_id: int, permanent: bool, error: str,
                retry_in: float) -> None:
    """A failed attempt: given up (permanent) or retried after `retry_in` seconds."""
    with session_scope(url) as s:
        row = s.get(ZaloOutbox, outbox_id)
        if row is None:
            return
        row.attempts += 1
        row.last_error = error[:500]
        if permanent:
            row.status = "undeliverable"
        else:
            row.next_attempt_at = utcnow() + timedelta(seconds=retry_in)


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

"""The handover queue in the database: open, route the citizen's messages, take, reply, close.

Synchronous SQLAlchemy, callable from any process: the action server opens handovers, the
gateway routes citizen messages and delivers replies, the console (bot.handover.desk wraps
these functions for the event loop) takes, answers and closes them.

Concurrency: every change first bumps one counter row (`catalog_counters`, key "handover")
in its transaction. That takes the database's write lock (SQLite) or the row's lock
(PostgreSQL) before anything is read, so handover changes are serialised across processes:
two agents taking the same conversation, or a close racing a citizen's message, see each
other's committed result, and the counter's values are in commit order, which makes
`changes_since(version)` exact for live views. Read-only paths (the check on every citizen
message, the lists) take no lock.

Times are stored as naive UTC (like the Zalo tables) and returned as aware UTC.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.catalog.db import session_scope
from bot.catalog.models import CatalogCounter, ZaloOutbox
from bot.channels.zalo.client import mask_user_id
from bot.channels.zalo.queue import GIVEN_UP as ZALO_GIVEN_UP
from bot.handover import texts
from bot.handover.delivery import enqueue_zalo
from bot.handover.hours import WorkingHours
from bot.handover.models import (
    AGENT,
    BOT,
    CHANNELS,
    CITIZEN,
    CLOSED,
    HELD,
    OPEN_STATUSES,
    REASONS,
    STAFF_AUTHORS,
    SYSTEM,
    WAITING,
    Handover,
    HandoverMessage,
)
from bot.text import mask_pii, nfc
from bot.timeutil import utcnow

log = logging.getLogger(__name__)

COUNTER_KEY = "handover"
MAX_TEXT_CHARS = 4000  # an agent's reply (Zalo splits at 2,000; the widget shows any length)
MAX_NAME_CHARS = 64
PREVIEW_CHARS = 200
CONTEXT_TURNS = 10  # conversation lines copied into a new handover for the agent
PUMP_WINDOW = timedelta(days=2)  # older undelivered widget replies are left to the pull


def who(sender_id: str) -> str:
    """A conversation id as logs may show it: a Zalo user id is cut to 4 characters (as
    the Zalo channel logs it); other ids are random session ids, masked like citizen text."""
    if sender_id.startswith("zalo-"):
        return "zalo-" + mask_user_id(sender_id.removeprefix("zalo-"))
    return mask_pii(sender_id)


def _aware(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=timezone.utc) if value is not None else None


def iso(value: datetime | None) -> str | None:
    """2026-11-27T10:00:00Z (what the gateway's other replies use)."""
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


class HandoverError(Exception):
    """A refused operation; `message` is Vietnamese for the operator, `code` for programs."""

    status = 400

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class NotFound(HandoverError):
    status = 404


class Conflict(HandoverError):
    """The handover's state does not allow it (closed, or held by another agent)."""

    status = 409


# --------------------------------------------------------------------------- views


@dataclass(frozen=True)
class MessageView:
    """One message of a thread. `delivery` is None for citizen and bot lines, else "pending",
    "delivered" or "failed" (Zalo gave up: the user blocked the OA or was silent too long)."""

    id: int
    handover_id: int
    author: str
    agent: str | None
    text: str
    created_at: datetime
    delivered_at: datetime | None
    delivery: str | None

    @property
    def public_id(self) -> str:
        """The id citizens' clients see: stable, unique, and valid for the widget's ids."""
        return f"hm-{self.id:010d}"

    def public(self) -> dict[str, Any]:
        """As the widget / REST clients get it, in the shape of a bot message plus `author`
        and `seq` (the cursor of GET /api/v1/messages). Operator names are not shown."""
        return {"id": self.public_id, "seq": self.id, "text": self.text, "buttons": [],
                "ts": iso(self.created_at), "author": self.author}

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "handover_id": self.handover_id, "author": self.author,
                "agent": self.agent, "text": self.text, "created_at": iso(self.created_at),
                "delivered_at": iso(self.delivered_at), "delivery": self.delivery}


@dataclass(frozen=True)
class HandoverView:
    """A handover as the console lists it; `last_text` previews the citizen's last message."""

    id: int
    sender_id: str
    channel: str
    address: str
    reason: str
    after_hours: bool
    status: str
    created_at: datetime
    taken_at: datetime | None
    taken_by: str | None
    closed_at: datetime | None
    closed_by: str | None
    last_citizen_message_at: datetime | None
    version: int
    last_text: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "sender_id": self.sender_id, "channel": self.channel,
                "address": self.address, "reason": self.reason,
                "after_hours": self.after_hours, "status": self.status,
                "created_at": iso(self.created_at), "taken_at": iso(self.taken_at),
                "taken_by": self.taken_by, "closed_at": iso(self.closed_at),
                "closed_by": self.closed_by,
                "last_citizen_message_at": iso(self.last_citizen_message_at),
                "version": self.version, "last_text": self.last_text}


@dataclass(frozen=True)
class HandoverDetail:
    """A handover with its whole thread (the conversation before it, then the handover)."""

    handover: HandoverView
    messages: list[MessageView]

    def as_dict(self) -> dict[str, Any]:
        return {**self.handover.as_dict(), "messages": [m.as_dict() for m in self.messages]}


@dataclass(frozen=True)
class OpenState:
    """What a citizen's client needs to know about their open handover."""

    id: int
    status: str
    after_hours: bool

    def public(self) -> dict[str, Any]:
        return {"status": self.status, "after_hours": self.after_hours}


@dataclass(frozen=True)
class Routed:
    """A citizen message taken by an open handover (the bot stays silent): the handover's
    state, and the staff messages to show with the answer (the one acknowledgement note,
    plus, for widget and REST clients, replies not delivered yet)."""

    state: OpenState
    notes: list[MessageView]


@dataclass(frozen=True)
class Changes:
    """Handovers changed after a version, and the version to ask from next time."""

    version: int
    handovers: list[HandoverView]

    def as_dict(self) -> dict[str, Any]:
        return {"version": self.version, "handovers": [h.as_dict() for h in self.handovers]}


def _view(h: Handover, last_text: str | None = None) -> HandoverView:
    return HandoverView(
        id=h.id, sender_id=h.sender_id, channel=h.channel, address=h.address,
        reason=h.reason, after_hours=bool(h.after_hours), status=h.status,
        created_at=_aware(h.created_at), taken_at=_aware(h.taken_at), taken_by=h.taken_by,
        closed_at=_aware(h.closed_at), closed_by=h.closed_by,
        last_citizen_message_at=_aware(h.last_citizen_message_at), version=h.version or 0,
        last_text=last_text)


def _message(m: HandoverMessage, outbox: tuple[str, datetime | None] | None = None
             ) -> MessageView:
    delivered = m.delivered_at
    delivery: str | None = None
    if m.author in STAFF_AUTHORS:
        delivery = "delivered" if delivered else "pending"
        if outbox is not None:
            status, sent_at = outbox
            if status == "sent":
                delivery, delivered = "delivered", delivered or sent_at
            elif status in ZALO_GIVEN_UP:  # undeliverable, or a dead letter
                delivery = "failed"
    return MessageView(id=m.id, handover_id=m.handover_id, author=m.author, agent=m.agent,
                       text=m.text, created_at=_aware(m.created_at),
                       delivered_at=_aware(delivered), delivery=delivery)


# --------------------------------------------------------------------------- writing


def _bump(s: Session) -> int:
    """The next change number, taken first in a writing transaction (see the module doc)."""
    result = s.execute(update(CatalogCounter).where(CatalogCounter.key == COUNTER_KEY)
                       .values(number=CatalogCounter.number + 1)
                       .execution_options(synchronize_session=False))
    if not result.rowcount:
        try:
            with s.begin_nested():
                s.add(CatalogCounter(key=COUNTER_KEY, number=1))
        except IntegrityError:  # another process created the row first
            return _bump(s)
    return int(s.execute(select(CatalogCounter.number)
                         .where(CatalogCounter.key == COUNTER_KEY)).scalar_one())


def current_version(url: str) -> int:
    """The counter of handover changes (0 before the first one); cheap, for polling."""
    with session_scope(url) as s:
        number = s.execute(select(CatalogCounter.number)
                           .where(CatalogCounter.key == COUNTER_KEY)).scalar_one_or_none()
    return int(number or 0)


def _open_of(s: Session, sender_id: str) -> Handover | None:
    return s.execute(select(Handover).where(Handover.sender_id == sender_id,
                                            Handover.status.in_(OPEN_STATUSES))
                     ).scalars().first()


def _get(s: Session, handover_id: int) -> Handover:
    h = s.get(Handover, handover_id)
    if h is None:
        raise NotFound("not_found", f"Không có yêu cầu hỗ trợ số {handover_id}.")
    return h


def _operator(by: str) -> str:
    name = nfc(by or "").strip()
    if not name or len(name) > MAX_NAME_CHARS:
        raise HandoverError("invalid_operator",
                            f"Tên cán bộ cần từ 1 đến {MAX_NAME_CHARS} ký tự.")
    return name


def _add_staff(s: Session, h: Handover, author: str, text: str, now: datetime,
               agent: str | None = None) -> HandoverMessage:
    """Store a message for the citizen and start its delivery: a Zalo conversation gets it
    through the durable outbox, in the same transaction; widget and REST clients get it
    from the gateway (pushed, pulled, or with their next answer)."""
    m = HandoverMessage(handover=h, author=author, agent=agent, text=text, created_at=now)
    s.add(m)
    if h.channel == "zalo":
        s.flush()
        m.outbox_id = enqueue_zalo(s, h.address, text, now)
    return m


def open_handover(url: str, *, sender_id: str, channel: str, address: str, reason: str,
                  after_hours: bool, context: Iterable[tuple[str, str, datetime]] = ()
                  ) -> tuple[HandoverView, bool]:
    """Queue a conversation for a person; (the handover, whether it is new).

    A conversation that already has an open handover keeps it (False). `context` is the
    conversation so far as (author "citizen" | "bot", text, naive UTC time), copied in so
    the agent sees what led here; only the last CONTEXT_TURNS lines are kept.
    """
    if channel not in CHANNELS or reason not in REASONS:
        raise ValueError(f"channel {channel!r} / reason {reason!r}")
    now = utcnow()
    with session_scope(url) as s:
        version = _bump(s)
        existing = _open_of(s, sender_id)
        if existing is not None:
            return _view(existing), False
        h = Handover(sender_id=sender_id[:128], channel=channel, address=address[:128],
                     reason=reason, after_hours=after_hours, status=WAITING, created_at=now,
                     version=version)
        s.add(h)
        for author, text, at in list(context)[-CONTEXT_TURNS:]:
            if author in (CITIZEN, BOT) and text:
                s.add(HandoverMessage(handover=h, author=author, text=nfc(text),
                                      created_at=min(at, now)))
        s.flush()
        return _view(h), True


def find_open(url: str, sender_id: str) -> OpenState | None:
    """The open handover of a conversation, if any: one indexed read, no lock.

    Called before every citizen message goes to the bot, so it must stay this cheap.
    """
    with session_scope(url) as s:
        row = s.execute(select(Handover.id, Handover.status, Handover.after_hours)
                        .where(Handover.sender_id == sender_id,
                               Handover.status.in_(OPEN_STATUSES))).first()
    return OpenState(row.id, row.status, bool(row.after_hours)) if row else None


def _take_pending(s: Session, sender_id: str, now: datetime) -> list[MessageView]:
    """Staff messages of a widget/REST conversation not delivered yet; marked delivered,
    since the caller hands them to the client in its reply."""
    rows = s.execute(select(HandoverMessage).join(Handover)
                     .where(Handover.sender_id == sender_id, Handover.channel != "zalo",
                            HandoverMessage.author.in_(STAFF_AUTHORS),
                            HandoverMessage.delivered_at.is_(None))
                     .order_by(HandoverMessage.id).limit(50)).scalars().all()
    for m in rows:
        m.delivered_at = now
    return [_message(m) for m in rows]


def route_citizen_message(url: str, sender_id: str, text: str, *,
                          hours: WorkingHours | None, with_pending: bool,
                          external_id: str | None = None) -> Routed | None:
    """Store a citizen message in the conversation's open handover; None when there is none
    (the message goes to the bot).

    The first message to a waiting handover gets the one acknowledgement note. With
    `with_pending` (widget and REST), staff messages not delivered yet come back to be shown
    with the answer. `external_id` (a channel event id) makes a replayed event a no-op.
    """
    if find_open(url, sender_id) is None:
        return None  # the common case: no lock, no write
    now = utcnow()
    with session_scope(url) as s:
        version = _bump(s)
        h = _open_of(s, sender_id)
        if h is None:  # closed in the meantime: the bot answers
            return None
        state = OpenState(h.id, h.status, bool(h.after_hours))
        if external_id is not None and s.execute(
                select(HandoverMessage.id).where(HandoverMessage.external_id == external_id)
        ).first() is not None:
            return Routed(state, [])
        s.add(HandoverMessage(handover=h, author=CITIZEN, text=nfc(text), created_at=now,
                              external_id=external_id))
        h.last_citizen_message_at = now
        h.version = version
        if h.status == WAITING and h.acknowledged_at is None:
            h.acknowledged_at = now
            _add_staff(s, h, SYSTEM, texts.acknowledged(hours, now), now)
        s.flush()
        notes = _take_pending(s, sender_id, now) if with_pending else []
        return Routed(state, notes)


def after_turn(url: str, sender_id: str) -> tuple[OpenState | None, list[MessageView]]:
    """After the bot answered a widget/REST message: whether a handover is now open (the
    answer may have opened one) and staff messages the client has not received yet (e.g.
    the note that an agent closed the handover, for a client that cannot be pushed to)."""
    with session_scope(url) as s:
        # one indexed read in the common case: a conversation that never had a hand-over
        # has neither an open one nor staff messages waiting
        rows = s.execute(select(Handover.id, Handover.status, Handover.after_hours)
                         .where(Handover.sender_id == sender_id)).all()
        if not rows:
            return None, []
        row = next((r for r in rows if r.status in OPEN_STATUSES), None)
        state = OpenState(row.id, row.status, bool(row.after_hours)) if row else None
        pending = s.execute(select(func.count(HandoverMessage.id)).join(Handover)
                            .where(Handover.sender_id == sender_id,
                                   Handover.channel != "zalo",
                                   HandoverMessage.author.in_(STAFF_AUTHORS),
                                   HandoverMessage.delivered_at.is_(None))).scalar_one()
    if not pending:
        return state, []
    with session_scope(url) as s:
        return state, _take_pending(s, sender_id, utcnow())


def messages_after(url: str, sender_id: str, after: int, limit: int = 100
                   ) -> tuple[OpenState | None, list[MessageView]]:
    """Staff messages of a conversation with an id above `after` (the widget's cursor), and
    its open handover: what a client that was offline missed. Marks them delivered."""
    with session_scope(url) as s:
        row = s.execute(select(Handover.id, Handover.status, Handover.after_hours)
                        .where(Handover.sender_id == sender_id,
                               Handover.status.in_(OPEN_STATUSES))).first()
        state = OpenState(row.id, row.status, bool(row.after_hours)) if row else None
        rows = s.execute(select(HandoverMessage).join(Handover)
                         .where(Handover.sender_id == sender_id, Handover.channel != "zalo",
                                HandoverMessage.author.in_(STAFF_AUTHORS),
                                HandoverMessage.id > after)
                         .order_by(HandoverMessage.id).limit(limit)).scalars().all()
        fresh = [m.id for m in rows if m.delivered_at is None]
        out = [_message(m) for m in rows]
    if fresh:
        mark_delivered(url, fresh)
    return state, out


def undelivered_widget(url: str, sessions: Collection[str]) -> list[tuple[str, MessageView]]:
    """(widget session, message) of recent staff messages not delivered yet, for sessions
    this gateway holds a socket of."""
    if not sessions:
        return []
    with session_scope(url) as s:
        rows = s.execute(select(Handover.address, HandoverMessage).join(Handover)
                         .where(Handover.channel == "widget",
                                HandoverMessage.author.in_(STAFF_AUTHORS),
                                HandoverMessage.delivered_at.is_(None),
                                HandoverMessage.created_at > utcnow() - PUMP_WINDOW)
                         .order_by(HandoverMessage.id).limit(500)).all()
        return [(address, _message(m)) for address, m in rows if address in sessions]


def mark_delivered(url: str, message_ids: Collection[int]) -> None:
    """A client received these staff messages (only the first delivery time is kept)."""
    if not message_ids:
        return
    with session_scope(url) as s:
        version = _bump(s)  # agents' views show the delivery tick
        s.execute(update(HandoverMessage)
                  .where(HandoverMessage.id.in_(list(message_ids)),
                         HandoverMessage.delivered_at.is_(None))
                  .values(delivered_at=utcnow()).execution_options(synchronize_session=False))
        s.execute(update(Handover)
                  .where(Handover.id.in_(select(HandoverMessage.handover_id)
                                         .where(HandoverMessage.id.in_(list(message_ids)))))
                  .values(version=version).execution_options(synchronize_session=False))


# --------------------------------------------------------------------------- agents


def take(url: str, handover_id: int, by: str, *, force: bool = False) -> HandoverView:
    """An agent takes a waiting handover (the citizen is told someone is there).

    Refused (Conflict) when it is closed, or held by another agent unless `force` (a
    supervisor taking over; the console decides who may). Taking one's own again is a no-op.
    """
    by = _operator(by)
    now = utcnow()
    with session_scope(url) as s:
        version = _bump(s)
        h = _get(s, handover_id)
        if h.status == CLOSED:
            raise Conflict("closed", "Yêu cầu hỗ trợ này đã được đóng.")
        if h.status == HELD and h.taken_by == by:
            return _view(h)
        if h.status == HELD and not force:
            raise Conflict("held_by_other", f"Cán bộ {h.taken_by} đang hỗ trợ người dân này.")
        h.status, h.taken_at, h.taken_by, h.version = HELD, now, by, version
        _add_staff(s, h, SYSTEM, texts.TAKEN, now)
        s.flush()
        return _view(h)


def reply(url: str, handover_id: int, by: str, text: str) -> tuple[HandoverView, MessageView]:
    """An agent's reply, stored and queued for the citizen's channel.

    Replying to a waiting handover takes it; one held by another agent or closed is refused.
    """
    by = _operator(by)
    body = nfc(text or "").strip()
    if not body:
        raise HandoverError("empty_text", "Nội dung trả lời không được để trống.")
    if len(body) > MAX_TEXT_CHARS:
        raise HandoverError("too_long", f"Nội dung trả lời dài tối đa {MAX_TEXT_CHARS} ký tự.")
    now = utcnow()
    with session_scope(url) as s:
        version = _bump(s)
        h = _get(s, handover_id)
        if h.status == CLOSED:
            raise Conflict("closed", "Yêu cầu hỗ trợ này đã được đóng.")
        if h.status == HELD and h.taken_by != by:
            raise Conflict("held_by_other", f"Cán bộ {h.taken_by} đang hỗ trợ người dân này.")
        if h.status == WAITING:
            h.status, h.taken_at, h.taken_by = HELD, now, by
        h.version = version
        m = _add_staff(s, h, AGENT, body, now, agent=by)
        s.flush()
        return _view(h), _message(m)


def _close(url: str, handover_id: int, by: str, note: str, check_holder: bool
           ) -> HandoverView:
    now = utcnow()
    with session_scope(url) as s:
        version = _bump(s)
        h = _get(s, handover_id)
        if h.status == CLOSED:
            return _view(h)
        if check_holder and h.status == HELD and h.taken_by != by:
            raise Conflict("held_by_other", f"Cán bộ {h.taken_by} đang hỗ trợ người dân này.")
        h.status, h.closed_at, h.closed_by, h.version = CLOSED, now, by, version
        _add_staff(s, h, SYSTEM, note, now)
        s.flush()
        return _view(h)


def close(url: str, handover_id: int, by: str, *, force: bool = False) -> HandoverView:
    """End a handover: the bot answers the conversation again, and the citizen is told.

    Closing one held by another agent needs `force`; closing a closed one changes nothing.
    """
    return _close(url, handover_id, _operator(by), texts.CLOSED, check_holder=not force)


def cancel_by_citizen(url: str, sender_id: str) -> HandoverView | None:
    """The citizen went back to the assistant (the widget's button): the handover closes
    with `closed_by` "citizen"; None when nothing was open."""
    state = find_open(url, sender_id)
    if state is None:
        return None
    return _close(url, state.id, CITIZEN, texts.CANCELLED, check_holder=False)


# --------------------------------------------------------------------------- reading


def _previews(s: Session, ids: list[int]) -> dict[int, str]:
    """The last citizen message of each handover, shortened."""
    if not ids:
        return {}
    last = (select(func.max(HandoverMessage.id))
            .where(HandoverMessage.handover_id.in_(ids), HandoverMessage.author == CITIZEN)
            .group_by(HandoverMessage.handover_id))
    rows = s.execute(select(HandoverMessage.handover_id, HandoverMessage.text)
                     .where(HandoverMessage.id.in_(last))).all()
    return {hid: (t if len(t) <= PREVIEW_CHARS else t[:PREVIEW_CHARS] + "…") for hid, t in rows}


def _views(s: Session, rows: list[Handover]) -> list[HandoverView]:
    previews = _previews(s, [h.id for h in rows])
    return [_view(h, previews.get(h.id)) for h in rows]


def list_open(url: str) -> list[HandoverView]:
    """Waiting and held handovers, oldest first (the order they should be answered in)."""
    with session_scope(url) as s:
        rows = s.execute(select(Handover).where(Handover.status.in_(OPEN_STATUSES))
                         .order_by(Handover.created_at, Handover.id)).scalars().all()
        return _views(s, list(rows))


def list_handovers(url: str, *, status: str | None = None, channel: str | None = None,
                   taken_by: str | None = None, before_id: int | None = None,
                   limit: int = 50) -> list[HandoverView]:
    """Handovers newest first, filtered; page with `before_id` (the last id of a page)."""
    query = select(Handover)
    if status is not None:
        query = query.where(Handover.status == status)
    if channel is not None:
        query = query.where(Handover.channel == channel)
    if taken_by is not None:
        query = query.where(Handover.taken_by == taken_by)
    if before_id is not None:
        query = query.where(Handover.id < before_id)
    with session_scope(url) as s:
        rows = s.execute(query.order_by(Handover.id.desc()).limit(max(1, min(limit, 200)))
                         ).scalars().all()
        return _views(s, list(rows))


def _details(s: Session, handovers: list[Handover]) -> list[HandoverDetail]:
    """Each handover with its thread and each staff message's delivery state: the messages
    of all of them in one query, not one query per handover."""
    if not handovers:
        return []
    rows = s.execute(select(HandoverMessage, ZaloOutbox.status, ZaloOutbox.sent_at)
                     .outerjoin(ZaloOutbox, ZaloOutbox.id == HandoverMessage.outbox_id)
                     .where(HandoverMessage.handover_id.in_([h.id for h in handovers]))
                     .order_by(HandoverMessage.created_at, HandoverMessage.id)).all()
    threads: dict[int, list[MessageView]] = {h.id: [] for h in handovers}
    for m, status, sent in rows:
        threads[m.handover_id].append(_message(m, (status, sent) if status is not None
                                               else None))
    return [HandoverDetail(view, threads[h.id])
            for h, view in zip(handovers, _views(s, handovers), strict=True)]


def get(url: str, handover_id: int) -> HandoverDetail:
    """A handover with its thread and each staff message's delivery state."""
    with session_scope(url) as s:
        return _details(s, [_get(s, handover_id)])[0]


def threads_of(url: str, sender_id: str, limit: int = 50) -> list[HandoverDetail]:
    """Every hand-over of one conversation with its thread, newest first (the console's
    conversation reader)."""
    with session_scope(url) as s:
        rows = s.execute(select(Handover).where(Handover.sender_id == sender_id)
                         .order_by(Handover.id.desc()).limit(limit)).scalars().all()
        return _details(s, list(rows))


def changes_since(url: str, version: int, limit: int = 200) -> Changes:
    """Handovers changed after `version` (new, taken, answered, closed, a citizen wrote, a
    reply was delivered) and the current version: what a live page polls or is pushed."""
    with session_scope(url) as s:
        now_version = s.execute(select(CatalogCounter.number)
                                .where(CatalogCounter.key == COUNTER_KEY)).scalar_one_or_none()
        rows = list(s.execute(select(Handover).where(Handover.version > version)
                              .order_by(Handover.version).limit(limit)).scalars().all())
        # A page cut short resumes after its last row, not at the newest version.
        upto = rows[-1].version if len(rows) == limit else int(now_version or 0)
        return Changes(upto, _views(s, rows))

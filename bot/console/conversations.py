"""Conversations for the operator console: list, search and read Rasa's tracker events.

Rasa's `SQLTrackerStore` writes every event of every conversation into its `events` table
in our database (bot/stack.py points it there). Rasa owns that table: it is described here
by a minimal `Table` on a private `MetaData`, never on our `Base`, so `create_all` and the
schema upgrade never touch it, and every query is read-only.

The columns Rasa fills besides the JSON (`sender_id`, indexed; `type_name`; `timestamp`, a
Unix float; `intent_name` of user events; `action_name`, also the slot name of slot events)
answer the list page without parsing JSON: only the page's own rows are decoded (channel,
first message). Filters on the channel and the text search read JSON in SQL
(`json_extract` on SQLite, `::json` on PostgreSQL) over citizen messages only.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

from sqlalchemy import (
    Column,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    case,
    cast,
    func,
    inspect,
    literal,
    or_,
    select,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from bot.catalog.models import Feedback
from bot.text import fold, nfc

VIETNAM = timezone(timedelta(hours=7))  # dates on the console are Việt Nam days
FALLBACK_INTENT = "nlu_fallback"
CHANNELS = ("web", "widget", "zalo")
PREVIEW_CHARS = 120

# Rasa's table, as rasa.core.tracker_store.SQLTrackerStore.SQLEvent defines it.
EVENTS = Table(
    "events", MetaData(),
    Column("id", Integer, primary_key=True),
    Column("sender_id", String(255), nullable=False, index=True),
    Column("type_name", String(255), nullable=False),
    Column("timestamp", Float),
    Column("intent_name", String(255)),
    Column("action_name", String(255)),
    Column("data", Text),
)
E = EVENTS.c


@dataclass(frozen=True)
class ConversationRow:
    """One conversation (one sender id) on the list page."""

    sender_id: str
    channel: str  # "web" | "widget" | "zalo" | "unknown"
    started: datetime  # UTC
    last_activity: datetime  # UTC
    messages: int  # citizen messages, typed or buttons
    fallbacks: int  # citizen messages the NLU did not understand (nlu_fallback)
    thumbs_up: int
    thumbs_down: int
    first_message: str  # the first citizen message, cut to PREVIEW_CHARS


@dataclass(frozen=True)
class EntityMark:
    """An entity the NLU found in a citizen message."""

    entity: str
    value: Any
    start: int | None
    end: int | None
    extractor: str | None = None
    confidence: float | None = None


@dataclass(frozen=True)
class BotReply:
    """One message of the bot, with the action that sent it."""

    text: str
    buttons: list[dict[str, str]]
    at: datetime
    action: str | None


@dataclass
class Turn:
    """A citizen message with its NLU result and everything the bot did until the next one.

    The first turn of a conversation may have no citizen message (`event_id` None) when the
    bot spoke first.
    """

    event_id: int | None
    at: datetime | None
    text: str | None = None
    intent: str | None = None
    confidence: float | None = None
    entities: list[EntityMark] = field(default_factory=list)
    ranking: list[tuple[str, float]] = field(default_factory=list)
    channel: str | None = None
    replies: list[BotReply] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)
    slots: list[tuple[str, Any]] = field(default_factory=list)
    feedback: list[str] = field(default_factory=list)  # "up" / "down" on this turn's answer

    @property
    def is_payload(self) -> bool:
        """A button's payload ("/ask_fee{...}"), not words the citizen typed."""
        return bool(self.text) and self.text.startswith("/")

    @property
    def is_fallback(self) -> bool:
        return self.intent == FALLBACK_INTENT

    @property
    def answer(self) -> str:
        """The bot's reply to this message as the citizen saw it (parts joined)."""
        return "\n\n".join(r.text for r in self.replies if r.text)


# --------------------------------------------------------------------------- helpers


def events_table_exists(session: Session) -> bool:
    """Whether Rasa has created its table yet (it does on the first start of the stack)."""
    return inspect(session.connection()).has_table("events")


def utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, timezone.utc)


def to_timestamp(value: datetime | date | None, *, end: bool = False) -> float | None:
    """A filter bound as Rasa's Unix timestamp.

    A `date` is a Việt Nam day: as `since` it means that day's start, as `until` (end=True)
    the end of that day, so `until=date(2026, 11, 27)` includes the 27th. A naive datetime
    is UTC; datetimes are exact (an `until` datetime is exclusive).
    """
    if value is None:
        return None
    if not isinstance(value, datetime):
        day = value + timedelta(days=1) if end else value
        return datetime.combine(day, time(0), VIETNAM).timestamp()
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.timestamp()


def json_text(session: Session, *path: str) -> ColumnElement:
    """A text field inside the events' JSON, in this database's dialect (SQL, not Python)."""
    if session.get_bind().dialect.name == "postgresql":
        return cast(E.data, postgresql.JSON)[path].astext  # type: ignore[index]
    return func.json_extract(E.data, "$." + ".".join(f'"{p}"' for p in path))


def json_number(session: Session, *path: str) -> ColumnElement:
    """A numeric field inside the events' JSON."""
    return cast(json_text(session, *path), Float)


_FOLD_FROM = "".join(sorted({ch for ch in (
    "àáạảãâầấậẩẫăằắặẳẵèéẹẻẽêềếệểễìíịỉĩòóọỏõôồốộổỗơờớợởỡùúụủũưừứựửữỳýỵỷỹđ")}))
_FOLD_FROM += _FOLD_FROM.upper() + "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_FOLD_TO = "".join(fold(ch) for ch in _FOLD_FROM)


def _sqlite_fold(value: object) -> str | None:
    return fold(value) if isinstance(value, str) else None


def folded(session: Session, expr: ColumnElement) -> ColumnElement:
    """`expr` lower-cased and without Vietnamese diacritics, in SQL.

    SQLite gets `bot.text.fold` itself as a function on this connection; PostgreSQL uses
    `translate()` over the Vietnamese letters (no extension needed, any locale).
    """
    if session.get_bind().dialect.name == "postgresql":
        return func.lower(func.translate(expr, _FOLD_FROM, _FOLD_TO))
    raw = session.connection().connection
    dbapi = getattr(raw, "dbapi_connection", None) or getattr(raw, "connection", raw)
    dbapi.create_function("dvc_fold", 1, _sqlite_fold, deterministic=True)
    return func.dvc_fold(expr)


def like_pattern(query: str) -> str:
    """A LIKE pattern for a folded substring, wildcards in the query escaped with '\\'."""
    q = fold(" ".join(nfc(query).split()))
    return "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def channel_of(sender_id: str, metadata: object) -> str:
    """The channel of a citizen message: the gateway's metadata, else the sender's prefix."""
    if isinstance(metadata, dict):
        name = metadata.get("channel")
        if isinstance(name, str) and name in CHANNELS:
            return name
    return "zalo" if sender_id.startswith("zalo-") else "unknown"


def _norm(text: str | None) -> str:
    return " ".join(nfc(text or "").split())


def _feedback_rows(session: Session, senders: Sequence[str]) -> list[Feedback]:
    if not senders:
        return []
    return list(session.execute(
        select(Feedback).where(Feedback.session.in_(senders)).order_by(Feedback.id)
    ).scalars())


def attach_feedback(turns: Sequence[Turn], rows: Iterable[Feedback]) -> dict[int, Turn]:
    """Put each rating on the turn whose answer it rated; {feedback id: turn}.

    The widget keeps no link to Rasa's events: it sends the answer's text (its parts joined
    as one bubble, cut to 2,000 characters). The rated turn is the latest one, before the
    rating, whose answer contains that text once whitespace is normalised.
    """
    matched: dict[int, Turn] = {}
    answers = [(t, _norm(t.answer)) for t in turns]
    for row in rows:
        wanted = _norm(row.text)
        if not wanted:
            continue
        rated_at = row.created_at
        if rated_at is not None and rated_at.tzinfo is None:
            rated_at = rated_at.replace(tzinfo=timezone.utc)
        candidates = [t for t, answer in answers if answer and wanted in answer]
        if not candidates:
            continue
        before = [t for t in candidates if rated_at is None or t.at is None
                  or t.at <= rated_at + timedelta(seconds=60)]
        turn = (before or candidates)[-1]
        turn.feedback.append(row.rating)
        matched[row.id] = turn
    return matched


# --------------------------------------------------------------------------- list


def list_conversations(
    session: Session, *,
    since: datetime | date | None = None,
    until: datetime | date | None = None,
    channel: str | None = None,
    intent: str | None = None,
    fallback_only: bool = False,
    thumbs_down_only: bool = False,
    text_query: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[ConversationRow], int]:
    """One page of conversations, newest activity first, and how many match in total.

    Filters combine (AND): a citizen message in [since, until); the channel; a citizen
    message with `intent`; at least one fallback; at least one thumbs down; a citizen
    message containing `text_query` (case and diacritics ignored).
    """
    if not events_table_exists(session):
        return [], 0
    user = E.type_name == "user"
    conds: list[ColumnElement] = []

    def senders_where(*where: ColumnElement) -> ColumnElement:
        return E.sender_id.in_(select(E.sender_id).where(user, *where).distinct())

    lo, hi = to_timestamp(since), to_timestamp(until, end=True)
    if lo is not None or hi is not None:
        conds.append(senders_where(*([E.timestamp >= lo] if lo is not None else []),
                                   *([E.timestamp < hi] if hi is not None else [])))
    if intent:
        conds.append(senders_where(E.intent_name == intent))
    if channel:
        by_meta = json_text(session, "metadata", "channel") == channel
        if channel == "zalo":
            by_meta = or_(by_meta, E.sender_id.like("zalo-%"))
        elif channel == "unknown":
            by_meta = and_(func.coalesce(json_text(session, "metadata", "channel"), "")
                           .notin_(CHANNELS), E.sender_id.notlike("zalo-%"))
        conds.append(senders_where(by_meta))
    if thumbs_down_only:
        conds.append(E.sender_id.in_(
            select(Feedback.session).where(Feedback.rating == "down").distinct()))
    if text_query and text_query.strip():
        conds.append(senders_where(
            folded(session, json_text(session, "text")).like(like_pattern(text_query),
                                                              escape="\\")))

    messages = func.sum(case((user, 1), else_=0))
    fallbacks = func.sum(case((and_(user, E.intent_name == FALLBACK_INTENT), 1), else_=0))
    grouped = (
        select(E.sender_id.label("sender_id"),
               func.min(E.timestamp).label("started"),
               func.max(E.timestamp).label("last"),
               messages.label("messages"),
               fallbacks.label("fallbacks"),
               func.min(case((user, E.id), else_=None)).label("first_user_id"))
        .where(*conds)
        .group_by(E.sender_id)
        .having(messages > 0)
    )
    if fallback_only:
        grouped = grouped.having(fallbacks > 0)
    total = session.execute(select(func.count()).select_from(grouped.subquery())).scalar_one()
    page = session.execute(
        grouped.order_by(func.max(E.timestamp).desc(), E.sender_id)
        .limit(max(0, limit)).offset(max(0, offset))
    ).all()
    if not page:
        return [], total

    firsts: dict[str, tuple[str, str]] = {}
    for sender, data in session.execute(
            select(E.sender_id, E.data).where(E.id.in_([r.first_user_id for r in page]))):
        event = _loads(data)
        text = event.get("text") if isinstance(event.get("text"), str) else ""
        firsts[sender] = (channel_of(sender, event.get("metadata")), text)
    ratings: dict[tuple[str, str], int] = {}
    for sender, rating, count in session.execute(
            select(Feedback.session, Feedback.rating, func.count())
            .where(Feedback.session.in_([r.sender_id for r in page]))
            .group_by(Feedback.session, Feedback.rating)):
        ratings[(sender, rating)] = count
    rows = []
    for r in page:
        chan, text = firsts.get(r.sender_id, (channel_of(r.sender_id, None), ""))
        preview = text if len(text) <= PREVIEW_CHARS else text[:PREVIEW_CHARS - 1] + "…"
        rows.append(ConversationRow(
            sender_id=r.sender_id, channel=chan, started=utc(r.started),
            last_activity=utc(r.last), messages=int(r.messages), fallbacks=int(r.fallbacks),
            thumbs_up=ratings.get((r.sender_id, "up"), 0),
            thumbs_down=ratings.get((r.sender_id, "down"), 0), first_message=preview))
    return rows, total


# --------------------------------------------------------------------------- read


def _loads(data: str | None) -> dict[str, Any]:
    try:
        value = json.loads(data or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _entities(parse_data: dict[str, Any]) -> list[EntityMark]:
    out = []
    for e in parse_data.get("entities") or []:
        if isinstance(e, dict) and isinstance(e.get("entity"), str):
            conf = e.get("confidence_entity")
            out.append(EntityMark(entity=e["entity"], value=e.get("value"),
                                  start=e.get("start"), end=e.get("end"),
                                  extractor=e.get("extractor"),
                                  confidence=float(conf) if isinstance(conf, int | float)
                                  else None))
    return out


def _ranking(parse_data: dict[str, Any]) -> list[tuple[str, float]]:
    out = []
    for r in parse_data.get("intent_ranking") or []:
        if isinstance(r, dict) and isinstance(r.get("name"), str):
            out.append((r["name"], float(r.get("confidence") or 0.0)))
    return out


def user_turn(event_id: int, sender_id: str, event: dict[str, Any]) -> Turn:
    """A turn from one Rasa `user` event (its NLU result, no replies yet)."""
    parse = event.get("parse_data") if isinstance(event.get("parse_data"), dict) else {}
    intent = parse.get("intent") if isinstance(parse.get("intent"), dict) else {}
    conf = intent.get("confidence")
    ts = event.get("timestamp")
    return Turn(
        event_id=event_id, at=utc(ts) if isinstance(ts, int | float) else None,
        text=event.get("text") if isinstance(event.get("text"), str) else "",
        intent=intent.get("name"),
        confidence=float(conf) if isinstance(conf, int | float) else None,
        entities=_entities(parse), ranking=_ranking(parse),
        channel=channel_of(sender_id, event.get("metadata")))


def build_turns(sender_id: str, rows: Iterable[tuple[int, str, str | None]]) -> list[Turn]:
    """Group (id, type_name, data) events, in id order, into turns."""
    turns: list[Turn] = []
    current: Turn | None = None
    last_action: str | None = None
    for event_id, type_name, data in rows:
        event = _loads(data)
        ts = event.get("timestamp")
        at = utc(ts) if isinstance(ts, int | float) else None
        if type_name == "user":
            current = user_turn(event_id, sender_id, event)
            turns.append(current)
            last_action = None
            continue
        if type_name not in ("bot", "action", "slot"):
            continue
        if current is None:  # the bot acts before the first citizen message
            current = Turn(event_id=None, at=at)
            turns.append(current)
        if type_name == "action":
            name = event.get("name")
            if isinstance(name, str) and name not in ("action_listen", "action_session_start"):
                current.actions.append(name)
                last_action = name
        elif type_name == "slot":
            name = event.get("name")
            if isinstance(name, str) and name != "session_started_metadata":
                current.slots.append((name, event.get("value")))
        else:
            extra = event.get("data") if isinstance(event.get("data"), dict) else {}
            buttons = [{"title": str(b.get("title", "")), "payload": str(b.get("payload", ""))}
                       for b in extra.get("buttons") or [] if isinstance(b, dict)]
            meta = event.get("metadata") if isinstance(event.get("metadata"), dict) else {}
            current.replies.append(BotReply(
                text=event.get("text") if isinstance(event.get("text"), str) else "",
                buttons=buttons, at=at or datetime.now(timezone.utc),
                action=meta.get("utter_action") or last_action))
    return [t for t in turns if t.event_id is not None or t.replies]


def read_conversation(session: Session, sender_id: str) -> list[Turn]:
    """Every turn of one conversation, oldest first, with NLU results and ratings."""
    if not events_table_exists(session):
        return []
    rows = session.execute(
        select(E.id, E.type_name, E.data)
        .where(E.sender_id == sender_id, E.type_name.in_(("user", "bot", "action", "slot")))
        .order_by(E.id)).all()
    turns = build_turns(sender_id, rows)
    attach_feedback(turns, _feedback_rows(session, [sender_id]))
    return turns


def conversation_exists(session: Session, sender_id: str) -> bool:
    """Whether Rasa has any event of `sender_id`."""
    if not events_table_exists(session):
        return False
    return session.execute(
        select(literal(1)).where(E.sender_id == sender_id).limit(1)).first() is not None

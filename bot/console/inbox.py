"""The NLU inbox: citizen messages the bot was unsure about, reviewed by operators.

A message lands in the inbox when the NLU fell back (`nlu_fallback`), when its top intent's
confidence is below `INBOX_CONFIDENCE`, or when the citizen gave the answer to it a thumbs
down; it leaves when an operator decides: the right intent and entities (`correct`, a
training example stored in the database, see bot.console.corrections), "not our job"
(`mark_out_of_scope`, also a training example, intent `out_of_scope`) or `ignore`. The
decision is a row of `nlu_reviews`; the message itself stays in Rasa's `events` table.
`suggest` returns what the NLU itself thought, so that the common case, "the NLU was right
but unsure", is one click.

Button payloads ("/ask_fee{...}") are never inbox items: they are not language. A thumbs
down on the answer to a button goes to the last message the citizen typed before it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.catalog.models import Feedback
from bot.config import Settings
from bot.console.conversations import (
    FALLBACK_INTENT,
    E,
    EntityMark,
    Turn,
    attach_feedback,
    build_turns,
    events_table_exists,
    json_number,
    user_turn,
)
from bot.console.corrections import (
    DOMAIN_FILE,
    OUT_OF_SCOPE,
    AddedExample,
    DuplicateExample,
    EntitySpan,
    store_example,
)
from bot.console.inbox_models import NluReview

REASON_FALLBACK = "fallback"
REASON_LOW_CONFIDENCE = "low_confidence"
REASON_THUMBS_DOWN = "thumbs_down"


class InboxError(ValueError):
    """The item cannot be reviewed (unknown, already reviewed…); message in Vietnamese."""


@dataclass(frozen=True)
class InboxItem:
    """One citizen message waiting for (or open to) an operator's review."""

    id: int  # Rasa's event id of the citizen message
    sender_id: str
    channel: str
    at: datetime | None
    text: str
    intent: str | None
    confidence: float | None
    entities: list[EntityMark]
    ranking: list[tuple[str, float]]
    reasons: tuple[str, ...]  # REASON_* (empty for a message opened from a conversation)
    answer: str  # what the bot replied


@dataclass(frozen=True)
class Suggestion:
    """What the NLU made of the message: accepting it is the one-click correction."""

    intent: str | None  # the NLU's own top intent (never nlu_fallback), None if it had none
    confidence: float | None
    top: list[tuple[str, float]]  # up to 3 intents, best first, nlu_fallback left out
    entities: list[EntitySpan]  # the NLU's entities as spans on the text


def _settings() -> Settings:
    return Settings.from_env()


def _reviewed_ids(session: Session) -> set[int]:
    return set(session.execute(select(NluReview.event_id)).scalars())


def _thumbs_down_ids(session: Session) -> dict[int, str]:
    """{citizen message event id: answer} for every thumbs down, via the rated answer."""
    sessions = sorted(set(session.execute(
        select(Feedback.session).where(Feedback.rating == "down")).scalars()))
    out: dict[int, str] = {}
    for sender in sessions:
        rows = session.execute(
            select(E.id, E.type_name, E.data)
            .where(E.sender_id == sender, E.type_name.in_(("user", "bot", "action", "slot")))
            .order_by(E.id)).all()
        if not rows:
            continue
        turns = build_turns(sender, rows)
        downs = session.execute(select(Feedback).where(
            Feedback.session == sender, Feedback.rating == "down")).scalars()
        for turn in attach_feedback(turns, downs).values():
            typed = _typed_turn(turns, turn)
            if typed is not None and typed.event_id is not None:
                out.setdefault(typed.event_id, turn.answer)
    return out


def _typed_turn(turns: Sequence[Turn], turn: Turn) -> Turn | None:
    """The turn itself, or for a button's answer the last typed message before it."""
    index = turns.index(turn)
    for candidate in reversed(turns[:index + 1]):
        if candidate.event_id is not None and not candidate.is_payload and candidate.text:
            return candidate
    return None


def _answer_after(session: Session, sender_id: str, event_id: int) -> str:
    """The bot's messages after a citizen message, up to the next citizen message."""
    rows = session.execute(
        select(E.type_name, E.data).where(E.sender_id == sender_id, E.id > event_id,
                                          E.type_name.in_(("user", "bot")))
        .order_by(E.id).limit(40)).all()
    texts = []
    for type_name, data in rows:
        if type_name == "user":
            break
        try:
            text = json.loads(data or "{}").get("text")
        except ValueError:
            text = None
        if isinstance(text, str) and text:
            texts.append(text)
    return "\n\n".join(texts)


def _item(session: Session, event_id: int, reasons: tuple[str, ...],
          answer: str | None = None) -> InboxItem | None:
    row = session.execute(select(E.sender_id, E.type_name, E.data).where(E.id == event_id)
                          ).first()
    if row is None or row.type_name != "user":
        return None
    try:
        event = json.loads(row.data or "{}")
    except ValueError:
        event = {}
    turn = user_turn(event_id, row.sender_id, event if isinstance(event, dict) else {})
    return InboxItem(
        id=event_id, sender_id=row.sender_id, channel=turn.channel or "unknown", at=turn.at,
        text=turn.text or "", intent=turn.intent, confidence=turn.confidence,
        entities=turn.entities, ranking=turn.ranking, reasons=reasons,
        answer=answer if answer is not None else _answer_after(session, row.sender_id,
                                                                event_id))


def inbox(session: Session, limit: int = 50, offset: int = 0, *,
          threshold: float | None = None) -> tuple[list[InboxItem], int]:
    """One page of unreviewed items, newest first, and how many there are in total.

    `threshold`: INBOX_CONFIDENCE unless given. The fallback and low-confidence candidates
    are found in SQL (the confidence is read from the JSON of citizen messages only); the
    thumbs downs come from the `feedback` table, matched to the rated answer.
    """
    if not events_table_exists(session):
        return [], 0
    threshold = _settings().inbox_confidence if threshold is None else threshold
    confidence = json_number(session, "parse_data", "intent", "confidence")
    reasons: dict[int, list[str]] = {}
    for event_id, intent in session.execute(
            select(E.id, E.intent_name).where(
                E.type_name == "user",
                or_(E.intent_name == FALLBACK_INTENT, confidence < threshold))):
        reasons[event_id] = [REASON_FALLBACK if intent == FALLBACK_INTENT
                             else REASON_LOW_CONFIDENCE]
    answers = _thumbs_down_ids(session)
    for event_id in answers:
        reasons.setdefault(event_id, []).append(REASON_THUMBS_DOWN)
    for event_id in _reviewed_ids(session):
        reasons.pop(event_id, None)
    ids = sorted(reasons, reverse=True)
    items = []
    for event_id in ids[max(0, offset):max(0, offset) + max(0, limit)]:
        item = _item(session, event_id, tuple(reasons[event_id]), answers.get(event_id))
        if item is not None and not item.text.startswith("/"):
            items.append(item)
    return items, len(ids)


def get_item(session: Session, item_id: int, *, threshold: float | None = None) -> InboxItem:
    """Any citizen message by its event id (an inbox item or one opened from a conversation)."""
    if not events_table_exists(session):
        raise InboxError("Chưa có cuộc trò chuyện nào được lưu.")
    threshold = _settings().inbox_confidence if threshold is None else threshold
    item = _item(session, item_id, ())
    if item is None:
        raise InboxError(f"Không tìm thấy tin nhắn số {item_id} của người dân.")
    reasons = []
    if item.intent == FALLBACK_INTENT:
        reasons.append(REASON_FALLBACK)
    elif item.confidence is not None and item.confidence < threshold:
        reasons.append(REASON_LOW_CONFIDENCE)
    return replace(item, reasons=tuple(reasons))


def suggest(item: InboxItem) -> Suggestion:
    """The NLU's own reading of the message: its top intent, the top 3, its entities.

    With a fallback, Rasa's ranking puts `nlu_fallback` first and the classifier's real
    guesses after it; those guesses are what an operator most often confirms.
    """
    top = [(name, conf) for name, conf in item.ranking if name != FALLBACK_INTENT][:3]
    if item.intent and item.intent != FALLBACK_INTENT:
        intent, confidence = item.intent, item.confidence
        if not top or top[0][0] != intent:
            top = [(intent, confidence or 0.0)] + [t for t in top if t[0] != intent][:2]
    elif top:
        intent, confidence = top[0]
    else:
        intent, confidence = None, None
    # Spans only, like the hand-written data: a value would be the catalog matcher's code,
    # which is looked up at run time, not learnt. Two extractors may mark the same words:
    # the longer span wins, overlaps are dropped (a correction refuses them).
    spans: list[EntitySpan] = []
    marks = [e for e in item.entities if isinstance(e.start, int) and isinstance(e.end, int)
             and 0 <= e.start < e.end <= len(item.text)]
    for e in sorted(marks, key=lambda m: (-(m.end - m.start), m.start)):
        if all(e.end <= s.start or e.start >= s.end for s in spans):
            spans.append(EntitySpan(e.start, e.end, e.entity))
    spans.sort(key=lambda s: s.start)
    return Suggestion(intent=intent, confidence=confidence, top=top, entities=spans)


def _spans(entities: Iterable[EntitySpan | Sequence]) -> list[EntitySpan]:
    out = []
    for e in entities:
        if isinstance(e, EntitySpan):
            out.append(e)
        elif isinstance(e, dict):
            out.append(EntitySpan(int(e["start"]), int(e["end"]), str(e["entity"]),
                                  e.get("value")))
        else:
            start, end, entity, *rest = e
            out.append(EntitySpan(int(start), int(end), str(entity), rest[0] if rest else None))
    return out


def _open_item(session: Session, item_id: int) -> InboxItem:
    item = get_item(session, item_id, threshold=0.0)
    done = session.execute(select(NluReview).where(NluReview.event_id == item_id)
                           ).scalar_one_or_none()
    if done is not None:
        raise InboxError(f"Tin nhắn này đã được {done.reviewed_by} xử lý ({done.status}).")
    if item.text.startswith("/"):
        raise InboxError("Tin nhắn này là lệnh của nút bấm, không phải câu người dân gõ.")
    return item


def _record(session: Session, item: InboxItem, status: str, by: str, intent: str | None,
            spans: Sequence[EntitySpan], added: AddedExample | None) -> NluReview:
    by = (by or "").strip()
    if not by:
        raise InboxError("Thiếu tên cán bộ xử lý.")
    review = NluReview(
        sender_id=item.sender_id, event_id=item.id,
        event_ts=item.at.timestamp() if item.at else None, status=status, intent=intent,
        entities=json.dumps([{"start": s.start, "end": s.end, "entity": s.entity,
                              "value": s.value} for s in spans], ensure_ascii=False)
        if spans else None,
        example=added.example if added else None, reviewed_by=by[:64],
        reviewed_at=datetime.now(timezone.utc))
    session.add(review)
    try:
        session.flush()
    except IntegrityError as exc:  # another operator won the race (unique sender + event)
        session.rollback()
        raise InboxError("Tin nhắn này vừa được một cán bộ khác xử lý.") from exc
    return review


def _add(session: Session, item: InboxItem, intent: str, spans: Sequence[EntitySpan],
         by: str, corrections_file: Path | None, domain_file: Path) -> AddedExample | None:
    """Store the example in the database, in the review's transaction (so both or neither
    are kept); a text already labelled with this same intent is not an error."""
    try:
        return store_example(session, item.text, intent, spans, by=by,
                             corrections_file=corrections_file
                             or _settings().nlu_corrections_file, domain_file=domain_file)
    except DuplicateExample as exc:
        if exc.intent == intent:
            return None
        raise


def correct(session: Session, item_id: int, intent: str,
            entities: Iterable[EntitySpan | Sequence] = (), by: str = "", *,
            corrections_file: Path | None = None,
            domain_file: Path = DOMAIN_FILE) -> NluReview:
    """Assign the right intent (and entities) and add the message to the training data.

    Entities are `EntitySpan`s or (start, end, entity[, value]) on the message's text.
    Raises `InboxError` / `bot.console.corrections.CorrectionError` (Vietnamese messages);
    the caller commits the session.
    """
    item = _open_item(session, item_id)
    if not (by or "").strip():
        raise InboxError("Thiếu tên cán bộ xử lý.")
    spans = _spans(entities)
    added = _add(session, item, intent, spans, by, corrections_file, domain_file)
    return _record(session, item, "corrected", by, intent, spans, added)


def mark_out_of_scope(session: Session, item_id: int, by: str, *,
                      corrections_file: Path | None = None,
                      domain_file: Path = DOMAIN_FILE) -> NluReview:
    """Not a public-service question: becomes an `out_of_scope` training example."""
    item = _open_item(session, item_id)
    if not (by or "").strip():
        raise InboxError("Thiếu tên cán bộ xử lý.")
    added = _add(session, item, OUT_OF_SCOPE, [], by, corrections_file, domain_file)
    return _record(session, item, "out_of_scope", by, OUT_OF_SCOPE, [], added)


def ignore(session: Session, item_id: int, by: str) -> NluReview:
    """Take the message out of the inbox without touching the training data."""
    item = _open_item(session, item_id)
    return _record(session, item, "ignored", by, None, [], None)

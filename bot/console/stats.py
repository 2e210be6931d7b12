"""Dashboard numbers for a range of Việt Nam days, from Rasa's events and our own tables.

Definitions (the console shows them next to the numbers):

* a **conversation** of the range is a sender id with at least one citizen message in it;
  one that spans midnight counts on both days of `per_day`, once in `conversations`;
* **answered without a human**: conversations of the range with no handover opened in the
  range (`handovers`; none counted when that table does not exist);
* **fallback rate**: citizen messages the NLU did not understand (`nlu_fallback`) divided by
  all citizen messages of the range (typed or buttons);
* **top intents**: citizen messages per intent (fallbacks left out: they have their rate);
* **top procedures**: conversations per catalog procedure the bot answered about (the
  `procedure_code` slot the answer actions set), with the catalog's name;
* **thumbs**: ratings given in the range (the last rating of an answer counts).

Only the slot events of the range are decoded from JSON; everything else is counted from
Rasa's plain columns or our tables.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

from sqlalchemy import func, inspect, select
from sqlalchemy.orm import Session

from bot.catalog.models import Feedback, Procedure
from bot.console.conversations import FALLBACK_INTENT, VIETNAM, E, events_table_exists, to_timestamp

PROCEDURE_SLOT = "procedure_code"


@dataclass(frozen=True)
class DashboardStats:
    """Everything the dashboard shows for [start, end] (Việt Nam days, inclusive)."""

    start: date
    end: date
    conversations: int
    per_day: list[tuple[date, int]]  # every day of the range, zeros included
    handed_over: int
    answered_without_human: int
    share_without_human: float | None  # None when there is no conversation
    citizen_messages: int
    fallback_messages: int
    fallback_rate: float | None
    top_intents: list[tuple[str, int]]
    top_procedures: list[tuple[str, str, int]]  # (code, catalog name, conversations)
    thumbs_up: int
    thumbs_down: int
    thumbs_up_ratio: float | None  # up / (up + down)


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _utc_naive(day: date) -> datetime:
    """Start of a Việt Nam day as the naive UTC datetime our DateTime columns hold."""
    return datetime.combine(day, datetime.min.time(), VIETNAM).astimezone(
        timezone.utc).replace(tzinfo=None)


def _handed_over(session: Session, senders: set[str], start: date, end: date) -> int:
    """Conversations of the range with a handover opened in the range (0 without the table)."""
    if not senders or not inspect(session.connection()).has_table("handovers"):
        return 0
    from bot.handover.models import Handover

    lo, hi = _utc_naive(start), _utc_naive(end + timedelta(days=1))
    opened = set(session.execute(
        select(Handover.sender_id).where(Handover.created_at >= lo, Handover.created_at < hi)
        .distinct()).scalars())
    return len(opened & senders)


def dashboard(session: Session, start: date, end: date, *, top: int = 10) -> DashboardStats:
    """The dashboard's numbers for the Việt Nam days start..end (inclusive)."""
    if end < start:
        start, end = end, start
    days = [start + timedelta(days=i) for i in range((end - start).days + 1)]
    lo, hi = to_timestamp(start), to_timestamp(end, end=True)
    per_day_senders: dict[date, set[str]] = {d: set() for d in days}
    senders: set[str] = set()
    intents: Counter[str] = Counter()
    messages = fallbacks = 0
    procedures: dict[str, set[str]] = {}
    if events_table_exists(session):
        for sender, ts, intent in session.execute(
                select(E.sender_id, E.timestamp, E.intent_name)
                .where(E.type_name == "user", E.timestamp >= lo, E.timestamp < hi)):
            day = datetime.fromtimestamp(ts, VIETNAM).date()
            per_day_senders.setdefault(day, set()).add(sender)
            senders.add(sender)
            messages += 1
            if intent == FALLBACK_INTENT:
                fallbacks += 1
            elif intent:
                intents[intent] += 1
        for sender, data in session.execute(
                select(E.sender_id, E.data)
                .where(E.type_name == "slot", E.action_name == PROCEDURE_SLOT,
                       E.timestamp >= lo, E.timestamp < hi)):
            try:
                value = json.loads(data or "{}").get("value")
            except ValueError:
                continue
            if isinstance(value, str) and value:
                procedures.setdefault(value, set()).add(sender)
    ranked = sorted(procedures.items(), key=lambda kv: (-len(kv[1]), kv[0]))[:top]
    names = dict(session.execute(select(Procedure.code, Procedure.name).where(
        Procedure.code.in_([code for code, _ in ranked]))).all()) if ranked else {}
    ratings = dict(session.execute(
        select(Feedback.rating, func.count())
        .where(Feedback.created_at >= _utc_naive(start),
               Feedback.created_at < _utc_naive(end + timedelta(days=1)))
        .group_by(Feedback.rating)).all())
    up, down = int(ratings.get("up", 0)), int(ratings.get("down", 0))
    handed = _handed_over(session, senders, start, end)
    conversations = len(senders)
    return DashboardStats(
        start=start, end=end, conversations=conversations,
        per_day=[(d, len(per_day_senders.get(d, ()))) for d in days],
        handed_over=handed, answered_without_human=conversations - handed,
        share_without_human=_ratio(conversations - handed, conversations),
        citizen_messages=messages, fallback_messages=fallbacks,
        fallback_rate=_ratio(fallbacks, messages),
        top_intents=sorted(intents.items(), key=lambda kv: (-kv[1], kv[0]))[:top],
        top_procedures=[(code, names.get(code, code), len(who)) for code, who in ranked],
        thumbs_up=up, thumbs_down=down, thumbs_up_ratio=_ratio(up, up + down))

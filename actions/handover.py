"""Handing a conversation over to a person: "gặp cán bộ", or the bot failing twice in a row.

Both open a handover in the database (bot.handover.queue); from the next message on, the
gateway routes the citizen's messages to the agents and the bot stays silent until an agent
closes it. Outside working hours (HANDOVER_HOURS, the holiday calendar) the handover is
still queued, and the citizen is told when staff are back and invited to leave a message.

"Failing" means a turn the bot could not serve: a message it did not understand
(nlu_fallback → action_fallback) or a rejection of the procedures it offered (the "none of
these" answer, recognised by its "Gặp cán bộ" button). The first failure gets the usual
"please rephrase"; the second in a row (HANDOVER_AFTER_FALLBACKS) hands over instead of
repeating it. A "not found" answer is not counted: it tells the citizen something true about
the catalog and already suggests asking for a person.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.answers import HANDOFF_BUTTON
from bot.config import Settings
from bot.handover import texts
from bot.handover.hours import HoursError, WorkingHours, parse_hours, vietnam_now, working_hours
from bot.handover.models import BOT, CITIZEN
from bot.handover.queue import open_handover, who
from bot.status.workdays import WorkCalendar

log = logging.getLogger(__name__)

SLOT = "handover_id"
FALLBACK_ACTION = "action_fallback"
REQUEST_ACTION = "action_request_human"
# Events that start a conversation afresh: failures before them do not count.
RESETS = ("session_started", "restart")


def hours_of(settings: Settings) -> WorkingHours:
    """The configured hours; a broken value (the gateway refuses to start with one) is
    treated as "always open" so that a citizen is never refused a person because of it."""
    try:
        return working_hours(settings.handover_hours, settings.work_calendar)
    except HoursError as exc:
        log.error("HANDOVER_HOURS unusable, treated as always open: %s", exc)
        return WorkingHours(parse_hours("always"), WorkCalendar())


def channel_of(tracker: Tracker) -> tuple[str, str]:
    """(channel, address to reply to) of the conversation, from the message's metadata.

    The gateway sets the channel ("widget", "web"; the Zalo worker "zalo" with the sender
    "zalo-<user id>"); anything else, e.g. `rasa shell`, counts as "web".
    """
    metadata = (tracker.latest_message or {}).get("metadata") or {}
    channel = metadata.get("channel") if isinstance(metadata, dict) else None
    sender = tracker.sender_id
    if channel == "zalo" and sender.startswith("zalo-"):
        return "zalo", sender.removeprefix("zalo-")
    return ("widget" if channel == "widget" else "web"), sender


def _turns(events: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """The events of each user turn, oldest first, since the conversation (re)started; the
    last one is the current turn (its user message and whatever ran so far)."""
    turns: list[list[dict[str, Any]]] = [[]]
    for event in events:
        kind = event.get("event")
        if kind in RESETS:
            turns = [[]]
        elif kind == "user":
            turns.append([event])
        else:
            turns[-1].append(event)
    return turns[1:]


def _failed(turn: list[dict[str, Any]]) -> bool | None:
    """True if the bot failed this turn, False if it served it, None if a handover was
    opened in it (a run of failures ends there: after an agent closes the handover, the next
    misunderstanding starts counting again)."""
    for event in turn:
        if event.get("event") == "slot" and event.get("name") == SLOT:
            return None
        if event.get("event") == "action" and event.get("name") == REQUEST_ACTION:
            return None
    for event in turn:
        if event.get("event") == "action" and event.get("name") == FALLBACK_ACTION:
            return True
        if event.get("event") == "bot":
            buttons = (event.get("data") or {}).get("buttons") or []
            if any(b.get("payload") == HANDOFF_BUTTON["payload"] for b in buttons):
                return True
    return False


def failures_in_a_row(tracker: Tracker) -> int:
    """How many turns right before the current one the bot failed."""
    count = 0
    for turn in reversed(_turns(list(tracker.events or []))[:-1]):
        if not _failed(turn):
            break
        count += 1
    return count


def conversation(tracker: Tracker, limit: int = 10) -> list[tuple[str, str, datetime]]:
    """The last lines of the conversation (citizen and bot), for the agent's context."""
    lines: list[tuple[str, str, datetime]] = []
    for event in tracker.events or []:
        kind = event.get("event")
        if kind in RESETS:
            lines = []
        if kind not in ("user", "bot") or not event.get("text"):
            continue
        ts = event.get("timestamp")
        at = (datetime.fromtimestamp(ts, timezone.utc) if isinstance(ts, (int, float))
              else datetime.now(timezone.utc)).replace(tzinfo=None)
        lines.append((CITIZEN if kind == "user" else BOT, str(event["text"]), at))
    return lines[-limit:]


def hand_over(dispatcher: CollectingDispatcher, tracker: Tracker, reason: str
              ) -> list[EventType]:
    """Open (or keep) the conversation's handover and tell the citizen what happens next."""
    settings = Settings.from_env()
    hours = hours_of(settings)
    now = vietnam_now()
    channel, address = channel_of(tracker)
    try:
        view, created = open_handover(
            settings.database_url, sender_id=tracker.sender_id, channel=channel,
            address=address, reason=reason, after_hours=not hours.is_open(now),
            context=conversation(tracker))
    except Exception:
        log.exception("handover could not be opened for %s", who(tracker.sender_id))
        dispatcher.utter_message(text=texts.unavailable(settings.support_hotline))
        return []
    log.info("handover %d %s for %s (%s, %s)", view.id, "opened" if created else "kept",
             who(tracker.sender_id), channel, reason)
    dispatcher.utter_message(text=texts.opened(hours, now, reason, settings.support_hotline))
    return [SlotSet(SLOT, float(view.id))]


class RequestHuman(Action):
    """The citizen asked for a person ("gặp cán bộ", the "Gặp cán bộ" button)."""

    def name(self) -> str:
        return REQUEST_ACTION

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
            domain: dict[str, Any]) -> list[EventType]:
        return hand_over(dispatcher, tracker, "requested")


class Fallback(Action):
    """A message the bot did not understand: "please rephrase", or, after another failed
    turn right before it, a person (see the module docstring)."""

    def name(self) -> str:
        return FALLBACK_ACTION

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
            domain: dict[str, Any]) -> list[EventType]:
        limit = Settings.from_env().handover_after_fallbacks
        if limit > 0 and failures_in_a_row(tracker) + 1 >= limit:
            return hand_over(dispatcher, tracker, "fallback")
        dispatcher.utter_message(response="utter_default")
        return []

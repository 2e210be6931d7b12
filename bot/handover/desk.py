"""The handover service inside the gateway process: the API the console's pages call, and
what the chat paths (REST, WebSocket, Zalo) ask before a citizen's message reaches the bot.

`HandoverDesk` wraps the synchronous queue (bot.handover.queue) for the event loop and adds
the in-process parts: pushing staff messages to the widget's open sockets, waking the Zalo
worker, and the change feed that makes agents' pages live. One desk per gateway app, at
`app[HANDOVER_KEY]` (wired by bot.handover.web.add_handover).

Every agent operation takes `by`, the operator's name as the console knows it; who may do
what (roles) is the console's business, the desk only enforces the queue's rules.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import ParamSpec, TypeVar

from aiohttp import web

from bot.config import Settings
from bot.handover import queue
from bot.handover.delivery import SocketRegistry
from bot.handover.events import ChangeFeed
from bot.handover.hours import WorkingHours, working_hours
from bot.handover.queue import (
    Changes,
    HandoverDetail,
    HandoverView,
    MessageView,
    OpenState,
    Routed,
    who,
)

log = logging.getLogger("bot.handover")
P = ParamSpec("P")
T = TypeVar("T")


def handover_frame(state: OpenState | None, messages: list[MessageView]) -> dict:
    """The WebSocket frame that tells a widget about staff messages or a state change."""
    return {"type": "handover", "handover": state.public() if state else None,
            "messages": [m.public() for m in messages]}


@dataclass
class HandoverDesk:
    """The handover queue for one gateway process (see the module docstring)."""

    settings: Settings
    sockets: SocketRegistry = field(default_factory=SocketRegistry)
    wake_zalo: Callable[[], None] = lambda: None
    poll_seconds: float = 1.0
    feed: ChangeFeed = field(init=False)

    def __post_init__(self) -> None:
        self.feed = ChangeFeed(lambda: self._run(queue.current_version, self.url),
                               self.poll_seconds)
        self.feed.on_change(self._on_change)
        self._pump_lock = asyncio.Lock()

    @property
    def url(self) -> str:
        return self.settings.database_url

    def hours(self) -> WorkingHours:
        """Working hours now (the calendar file is re-read when it changes)."""
        return working_hours(self.settings.handover_hours, self.settings.work_calendar)

    @staticmethod
    async def _run(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """The queue's blocking SQLAlchemy calls, off the event loop."""
        return await asyncio.to_thread(fn, *args, **kwargs)

    async def _changed(self) -> None:
        """After a change this process made: wake live pages and deliver at once."""
        await self.feed.publish(await self._run(queue.current_version, self.url))

    # ------------------------------------------------------------------ agents (console)

    async def list_open(self) -> list[HandoverView]:
        """Waiting and held handovers, oldest first."""
        return await self._run(queue.list_open, self.url)

    async def list_handovers(self, *, status: str | None = None, channel: str | None = None,
                   taken_by: str | None = None, before_id: int | None = None,
                   limit: int = 50) -> list[HandoverView]:
        """Handovers newest first, filtered; page with `before_id` (one conversation's:
        `threads_of`)."""
        return await self._run(queue.list_handovers, self.url, status=status,
                               channel=channel, taken_by=taken_by, before_id=before_id,
                               limit=limit)

    async def get(self, handover_id: int) -> HandoverDetail:
        """One handover with its thread (NotFound if there is none)."""
        return await self._run(queue.get, self.url, handover_id)

    async def threads_of(self, sender_id: str) -> list[HandoverDetail]:
        """Every hand-over of one conversation with its thread, newest first."""
        return await self._run(queue.threads_of, self.url, sender_id)

    async def take(self, handover_id: int, by: str, *, force: bool = False) -> HandoverView:
        """waiting → held by `by` (Conflict if closed or held by someone else, unless force)."""
        view = await self._run(queue.take, self.url, handover_id, by, force=force)
        log.info("handover %d taken by %s", handover_id, by)
        await self._after_staff_message(view)
        return view

    async def reply(self, handover_id: int, by: str, text: str) -> MessageView:
        """Store an agent's reply and deliver it through the citizen's channel."""
        view, message = await self._run(queue.reply, self.url, handover_id, by, text)
        log.info("handover %d: reply by %s (%d chars)", handover_id, by, len(message.text))
        await self._after_staff_message(view)
        return message

    async def close(self, handover_id: int, by: str, *, force: bool = False) -> HandoverView:
        """End the handover; the bot answers again from the citizen's next message."""
        view = await self._run(queue.close, self.url, handover_id, by, force=force)
        log.info("handover %d closed by %s", handover_id, by)
        await self._after_staff_message(view)
        return view

    async def current_version(self) -> int:
        """The queue's change counter now: where a live page starts polling from."""
        return await self._run(queue.current_version, self.url)

    async def changes_since(self, version: int) -> Changes:
        """What changed after `version` (poll this, or wait with `wait_for_changes`)."""
        return await self._run(queue.changes_since, self.url, version)

    async def wait_for_changes(self, version: int, timeout: float = 25.0) -> Changes:
        """Long polling: returns as soon as something changed after `version`, or after
        `timeout` seconds with no handovers (and the same version)."""
        await self.feed.wait(version, timeout)
        return await self.changes_since(version)

    async def subscribe(self, version: int = 0) -> AsyncIterator[Changes]:
        """The changes after `version`, then after each next change (for SSE/WebSocket;
        an empty `handovers` list every ~25 s doubles as a keep-alive)."""
        async for _ in self.feed.subscribe(version):
            changes = await self.changes_since(version)
            version = changes.version
            yield changes

    async def _after_staff_message(self, view: HandoverView) -> None:
        if view.channel == "zalo":
            self.wake_zalo()
        await self._changed()

    # ------------------------------------------------------------------ citizens (gateway)

    async def route(self, sender: str, text: str, *, with_pending: bool = True,
                    external_id: str | None = None) -> Routed | None:
        """Before a citizen's message goes to the bot: if the conversation has an open
        handover, store the message there and return what to answer (the bot stays
        silent); None otherwise.

        Fails open: if the database cannot be asked, the bot answers (a citizen getting
        an answer from the bot during a handover is better than no answer at all).
        """
        try:
            routed = await self._run(queue.route_citizen_message, self.url, sender, text,
                                     hours=self._hours_or_none(), with_pending=with_pending,
                                     external_id=external_id)
        except Exception:
            log.exception("handover check failed for %s; the bot answers", who(sender))
            return None
        if routed is not None:
            log.info("handover %d: citizen message from %s (%d chars)", routed.state.id,
                     who(sender), len(text))
            await self._changed()
        return routed

    def _hours_or_none(self) -> WorkingHours | None:
        try:
            return self.hours()
        except Exception:
            log.exception("handover hours unusable")
            return None

    async def after_turn(self, sender: str) -> tuple[OpenState | None, list[MessageView]]:
        """After the bot answered: the open handover (the answer may have opened one) and
        staff messages this client has not received yet; never raises."""
        try:
            return await self._run(queue.after_turn, self.url, sender)
        except Exception:
            log.exception("handover state unavailable for %s", who(sender))
            return None, []

    async def pull(self, sender: str, after: int) -> tuple[OpenState | None, list[MessageView]]:
        """GET /api/v1/messages: staff messages after the client's cursor, and the state."""
        state, messages = await self._run(queue.messages_after, self.url, sender, after)
        if any(m.delivered_at is None for m in messages):
            await self._changed()
        return state, messages

    async def cancel(self, sender: str) -> HandoverView | None:
        """The citizen went back to the assistant (the widget's button)."""
        view = await self._run(queue.cancel_by_citizen, self.url, sender)
        if view is not None:
            log.info("handover %d cancelled by the citizen", view.id)
            await self._after_staff_message(view)
        return view

    # ------------------------------------------------------------------ widget pushes

    async def _on_change(self, version: int) -> None:
        """After any change: push undelivered staff messages to sockets this process holds."""
        if not self.sockets.sessions():
            return
        async with self._pump_lock:
            pending = await self._run(queue.undelivered_widget, self.url,
                                      self.sockets.sessions())
            if not pending:
                return
            by_session: dict[str, list[MessageView]] = {}
            for session, message in pending:
                by_session.setdefault(session, []).append(message)
            delivered: list[int] = []
            for session, messages in by_session.items():
                state = await self._run(queue.find_open, self.url, session)
                if await self.sockets.push(session, handover_frame(state, messages)):
                    delivered.extend(m.id for m in messages)
            if delivered:
                await self._run(queue.mark_delivered, self.url, delivered)

    async def start(self) -> None:
        self.hours()  # a bad HANDOVER_HOURS stops the gateway at start-up, not at 22:00
        self.feed.version = await self._run(queue.current_version, self.url)
        self.feed.start()

    async def stop(self) -> None:
        await self.feed.stop()


HANDOVER_KEY = web.AppKey("handover", HandoverDesk)

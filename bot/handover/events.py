"""Live updates for agents' pages: "something changed in the handover queue".

Every change bumps one counter in the database (bot.handover.queue). A `ChangeFeed` keeps
the last version this process knows and wakes whoever waits for a newer one:

* at once for changes made in this process (`publish`: the console's take/reply/close, a
  citizen's message through this gateway);
* within `poll_seconds` for changes made elsewhere (the action server opening a handover,
  another gateway or a console in another process), by reading the counter (one
  single-row SELECT per second per process).

A page then asks `queue.changes_since(version)` for what changed. The console can expose
`wait()` as long polling, or `subscribe()` as Server-Sent Events or a WebSocket.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

log = logging.getLogger(__name__)


class ChangeFeed:
    """The newest handover version seen by this process, and a condition to wait on it."""

    def __init__(self, read_version: Callable[[], Awaitable[int]],
                 poll_seconds: float = 1.0) -> None:
        self._read = read_version
        self.poll_seconds = poll_seconds
        self.version = 0
        self._changed = asyncio.Condition()
        self._listeners: list[Callable[[int], Awaitable[None]]] = []
        self._task: asyncio.Task | None = None

    def on_change(self, listener: Callable[[int], Awaitable[None]]) -> None:
        """Run `listener(version)` after every observed change (e.g. the widget pump)."""
        self._listeners.append(listener)

    async def publish(self, version: int) -> None:
        """A change this process made (or just read): wake waiters if it is newer."""
        if version <= self.version:
            return
        self.version = version
        async with self._changed:
            self._changed.notify_all()
        for listener in self._listeners:
            try:
                await listener(version)
            except Exception:  # a listener's bug must not stop the feed
                log.exception("handover change listener failed")

    async def wait(self, since: int, timeout: float = 25.0) -> int:
        """The current version once it is above `since`, or after `timeout` seconds."""
        if self.version > since:
            return self.version
        with contextlib.suppress(asyncio.TimeoutError):
            async with self._changed:
                await asyncio.wait_for(self._changed.wait_for(lambda: self.version > since),
                                       timeout)
        return self.version

    async def subscribe(self, since: int = 0, heartbeat: float = 25.0) -> AsyncIterator[int]:
        """Yield the version after each change (and every `heartbeat` seconds, so a Server-
        Sent Events page can send a keep-alive); stops when the consumer stops iterating."""
        while True:
            since = await self.wait(since, heartbeat)
            yield since

    async def _poll(self) -> None:
        while True:
            try:
                await self.publish(await self._read())
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database may be briefly unavailable
                log.warning("handover change poll failed: %s", exc)
            await asyncio.sleep(self.poll_seconds)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._poll(), name="handover-changes")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

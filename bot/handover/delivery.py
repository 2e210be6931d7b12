"""Getting a staff message (an agent's reply, a note) to the citizen through their channel.

* Zalo: rows in the channel's durable outbox (`zalo_outbox`), written in the transaction
  that stores the message, so the Zalo worker's retries, ordering per user and
  "undeliverable" handling apply exactly as to the bot's answers (`enqueue_zalo`).
* Widget: pushed over the session's open WebSocket(s), which live in the gateway process
  (`SocketRegistry`); whatever could not be pushed (no socket at that moment, another
  gateway process holds it) stays undelivered in the database and reaches the widget by
  `GET /api/v1/messages` when it reconnects or polls, or with its next answer.
* REST clients ("web"): with their next answer, or by the same pull endpoint.

So nothing depends on the console and the socket being in one process: the database row
and its `delivered_at` are the truth, pushing is only the fast path.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from aiohttp import web
from sqlalchemy.orm import Session

from bot.catalog.models import ZaloOutbox
from bot.channels.zalo.split import split_text

log = logging.getLogger(__name__)


def enqueue_zalo(s: Session, user_id: str, text: str, now: datetime) -> int:
    """Queue a text for a Zalo user in the caller's transaction; the last part's outbox id
    (a user's parts go out in order, so that one being sent means all were)."""
    last = 0
    for part in split_text(text) or [text]:
        row = ZaloOutbox(inbox_id=None, user_id=user_id, kind="text",
                         body=json.dumps({"text": part}, ensure_ascii=False),
                         status="pending", attempts=0, next_attempt_at=now, created_at=now)
        s.add(row)
        s.flush()
        last = row.id
    return last


class SocketRegistry:
    """The widget WebSockets this process holds, by session id (a tab or two per citizen)."""

    def __init__(self) -> None:
        self._by_session: dict[str, set[web.WebSocketResponse]] = {}

    def add(self, session: str, ws: web.WebSocketResponse) -> None:
        self._by_session.setdefault(session, set()).add(ws)

    def discard(self, session: str, ws: web.WebSocketResponse) -> None:
        sockets = self._by_session.get(session)
        if sockets is not None:
            sockets.discard(ws)
            if not sockets:
                del self._by_session[session]

    def sessions(self) -> frozenset[str]:
        return frozenset(self._by_session)

    def sockets(self, session: str) -> Iterator[web.WebSocketResponse]:
        yield from list(self._by_session.get(session, ()))

    async def push(self, session: str, frame: dict[str, Any]) -> bool:
        """Send a frame to every open socket of a session; whether at least one took it."""
        sent = False
        for ws in self.sockets(session):
            if ws.closed:
                continue
            try:
                await ws.send_json(frame)
                sent = True
            except (ConnectionError, RuntimeError) as exc:  # closing under our feet
                log.debug("handover push to a closing socket failed: %s", exc)
        return sent

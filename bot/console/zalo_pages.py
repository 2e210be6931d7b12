"""The console's list of Zalo dead letters: events and replies the channel gave up on.

The Zalo worker retries a failing event or reply with backoff and, after ZALO_MAX_ATTEMPTS
tries or ZALO_MAX_AGE_HOURS, sets it aside so that the others keep flowing
(bot/channels/zalo/queue.py). Set aside, it is out of everyone's sight unless listed: this
page shows each one (when, whose — the Zalo user id masked —, what failed, how many tries)
and lets an admin send it back to the queue (after fixing the cause) or discard it. Both are
CSRF-protected POSTs, audited like every other console change. Never the message text: it
is the citizen's, and the error is enough to act on.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime

from aiohttp import web

from bot.channels.zalo import queue
from bot.channels.zalo.client import mask_user_id
from bot.console.web import (
    PREFIX,
    SETTINGS_KEY,
    NavItem,
    add_nav,
    form,
    guarded,
    record,
    redirect,
    render,
)
from bot.text import mask_pii

PERMISSION = "zalo.dead_letters"  # admins only (bot.console.web.PERMISSIONS)

KIND_LABELS = {"event": "Tin người dân gửi đến", "reply": "Câu trả lời gửi đi"}
ACTIONS = {"retry": queue.retry_dead_letter, "discard": queue.discard_dead_letter}
GONE = "Mục này không còn trong danh sách (có thể một cán bộ khác vừa xử lý)."


@dataclass(frozen=True)
class Row:
    """One dead letter as the page shows it: nothing that identifies the citizen."""

    kind: str
    id: int
    kind_label: str
    user: str
    what: str
    queued_at: datetime
    dead_at: datetime | None
    attempts: int
    error: str


def _row(d: queue.DeadLetter) -> Row:
    return Row(kind=d.kind, id=d.id, kind_label=KIND_LABELS.get(d.kind, d.kind),
               user=mask_user_id(d.user_id) if d.user_id else "—", what=d.what,
               queued_at=d.queued_at, dead_at=d.dead_at, attempts=d.attempts,
               error=mask_pii(d.error))


async def _page(request: web.Request, error: str | None = None,
                status: int = 200) -> web.StreamResponse:
    url = request.app[SETTINGS_KEY].database_url
    rows = [_row(d) for d in await asyncio.to_thread(queue.dead_letters, url)]
    return render(request, "zalo_dead_letters.html", status=status, rows=rows, error=error)


@guarded(PERMISSION)
async def dead_letters_page(request: web.Request) -> web.StreamResponse:
    return await _page(request)


@guarded(PERMISSION)
async def dead_letter_action(request: web.Request) -> web.StreamResponse:
    """Retry or discard one dead letter (form fields: action, kind, id)."""
    data = await form(request)
    act = ACTIONS.get(data.get("action", ""))
    kind = data.get("kind", "")
    raw_id = data.get("id", "")
    if act is None or kind not in KIND_LABELS or not raw_id.isdigit():
        return await _page(request, error="Thao tác không hợp lệ.", status=400)
    item_id = int(raw_id)
    url = request.app[SETTINGS_KEY].database_url
    if not await asyncio.to_thread(act, url, kind, item_id):
        return await _page(request, error=GONE, status=409)
    await record(request, f"zalo.{data['action']}", f"{kind}:{item_id}")
    if data["action"] == "retry":
        _wake_worker(request.app)
    raise redirect(f"{PREFIX}/zalo", ok="saved")


def _wake_worker(app: web.Application) -> None:
    """A retried item is due now: the worker of this gateway looks at once (the others
    within their poll interval)."""
    from bot.channels.zalo.channel import ZALO_KEY

    channel = app.get(ZALO_KEY)
    if channel is not None:
        channel.wake.set()


def add_zalo_pages(app: web.Application) -> None:
    r = app.router
    r.add_get(f"{PREFIX}/zalo", dead_letters_page)
    r.add_post(f"{PREFIX}/zalo", dead_letter_action)
    add_nav(NavItem(PERMISSION, f"{PREFIX}/zalo", "Zalo: tin lỗi",
                    "Tin nhắn Zalo và câu trả lời không xử lý được sau nhiều lần thử: gửi lại "
                    "hoặc bỏ qua."))

"""Console pages for human handover: the live queue, a conversation's thread, take / reply /
close. The queue's rules and the delivery through the citizen's channel are the desk's
(bot/handover/desk.py); here: roles, forms, audit entries, and the long-poll endpoint that
keeps the pages live (a small script reloads a page when its version is out of date).
"""

from __future__ import annotations

from aiohttp import web

from bot.console.web import (
    PREFIX,
    USER_KEY,
    NavItem,
    add_nav,
    can,
    form,
    guarded,
    record,
    redirect,
    render,
)
from bot.handover.desk import HANDOVER_KEY
from bot.handover.queue import HandoverError

STATUS_LABELS = {"waiting": "Đang chờ", "held": "Đang trao đổi", "closed": "Đã kết thúc"}
REASON_LABELS = {"requested": "người dân yêu cầu", "fallback": "bot không trả lời được"}
CHANNEL_LABELS = {"web": "Trang chat", "widget": "Widget", "zalo": "Zalo"}
AUTHOR_LABELS = {"citizen": "Người dân", "agent": "Cán bộ", "system": "Hệ thống",
                 "bot": "Trợ lý ảo"}
MAX_REPLY_CHARS = 2000
FORCE_REFUSED = ("Chỉ quản trị viên được nhận thay hoặc kết thúc cuộc trao đổi mà cán bộ khác "
                 "đang phụ trách. Bạn hãy nhờ cán bộ đó hoặc quản trị viên.")


def _labels() -> dict:
    return {"status_labels": STATUS_LABELS, "reason_labels": REASON_LABELS,
            "channel_labels": CHANNEL_LABELS, "author_labels": AUTHOR_LABELS}


@guarded("handover")
async def queue_page(request: web.Request) -> web.StreamResponse:
    desk = request.app[HANDOVER_KEY]
    open_items = await desk.list_open()
    closed = await desk.list_handovers(status="closed", limit=20)
    version = await desk.current_version()
    return render(request, "handover_queue.html", open_items=open_items, closed=closed,
                  version=version, **_labels())


@guarded("handover")
async def thread_page(request: web.Request) -> web.StreamResponse:
    return await _thread_view(request)


async def _thread_view(request: web.Request, error: str | None = None, draft: str = "",
                       status: int = 200) -> web.StreamResponse:
    desk = request.app[HANDOVER_KEY]
    try:
        detail = await desk.get(int(request.match_info["id"]))
    except HandoverError as exc:
        return render(request, "error.html", status=404, message=exc.message)
    version = await desk.current_version()
    return render(request, "handover_thread.html", status=status, h=detail.handover,
                  messages=detail.messages, error=error, draft=draft, version=version,
                  max_reply=MAX_REPLY_CHARS, **_labels())


@guarded("handover")
async def thread_action(request: web.Request) -> web.StreamResponse:
    desk = request.app[HANDOVER_KEY]
    handover_id = int(request.match_info["id"])
    data = await form(request)
    user = request[USER_KEY].username
    action = data.get("action", "")
    text = data.get("text", "").strip()
    force = data.get("force") == "1" and action in ("take", "close")
    if force and not can(request[USER_KEY], "handover.force"):
        # Refused before the desk is asked, and recorded: an attempt to cut a colleague
        # off a citizen is worth an entry in the audit log even when it fails.
        await record(request, f"handover.{action}.refused", str(handover_id), {"force": True})
        return await _thread_view(request, error=FORCE_REFUSED, status=403)
    try:
        if action == "take":
            await desk.take(handover_id, user, force=force)
        elif action == "reply":
            if not text:
                raise HandoverError("empty_reply", "Bạn chưa viết nội dung trả lời.")
            if len(text) > MAX_REPLY_CHARS:
                raise HandoverError("reply_too_long",
                                    f"Tin trả lời dài quá {MAX_REPLY_CHARS} ký tự.")
            await desk.reply(handover_id, user, text)
        elif action == "close":
            await desk.close(handover_id, user, force=force)
        else:
            raise HandoverError("bad_action", "Thao tác không hợp lệ.")
    except HandoverError as exc:
        return await _thread_view(request, error=exc.message, draft=text,
                                  status=exc.status)
    detail = {"chars": len(text)} if action == "reply" else {"force": True} if force else None
    await record(request, f"handover.{action}", str(handover_id), detail)
    raise redirect(f"{PREFIX}/handover/{handover_id}")


@guarded("handover")
async def changes_api(request: web.Request) -> web.StreamResponse:
    """Long poll: answers when the handover queue changed after `version` (or after ~25 s)."""
    try:
        version = max(0, int(request.query.get("version", "0")))
    except ValueError:
        version = 0
    changes = await request.app[HANDOVER_KEY].wait_for_changes(version, timeout=25.0)
    return web.json_response({"version": changes.version,
                              "changed": changes.version != version},
                             headers={"Cache-Control": "no-store"})


def add_handover_pages(app: web.Application) -> None:
    r = app.router
    r.add_get(f"{PREFIX}/handover", queue_page)
    r.add_get(f"{PREFIX}/handover/{{id:\\d+}}", thread_page)
    r.add_post(f"{PREFIX}/handover/{{id:\\d+}}", thread_action)
    r.add_get(f"{PREFIX}/api/handover/changes", changes_api)
    add_nav(NavItem("handover", f"{PREFIX}/handover", "Chuyển cán bộ",
                    "Người dân cần gặp cán bộ: nhận cuộc trò chuyện, trả lời qua đúng kênh "
                    "(widget, Zalo), kết thúc để bot trả lời tiếp."))

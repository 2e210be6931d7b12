"""The handover's public routes on the gateway, and its wiring into the gateway app.

* ``GET /api/v1/messages?session=ID&after=SEQ`` → ``{"messages": [...], "handover": {...} |
  null}``: staff messages (agent replies, notes) of the conversation with a `seq` above
  `after`, for a widget that was offline or cannot keep a WebSocket open, and for REST
  clients. Only staff messages: the session id reveals nothing the citizen did not see.
* ``POST /api/v1/handover/cancel {"session": ID}`` → ``{"handover": null}``: the citizen
  goes back to the assistant (the widget's "Quay lại trợ lý ảo").

Both are for widget and REST conversations only: a ``zalo-…`` id is another channel's
conversation (whoever knows a Zalo user id must not close that citizen's hand-over nor read
its state), refused with 422 as the chat API and the WebSocket refuse it.

Imported by `create_app` only (it uses the gateway's helpers, and the gateway imports it).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from bot.config import Settings
from bot.gateway.errors import ApiError, json_response, read_body
from bot.gateway.validation import json_object
from bot.gateway.widget import LIMITS_KEY, POLL, SESSION_RE
from bot.handover.desk import HANDOVER_KEY, HandoverDesk

MAX_CURSOR = 10**15


def _session(value: object) -> str:
    """A widget/REST session id; a Zalo conversation's id is refused (see the docstring)."""
    if not isinstance(value, str) or not SESSION_RE.fullmatch(value):
        raise ApiError(422, "invalid_field",
                       "Tham số 'session' cần 8–64 ký tự chữ, số, '-' hoặc '_'.")
    if value.startswith("zalo-"):
        raise ApiError(422, "invalid_field",
                       "Tham số 'session' không được bắt đầu bằng 'zalo-': cuộc trò chuyện "
                       "qua Zalo chỉ được điều khiển từ Zalo.")
    return value


async def pull_messages(request: web.Request) -> web.Response:
    """GET /api/v1/messages?session=…&after=…: staff messages the client has not seen."""
    request.app[LIMITS_KEY].check_route(POLL, request.remote)
    session = _session(request.query.get("session"))
    raw = request.query.get("after", "0")
    if not raw.isascii() or not raw.isdigit() or int(raw) > MAX_CURSOR:
        raise ApiError(422, "invalid_field", "Tham số 'after' phải là số nguyên không âm.")
    state, messages = await request.app[HANDOVER_KEY].pull(session, int(raw))
    return json_response({"messages": [m.public() for m in messages],
                          "handover": state.public() if state else None},
                         headers={"Cache-Control": "no-store"})


async def cancel_handover(request: web.Request) -> web.Response:
    """POST /api/v1/handover/cancel {"session"}: back to the assistant."""
    data = json_object(await read_body(request, 1024), "có trường 'session'")
    session = _session(data.get("session"))
    request.app[LIMITS_KEY].check(session, request.remote)
    await request.app[HANDOVER_KEY].cancel(session)
    return json_response({"handover": None})


def add_handover(app: web.Application, settings: Settings) -> None:
    """Create the app's desk, its routes, and start/stop its change feed with the app."""
    from bot.channels.zalo.channel import ZALO_KEY

    def wake_zalo() -> None:
        channel = app.get(ZALO_KEY)
        if channel is not None:
            channel.wake.set()

    desk = HandoverDesk(settings, wake_zalo=wake_zalo)
    app[HANDOVER_KEY] = desk

    async def lifecycle(_: web.Application) -> AsyncIterator[None]:
        await desk.start()
        try:
            yield
        finally:
            await desk.stop()

    app.cleanup_ctx.append(lifecycle)
    app.router.add_get("/api/v1/messages", pull_messages)
    app.router.add_post("/api/v1/handover/cancel", cancel_handover)


__all__ = ["HANDOVER_KEY", "HandoverDesk", "add_handover"]

"""What the embeddable web widget needs from the gateway.

* `/widget.js`, `/widget.css`: the widget itself (one `<script>` tag on any site).
* `/api/v1/ws?session=…`: a WebSocket chat (the REST `/api/v1/chat` stays the fallback).
* `/api/v1/feedback`: thumbs up / down on an answer, stored for operators.
* `/demo`: a third-party-style host page, served with a strict Content-Security-Policy.
* Embedding origins: an allow-list (`ALLOWED_ORIGINS`) checked on every `/api/` request that
  carries an `Origin` header (CORS for fetch, the Origin check for WebSockets).
* Rate limits per session and per client address: the session id comes from the browser,
  so it is trusted for conversation continuity only, never as the sole limit. The other
  public routes (search and fees, hand-over polling, /healthz) have a bucket per address
  each (`Limits.check_route`), and open WebSockets are capped per address (`SocketCap`).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
import weakref
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web
from sqlalchemy import select

from bot.catalog.db import session_scope
from bot.catalog.models import Feedback
from bot.client_address import CLIENT_METADATA_KEY, bucket, client_key
from bot.config import Settings
from bot.gateway.errors import ApiError, error_response, json_response, read_body
from bot.gateway.rasa_client import BotMessage, RasaClient, RasaUnavailable
from bot.gateway.validation import chat_text, json_object, utf8_len
from bot.handover.desk import HANDOVER_KEY
from bot.text import nfc

log = logging.getLogger("bot.gateway")

STATIC_DIR = Path(__file__).resolve().parent / "static"
SESSION_RE = re.compile(r"[A-Za-z0-9_-]{8,64}")
MAX_FEEDBACK_TEXT = 2000
# The demo page is a stand-in for a third-party site: only its own origin may run scripts,
# load styles or connect; nothing inline. If the widget works here, it works under any
# site's CSP that allows the gateway's origin.
DEMO_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            "connect-src 'self' {ws}; object-src 'none'; base-uri 'none'; "
            "frame-ancestors 'none'; form-action 'self'")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


# --------------------------------------------------------------------------- origins


class OriginPolicy:
    """Which web origins may embed the widget and call the API from a browser.

    Entries: `self` (the gateway's own origin), an exact origin (`https://dichvucong.hanoi.gov.vn`),
    an origin with any port (`http://localhost:*`), or `*` (any site: only for testing).
    """

    def __init__(self, spec: str) -> None:
        self.entries = [e.strip().rstrip("/") for e in spec.split(",") if e.strip()]
        self._patterns = [
            re.compile(re.escape(e[:-2]) + r"(?::\d{1,5})?") if e.endswith(":*")
            else re.compile(re.escape(e))
            for e in self.entries if e not in ("self", "*")
        ]

    def allows(self, origin: str, request: web.Request) -> bool:
        origin = origin.strip().rstrip("/")
        if "*" in self.entries:
            return True
        if "self" in self.entries and origin == f"{request.scheme}://{request.host}":
            return True
        return any(p.fullmatch(origin) for p in self._patterns)


# --------------------------------------------------------------------------- rate limits


class RateLimiter:
    """At most `limit` events per key in any 60-second window (sliding log).

    A few lines of our own rather than a library: the limiter must be per key (session,
    address), in memory, and synchronous inside the event loop; keys idle for a window
    are dropped so memory follows the active conversations, not all that ever came.
    """

    def __init__(self, limit: int, window: float = 60.0) -> None:
        self.limit = limit
        self.window = window
        self._events: dict[str, deque[float]] = {}
        self._last_sweep: float | None = None

    def allow(self, key: str, now: float | None = None) -> bool:
        if self.limit <= 0:
            return True
        now = time.monotonic() if now is None else now
        if self._last_sweep is None:
            self._last_sweep = now
        elif now - self._last_sweep > self.window:
            self._sweep(now)
        q = self._events.setdefault(key, deque())
        while q and now - q[0] >= self.window:
            q.popleft()
        if len(q) >= self.limit:
            return False
        q.append(now)
        return True

    def _sweep(self, now: float) -> None:
        self._last_sweep = now
        for key in [k for k, q in self._events.items() if not q or now - q[-1] >= self.window]:
            del self._events[key]


# Route families limited per client address (besides chat messages): each its own bucket,
# so polling for staff replies never uses up what a citizen needs to search, and a probe
# hammering /healthz never blocks a chat.
SEARCH, POLL, HEALTH = "search", "poll", "health"
TOO_FAST = "Bạn thao tác nhanh quá, vui lòng chờ một chút rồi thử lại nhé."


class Limits:
    """The per-session and per-address limiters of one gateway.

    Address buckets are keyed by `bucket(address)`: the client's own address (the gateway's
    first middleware reads it from a trusted proxy's X-Forwarded-For), an IPv6 client's /64.
    """

    def __init__(self, per_session: int, per_address: int,
                 routes: dict[str, int] | None = None) -> None:
        self.session = RateLimiter(per_session)
        self.address = RateLimiter(per_address)
        self.routes = {family: RateLimiter(n) for family, n in (routes or {}).items()}

    def check(self, session: str, address: str | None) -> None:
        """Count one message; ApiError 429 with a Vietnamese message when over a limit."""
        if not self.address.allow(bucket(address)) or not self.session.allow(session):
            # Retry-After: an upper bound (one window); HTTP clients and proxies honour it.
            raise ApiError(429, "rate_limited", "Bạn gửi nhanh quá, vui lòng chờ một chút "
                                                "rồi gửi tiếp nhé.",
                           headers={"Retry-After": str(int(self.session.window))})

    def check_route(self, family: str, address: str | None) -> None:
        """Count one request of a route family (SEARCH, POLL, HEALTH) for the client's
        address; ApiError 429 with Retry-After when over its limit. Called first in the
        handler, so malformed requests count too."""
        limiter = self.routes.get(family)
        if limiter is not None and not limiter.allow(bucket(address)):
            raise ApiError(429, "rate_limited", TOO_FAST,
                           headers={"Retry-After": str(int(limiter.window))})


class SocketCap:
    """At most `per_address` WebSocket chats open at once per client address (0: no cap).

    A socket holds a coroutine, buffers and a heartbeat for as long as the client wants;
    without a cap one address could open thousands. Counted from before the handshake until
    the handler ends, whatever ends it (close, error, cancellation).
    """

    def __init__(self, per_address: int) -> None:
        self.per_address = per_address
        self._open: dict[str, int] = {}

    def acquire(self, key: str) -> bool:
        if self.per_address <= 0:
            return True
        if self._open.get(key, 0) >= self.per_address:
            return False
        self._open[key] = self._open.get(key, 0) + 1
        return True

    def release(self, key: str) -> None:
        if self.per_address <= 0:
            return
        left = self._open.get(key, 0) - 1
        if left > 0:
            self._open[key] = left
        else:
            self._open.pop(key, None)  # idle addresses leave no trace

    def open_count(self, key: str) -> int:
        return self._open.get(key, 0)


ORIGINS_KEY = web.AppKey("origins", OriginPolicy)
LIMITS_KEY = web.AppKey("limits", Limits)
SOCKET_CAP_KEY = web.AppKey("socket_cap", SocketCap)
SOCKETS_KEY = web.AppKey("sockets", weakref.WeakSet)


def stamp(messages: list[BotMessage]) -> list[dict[str, Any]]:
    """Give each bot message an id (for feedback) and a UTC timestamp (for display)."""
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return [{"id": uuid.uuid4().hex, **m, "ts": now} for m in messages]


@web.middleware
async def cors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse API calls from origins not allowed to embed; answer CORS for allowed ones.

    Requests without an Origin header (curl, server-to-server, Zalo's webhook) are not
    browser cross-site requests and pass; browsers always send it on cross-origin fetches
    and on WebSocket handshakes.
    """
    origin = request.headers.get("Origin")
    if origin is None or not request.path.startswith("/api/"):
        return await handler(request)
    if not request.app[ORIGINS_KEY].allows(origin, request):
        log.info("refused origin %r on %s", origin[:100], request.path)
        return error_response(403, "origin_not_allowed",
                              "Trang web này chưa được phép nhúng trợ lý (ALLOWED_ORIGINS).")
    if request.method == "OPTIONS":
        response: web.StreamResponse = web.Response(status=204)
        response.headers["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
        response.headers["Access-Control-Allow-Headers"] = "Content-Type"
        response.headers["Access-Control-Max-Age"] = "600"
    else:
        response = await handler(request)
    if not response.prepared:  # a WebSocket has already sent its handshake
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Vary"] = "Origin"
    return response


# --------------------------------------------------------------------------- WebSocket


def _frame_text(raw: str, settings: Settings) -> tuple[str | None, str | ApiError]:
    """(client message id, NFC text) of a `message` frame; the error instead of the text.

    The id is returned even for a bad frame, so the widget can mark which message failed.
    """
    mid = None
    try:
        data = json_object(raw, "{\"type\": \"message\", \"text\": ...}")
        mid = data.get("id")
        mid = mid[:64] if isinstance(mid, str) else None
        if data.get("type") != "message":
            raise ApiError(400, "invalid_body",
                           "Cần {\"type\": \"message\", \"text\": ...}.")
        text = data.get("text")
        if not isinstance(text, str):
            raise ApiError(422, "invalid_field", "Trường 'text' phải là chuỗi.")
        return mid, chat_text(text, settings)
    except ApiError as exc:
        return mid, exc


def make_ws_handler(settings: Settings, rasa_key: web.AppKey,
                    apology: Callable[[Settings], str]) -> Handler:
    """The WebSocket chat handler (built by the app factory, which owns the Rasa client)."""

    async def ws_chat(request: web.Request) -> web.StreamResponse:
        session = request.query.get("session", "")
        if not SESSION_RE.fullmatch(session) or session.startswith("zalo-"):
            raise ApiError(422, "invalid_field",
                           "Tham số 'session' cần 8–64 ký tự chữ, số, '-' hoặc '_'.")
        # Refused before the handshake (the widget then chats over REST); the slot is given
        # back however the socket ends.
        cap, key = request.app[SOCKET_CAP_KEY], bucket(request.remote)
        if not cap.acquire(key):
            log.info("websocket refused: %d open from one address", cap.per_address)
            raise ApiError(429, "too_many_connections",
                           "Đang có quá nhiều cửa sổ trò chuyện mở từ địa chỉ mạng của bạn. "
                           "Bạn vui lòng đóng bớt rồi thử lại nhé.",
                           headers={"Retry-After": "60"})
        try:
            return await _serve(request, session)
        finally:
            cap.release(key)

    async def _serve(request: web.Request, session: str) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=30, max_msg_size=settings.max_message_bytes * 4)
        await ws.prepare(request)
        request.app[SOCKETS_KEY].add(ws)
        # Registered by session so that an agent's reply can be pushed here (bot.handover).
        desk = request.app[HANDOVER_KEY]
        desk.sockets.add(session, ws)
        try:
            await _chat_loop(ws, request, session)
        finally:
            desk.sockets.discard(session, ws)
        return ws

    async def _chat_loop(ws: web.WebSocketResponse, request: web.Request, session: str) -> None:
        rasa: RasaClient = request.app[rasa_key]
        limits = request.app[LIMITS_KEY]
        desk = request.app[HANDOVER_KEY]
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                if msg.type == WSMsgType.ERROR:
                    break
                continue
            mid, text = _frame_text(msg.data, settings)
            try:
                if isinstance(text, ApiError):
                    raise text
                limits.check(session, request.remote)
            except ApiError as exc:
                await ws.send_json({"type": "error", "reply_to": mid, "code": exc.code,
                                    "message": exc.message})
                continue
            # A person handles this conversation: the bot stays silent (see app.chat).
            routed = await desk.route(session, text)
            if routed is not None:
                await ws.send_json({"type": "reply", "reply_to": mid,
                                    "messages": [m.public() for m in routed.notes],
                                    "handover": routed.state.public()})
                continue
            await ws.send_json({"type": "typing", "on": True})
            try:
                messages = await rasa.send(session, text, {
                    "channel": "widget", CLIENT_METADATA_KEY: client_key(request.remote)})
            except RasaUnavailable as exc:
                log.warning("assistant unavailable (ws): %s", exc)
                await ws.send_json({"type": "typing", "on": False})
                await ws.send_json({"type": "error", "reply_to": mid,
                                    "code": "assistant_unavailable",
                                    "message": apology(settings)})
                continue
            await ws.send_json({"type": "typing", "on": False})
            state, staff = await desk.after_turn(session)
            frame: dict[str, Any] = {"type": "reply", "reply_to": mid,
                                     "messages": [m.public() for m in staff] + stamp(messages)}
            if state is not None:
                frame["handover"] = state.public()
            await ws.send_json(frame)

    return ws_chat


async def close_sockets(app: web.Application) -> None:
    """On shutdown, close open chats so the process stops at once (clients reconnect)."""
    for ws in list(app[SOCKETS_KEY]):
        await ws.close(code=1001, message=b"server shutdown")


# --------------------------------------------------------------------------- feedback


def _store_feedback(database_url: str, session: str, message_id: str, rating: str,
                    text: str | None) -> None:
    with session_scope(database_url) as s:
        row = s.execute(select(Feedback).where(Feedback.session == session,
                                               Feedback.message_id == message_id)
                        ).scalar_one_or_none()
        if row is None:
            s.add(Feedback(session=session, message_id=message_id, rating=rating, text=text,
                           channel="widget", created_at=datetime.now(timezone.utc)))
        else:  # a citizen may change their mind: the last rating counts
            row.rating = rating
            row.created_at = datetime.now(timezone.utc)


def make_feedback_handler(settings: Settings) -> Handler:
    async def feedback(request: web.Request) -> web.Response:
        """POST /api/v1/feedback {"session", "message_id", "rating": "up"|"down", "text"}."""
        raw = await read_body(request, MAX_FEEDBACK_TEXT * 4 + 1024)
        data = json_object(raw, "có các trường 'session', 'message_id', 'rating'")
        session, mid = data.get("session"), data.get("message_id")
        rating, text = data.get("rating"), data.get("text")
        if not isinstance(session, str) or not SESSION_RE.fullmatch(session):
            raise ApiError(422, "invalid_field", "Trường 'session' không hợp lệ.")
        if not isinstance(mid, str) or not SESSION_RE.fullmatch(mid):
            raise ApiError(422, "invalid_field", "Trường 'message_id' không hợp lệ.")
        if rating not in ("up", "down"):
            raise ApiError(422, "invalid_field", "Trường 'rating' phải là 'up' hoặc 'down'.")
        if text is not None and not isinstance(text, str):
            raise ApiError(422, "invalid_field", "Trường 'text' phải là chuỗi.")
        if text:
            utf8_len(text, "text")  # a lone surrogate cannot be stored
        request.app[LIMITS_KEY].check(f"feedback:{session}", request.remote)
        text = nfc(text)[:MAX_FEEDBACK_TEXT] if text else None
        await asyncio.to_thread(_store_feedback, settings.database_url, session, mid, rating,
                                text)
        return json_response({"ok": True})

    return feedback


# --------------------------------------------------------------------------- files


def _file(path: Path, content_type: str, extra: dict[str, str] | None = None) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        headers = {"Content-Type": content_type, "Cache-Control": "no-cache",
                   # loaded by other sites' pages: allowed cross-origin on purpose
                   "Cross-Origin-Resource-Policy": "cross-origin", **(extra or {})}
        return web.FileResponse(path, headers=headers)

    return handler


async def demo_page(request: web.Request) -> web.StreamResponse:
    """The demo host page with its own strict CSP (see DEMO_CSP)."""
    ws = f"ws://{request.host} wss://{request.host}"
    return web.FileResponse(STATIC_DIR / "demo" / "index.html", headers={
        "Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-cache",
        "Content-Security-Policy": DEMO_CSP.format(ws=ws)})


def add_routes(app: web.Application, settings: Settings, rasa_key: web.AppKey,
               apology: Callable[[Settings], str]) -> None:
    """Wire the widget's routes and state into the gateway app."""
    app[ORIGINS_KEY] = OriginPolicy(settings.allowed_origins)
    app[LIMITS_KEY] = Limits(settings.rate_limit_per_minute,
                             settings.rate_limit_address_per_minute,
                             {SEARCH: settings.rate_limit_search_per_minute,
                              POLL: settings.rate_limit_poll_per_minute,
                              HEALTH: settings.rate_limit_health_per_minute})
    app[SOCKET_CAP_KEY] = SocketCap(settings.websockets_per_address)
    app[SOCKETS_KEY] = weakref.WeakSet()
    app.on_shutdown.append(close_sockets)
    app.router.add_get("/api/v1/ws", make_ws_handler(settings, rasa_key, apology))
    app.router.add_post("/api/v1/feedback", make_feedback_handler(settings))
    widget = STATIC_DIR / "widget"
    app.router.add_get("/widget.js", _file(widget / "widget.js",
                                           "application/javascript; charset=utf-8"))
    app.router.add_get("/widget.css", _file(widget / "widget.css", "text/css; charset=utf-8"))
    app.router.add_get("/demo", demo_page)
    app.router.add_get("/demo/demo.css", _file(STATIC_DIR / "demo" / "demo.css",
                                               "text/css; charset=utf-8"))

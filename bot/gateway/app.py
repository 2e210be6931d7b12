"""The public HTTP gateway: chat API in front of Rasa, catalog search, health, chat page.

Citizens and channel adapters never talk to Rasa directly. The gateway validates input
(size, encoding, shape) before anything reaches the NLU, NFC-normalises Vietnamese text,
masks personal data in logs, and turns every Rasa failure into a polite Vietnamese
apology instead of a stack trace. Built as an aiohttp application factory so that the
CLI, the unit tests and the integration tests all run the same `create_app(settings)`.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from sqlalchemy import text as sql_text

from bot.catalog.db import session_scope
from bot.catalog.live_index import LiveIndex
from bot.client_address import (
    CLIENT_METADATA_KEY,
    Networks,
    client_address,
    client_key,
    parse_networks,
)
from bot.config import Settings
from bot.gateway.errors import (
    ApiError,
    apology_text,
    error_body,
    json_error_middleware,
    json_response,
    read_body,
    security_headers_middleware,
)
from bot.gateway.fees import fees_ctx, procedure_fees
from bot.gateway.rasa_client import HEALTH_TIMEOUT, RasaClient, RasaUnavailable
from bot.gateway.validation import chat_text, json_object, utf8_len
from bot.gateway.widget import HEALTH, LIMITS_KEY, SEARCH, cors_middleware, stamp
from bot.gateway.widget import add_routes as add_widget_routes
from bot.handover.desk import HANDOVER_KEY
from bot.status.codes import DASHES
from bot.text import mask_pii, nfc

log = logging.getLogger("bot.gateway")

STATIC_DIR = Path(__file__).resolve().parent / "static"

MAX_SENDER_CHARS = 128
MAX_QUERY_CHARS = 500
DEFAULT_SEARCH_LIMIT = 5
MAX_SEARCH_LIMIT = 20
LOG_TEXT_CHARS = 200
LOG_PATH_CHARS = 256  # of a request path, read for the access log (see `path_for_log`)

_LIMIT_RE = re.compile(r"[0-9]{1,6}")  # ASCII only: int() would also accept "٥" or " 5 "


@dataclass(frozen=True)
class CatalogState:
    """The live search index built at startup, or why it could not be built.

    A broken seed file must not stop the chat from working, so a failed load is kept
    as an error that /healthz reports and search answers with 503. After an import the
    index follows the catalog (see `LiveIndex`).
    """

    index: LiveIndex | None
    error: str | None = None

    @property
    def size(self) -> int:
        return self.index.size if self.index is not None else 0


SETTINGS_KEY = web.AppKey("settings", Settings)
RASA_KEY = web.AppKey("rasa_client", RasaClient)
CATALOG_KEY = web.AppKey("catalog", CatalogState)


def body_limit(settings: Settings) -> int:
    """Largest accepted chat request body, in bytes.

    `max_message_bytes` bounds the citizen's text (UTF-8). The JSON envelope is allowed
    to be bigger because clients such as Python's `json.dumps` escape each Vietnamese
    letter as `\\uXXXX` (up to 3x the UTF-8 size for emoji surrogate pairs), plus room for
    the sender id and metadata. Anything beyond is refused before it is parsed.
    """
    return 3 * settings.max_message_bytes + 2048


def apology(settings: Settings) -> str:
    """The message shown when the assistant cannot answer; always offers the hotline."""
    return apology_text(settings.support_hotline)


def for_log(value: str) -> str:
    """Citizen text as it may appear in a log: PII masked first, then truncated.

    Masking before truncating matters: cutting first could split a citizen ID so the
    12-digit pattern no longer matches and 9 raw digits would be logged.
    """
    masked = mask_pii(value)
    if len(masked) > LOG_TEXT_CHARS:
        masked = masked[:LOG_TEXT_CHARS] + "…"
    return masked


# Characters a masked span (receipt code, citizen ID, phone number, e-mail address) may
# hold. A long path is cut for the log after the last other character, so that no span is
# cut in two.
_SPAN_CHARS_RE = re.compile(rf"[0-9A-Za-z.+@_%()\s\d{re.escape(DASHES)}]*")


def path_for_log(path: str) -> str:
    """A request path as the access log shows it: at most LOG_PATH_CHARS of it are masked.

    Anyone can send an 8 KB path, on every request, and it is logged on the event loop:
    masking all of it is wasted work. The cut falls before any run of characters a masked
    span may hold, so what is kept is masked exactly as the whole path would be.
    """
    if len(path) <= LOG_PATH_CHARS:
        return for_log(path)
    head = path[:LOG_PATH_CHARS]
    keep = len(head) - _SPAN_CHARS_RE.match(head[::-1]).end()
    return mask_pii(head[:keep])[:LOG_TEXT_CHARS] + "…"


# --------------------------------------------------------------------------- lifecycle


async def rasa_client_ctx(app: web.Application) -> AsyncIterator[None]:
    """One pooled HTTP session for all calls to Rasa and the action server."""
    settings = app[SETTINGS_KEY]
    timeout = aiohttp.ClientTimeout(total=settings.rasa_timeout)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        app[RASA_KEY] = RasaClient(session, settings.rasa_urls or settings.rasa_url,
                                   settings.actions_urls or settings.actions_url,
                                   token=settings.rasa_token)
        yield


def _load_catalog(database_url: str, refresh: float = 5.0) -> CatalogState:
    """Seed an empty catalog and build the in-memory search index (blocking)."""
    live = LiveIndex(database_url, check_every=refresh)
    live.load()
    return CatalogState(index=live)


async def catalog_ctx(app: web.Application) -> AsyncIterator[None]:
    """Build the search index once, off the event loop (SQLAlchemy here is synchronous)."""
    settings = app[SETTINGS_KEY]
    try:
        state = await asyncio.to_thread(_load_catalog, settings.database_url,
                                        settings.catalog_refresh)
        log.info("catalog loaded: %d procedures", state.size)
    except Exception as exc:  # keep chatting even if the catalog is broken; /healthz says so
        log.exception("catalog could not be loaded")
        state = CatalogState(index=None, error=f"{type(exc).__name__}: {exc}"[:300])
    app[CATALOG_KEY] = state
    yield


# --------------------------------------------------------------------------- chat


def _required_str(data: dict[str, Any], field: str) -> str:
    if field not in data or data[field] is None:
        raise ApiError(422, "missing_field", f"Thiếu trường bắt buộc '{field}'.")
    value = data[field]
    if not isinstance(value, str):
        raise ApiError(422, "invalid_field", f"Trường '{field}' phải là chuỗi ký tự.")
    return value


def parse_chat_request(raw: bytes, settings: Settings) -> tuple[str, str, dict[str, Any]]:
    """Validate a chat body; return (sender, NFC text, metadata) or raise `ApiError`."""
    data = json_object(raw, "có các trường 'sender' và 'text'")
    sender = _required_str(data, "sender")
    text = _required_str(data, "text")
    utf8_len(sender, "sender")
    if not sender.strip():
        raise ApiError(422, "invalid_field", "Trường 'sender' không được để trống.")
    if len(sender) > MAX_SENDER_CHARS:
        raise ApiError(
            422, "invalid_field", f"Trường 'sender' dài tối đa {MAX_SENDER_CHARS} ký tự."
        )
    text = chat_text(text, settings)

    metadata = data.get("metadata")
    if metadata is None:
        metadata = {}
    elif not isinstance(metadata, dict):
        raise ApiError(422, "invalid_field", "Trường 'metadata' phải là một đối tượng JSON.")
    return sender, text, metadata


async def chat(request: web.Request) -> web.Response:
    """POST /api/v1/chat: forward one citizen message to Rasa's REST channel."""
    settings = request.app[SETTINGS_KEY]
    raw = await read_body(request, body_limit(settings))
    sender, text, metadata = parse_chat_request(raw, settings)
    if sender.startswith("zalo-"):  # Zalo conversations (and handover replies) are Zalo's
        raise ApiError(422, "invalid_field", "Trường 'sender' không được bắt đầu bằng 'zalo-'.")
    request.app[LIMITS_KEY].check(sender, request.remote)
    log.info("chat turn sender=%r text=%r", for_log(sender), for_log(text))

    # While a person handles this conversation the bot stays silent: the message goes to
    # the handover, the answer carries only staff messages not shown yet (bot.handover).
    desk = request.app[HANDOVER_KEY]
    routed = await desk.route(sender, text)
    if routed is not None:
        return json_response({"messages": [m.public() for m in routed.notes],
                              "handover": routed.state.public()})

    # Only the widget and the web page talk REST; a client cannot claim to be Zalo, nor
    # name its own address (the action server limits status look-ups per client).
    channel = "widget" if metadata.get("channel") == "widget" else "web"
    started = time.monotonic()
    try:
        messages = await request.app[RASA_KEY].send(
            sender, text, {**metadata, "channel": channel,
                           CLIENT_METADATA_KEY: client_key(request.remote)}
        )
    except RasaUnavailable as exc:
        log.warning("assistant unavailable for sender=%r: %s", for_log(sender), exc)
        message = apology(settings)
        return json_response(
            {
                "messages": stamp([{"text": message, "buttons": []}]),
                **error_body("assistant_unavailable", message),
            },
            status=503,
            headers={"Retry-After": "30"},
        )
    log.info(
        "chat reply sender=%r messages=%d in %.2fs",
        for_log(sender), len(messages), time.monotonic() - started,
    )
    state, staff = await desk.after_turn(sender)
    body: dict[str, Any] = {"messages": [m.public() for m in staff] + stamp(messages)}
    if state is not None:
        body["handover"] = state.public()
    return json_response(body)


# --------------------------------------------------------------------------- search


def _search_params(query: Any) -> tuple[str, int]:
    q = query.get("q")
    if q is None:
        raise ApiError(422, "missing_field", "Thiếu tham số 'q' (nội dung cần tìm).")
    q = nfc(q).strip()
    if not q:
        raise ApiError(422, "empty_query", "Tham số 'q' không được để trống.")
    if len(q) > MAX_QUERY_CHARS:
        raise ApiError(
            422, "invalid_field", f"Tham số 'q' dài tối đa {MAX_QUERY_CHARS} ký tự."
        )
    raw_limit = query.get("limit")
    if raw_limit is None:
        return q, DEFAULT_SEARCH_LIMIT
    if not _LIMIT_RE.fullmatch(raw_limit) or not (
        1 <= int(raw_limit) <= MAX_SEARCH_LIMIT
    ):
        raise ApiError(
            422, "invalid_field",
            f"Tham số 'limit' phải là số nguyên từ 1 đến {MAX_SEARCH_LIMIT}.",
        )
    return q, int(raw_limit)


async def search_procedures(request: web.Request) -> web.Response:
    """GET /api/v1/procedures/search: accent- and typo-tolerant catalog lookup."""
    request.app[LIMITS_KEY].check_route(SEARCH, request.remote)
    q, limit = _search_params(request.query)
    state = request.app[CATALOG_KEY]
    if state.index is None:
        raise ApiError(
            503, "catalog_unavailable",
            "Danh mục thủ tục tạm thời không sẵn sàng. Bạn vui lòng thử lại sau.",
        )
    # Typo correction runs rapidfuzz over the vocabulary: keep it off the event loop.
    index = state.index
    results = await asyncio.to_thread(lambda: index.get().search(q, limit))
    return json_response({"results": [r.as_dict() for r in results]})


# --------------------------------------------------------------------------- health


def _db_ping(database_url: str) -> None:
    with session_scope(database_url) as session:
        session.execute(sql_text("SELECT 1"))


async def _check_database(app: web.Application) -> tuple[bool, str]:
    try:
        await asyncio.wait_for(
            asyncio.to_thread(_db_ping, app[SETTINGS_KEY].database_url), HEALTH_TIMEOUT
        )
    except asyncio.TimeoutError:
        return False, f"SELECT 1 did not answer within {HEALTH_TIMEOUT:g}s"
    except Exception as exc:
        return False, f"{type(exc).__name__}: {exc}"[:300]
    state = app[CATALOG_KEY]
    if state.index is None:
        return False, f"SELECT 1 ok, but the catalog failed to load: {state.error}"
    return True, f"SELECT 1 ok; catalog has {state.size} procedures"


async def _check_redis(redis_url: str) -> tuple[bool, str]:
    """PING the lock store's Redis (a fresh connection: the probe must see an outage)."""
    import redis.asyncio as aioredis
    from redis.exceptions import RedisError

    client = aioredis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=2)
    try:
        await client.ping()
    except (RedisError, OSError) as exc:
        return False, (f"Redis unreachable ({type(exc).__name__}): replicas use their own "
                       "conversation locks (degraded mode)")
    finally:
        await client.close()
    return True, "PONG"


async def _guarded(name: str, check: Awaitable[tuple[bool, str]]) -> dict[str, Any]:
    """Run one check so that a bug in it reports "not ok" instead of failing /healthz."""
    try:
        ok, detail = await check
    except Exception as exc:
        log.exception("health check %s crashed", name)
        ok, detail = False, f"{type(exc).__name__}: {exc}"
    return {"ok": ok, "detail": detail}


async def health_report(app: web.Application) -> tuple[bool, dict[str, Any]]:
    """Rasa, action server, database (and Redis) probed concurrently: (healthy, the body
    with the status and every check's detail). The details name internal URLs and quote
    error texts: `healthz` decides who sees them."""
    rasa = app[RASA_KEY]
    names = ("rasa", "actions", "database")
    results = await asyncio.gather(
        _guarded("rasa", rasa.check_rasa()),
        _guarded("actions", rasa.check_actions()),
        _guarded("database", _check_database(app)),
    )
    checks = dict(zip(names, results, strict=True))
    healthy = all(c["ok"] for c in results)
    status = "ok" if healthy else "degraded"
    settings = app[SETTINGS_KEY]
    if settings.redis_url:
        # Without Redis the replicas fall back to their own locks (bot/lock_store.py) and
        # keep answering, so this reports the degraded mode but does not fail the probe.
        checks["lock_store"] = await _guarded("lock_store", _check_redis(settings.redis_url))
        if healthy and not checks["lock_store"]["ok"]:
            status = "degraded"
    return healthy, {"status": status, "checks": checks}


def may_see_health_details(request: web.Request, settings: Settings) -> bool:
    """Whether this /healthz caller gets the details: monitoring sending HEALTH_TOKEN as
    `Authorization: Bearer …`. No header: the public answer (probes, load balancers).
    A header with another token is refused (401) rather than answered like the public,
    so that a misconfigured monitor notices instead of silently losing the details."""
    header = request.headers.get("Authorization")
    if header is None:
        return False
    scheme, _, token = header.strip().partition(" ")
    expected = settings.health_token
    if expected and scheme.lower() == "bearer" and hmac.compare_digest(
            token.strip().encode(), expected.encode()):
        return True
    raise ApiError(401, "unauthorized", "Mã truy cập không đúng.",
                   headers={"WWW-Authenticate": "Bearer"})


def health_response(healthy: bool, body: dict[str, Any]) -> web.Response:
    """503 while unhealthy (load balancers act on the code alone); never cached, since a
    cached "ok" would hide an outage."""
    return json_response(body, status=200 if healthy else 503,
                         headers={"Cache-Control": "no-store"})


async def healthz(request: web.Request) -> web.Response:
    """GET /healthz: `{"status"}` and 200 or 503 for anyone; with the checks' details
    (internal URLs, database errors) for monitoring holding HEALTH_TOKEN.

    Limited per address like every public route: each call costs a database query and
    two HTTP probes, so it would otherwise be the cheapest way to load the whole stack.
    """
    app = request.app
    app[LIMITS_KEY].check_route(HEALTH, request.remote)
    detailed = may_see_health_details(request, app[SETTINGS_KEY])
    healthy, body = await health_report(app)
    return health_response(healthy, body if detailed else {"status": body["status"]})


async def console_health(request: web.Request) -> web.Response:
    """GET /console/api/health: /healthz with its details, for a logged-in admin (the
    console's guard; the session cookie is sent to /console/ paths only)."""
    return health_response(*await health_report(request.app))


# --------------------------------------------------------------------------- page


async def index(request: web.Request) -> web.FileResponse:
    """GET /: the chat page; no-cache so a redeploy is picked up on reload."""
    return web.FileResponse(
        STATIC_DIR / "index.html",
        headers={"Cache-Control": "no-cache", "Content-Type": "text/html; charset=utf-8"},
    )


# --------------------------------------------------------------------------- wiring


CLIENT_KEY = "client_address"  # request state: the client's address, for the access log


def client_middleware(trusted: Networks) -> Any:
    """First in the chain: every handler's `request.remote` is the client's own address,
    read from X-Forwarded-For only when the peer is a trusted proxy (TRUSTED_PROXIES)."""

    @web.middleware
    async def middleware(request: web.Request, handler: Any) -> web.StreamResponse:
        address = client_address(request.remote, request.headers.get("X-Forwarded-For"),
                                 trusted)
        request[CLIENT_KEY] = address  # on the request the access logger is given
        if address == request.remote:
            return await handler(request)
        return await handler(request.clone(remote=address))

    return middleware


def create_app(settings: Settings) -> web.Application:
    """Build the gateway application; resources are opened by its cleanup contexts."""
    # Imported here: the channel uses the gateway's error helpers (bot.gateway imports app).
    from bot.channels.zalo.channel import webhook as zalo_webhook
    from bot.channels.zalo.channel import zalo_ctx

    app = web.Application(
        middlewares=[client_middleware(parse_networks(settings.trusted_proxies)),
                     security_headers_middleware, cors_middleware, json_error_middleware],
        # Above our own body limit so oversized chat bodies get our JSON 413; every other
        # route that reads a body streams it with a limit of its own (`read_body`): Zalo
        # events, feedback, the console's forms (bot.console.web.form: a fee override file
        # is up to 256 KB, far above a chat message).
        client_max_size=body_limit(settings) + 1024,
    )
    app[SETTINGS_KEY] = settings
    app.cleanup_ctx.append(rasa_client_ctx)
    app.cleanup_ctx.append(catalog_ctx)
    app.cleanup_ctx.append(fees_ctx(settings))
    app.cleanup_ctx.append(zalo_ctx(settings, RASA_KEY))
    from bot.retention.runs import retention_ctx  # RETENTION_DAYS: old citizen data deleted

    app.cleanup_ctx.append(retention_ctx(settings))
    app.router.add_post("/api/v1/chat", chat)
    app.router.add_get("/api/v1/procedures/search", search_procedures)
    app.router.add_get("/api/v1/procedures/{code}/fees", procedure_fees)
    add_widget_routes(app, settings, RASA_KEY, apology)
    from bot.handover.web import add_handover

    add_handover(app, settings)
    app.router.add_post("/webhooks/zalo", zalo_webhook)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/", index)
    app.router.add_static("/static/", STATIC_DIR)
    from bot.console.app import add_console
    from bot.console.web import guarded

    add_console(app, settings)
    # Admins only (the permission to manage accounts: admins alone hold it).
    app.router.add_get("/console/api/health", guarded("operators")(console_health))
    return app


class MaskingAccessLogger(AbstractAccessLogger):
    """Access log without query strings (search queries are citizen text) and masked paths.

    Paths are capped before masking (`path_for_log`): this runs on the event loop.
    """

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info(
            '%s "%s %s" %s %.3fs',
            request.get(CLIENT_KEY, request.remote), request.method, path_for_log(request.path),
            response.status, time,
        )


def run_gateway(settings: Settings) -> None:
    """Serve the gateway until interrupted (blocking).

    On SIGTERM/SIGINT aiohttp stops accepting and lets requests in flight finish for up to
    the time a chat turn may wait for Rasa: a message accepted before the stop is answered.
    """
    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    web.run_app(
        create_app(settings),
        host=settings.bot_host,
        port=settings.bot_port,
        access_log_class=MaskingAccessLogger,
        shutdown_timeout=settings.rasa_timeout + 2,
    )

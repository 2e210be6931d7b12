"""Plumbing every console page shares: sessions, roles, CSRF, rendering, database calls.

The console is server-rendered (Jinja2, autoescaped) on the gateway's aiohttp app. A page
handler declares the permission it needs with `@guarded("…")`; the guard finds the session
from the cookie, answers 401/redirect or 403, and on POST checks the form's CSRF token
(synchronizer token stored with the session) and that the request comes from this origin.

The CSRF check is these few lines rather than a library: aiohttp has no maintained CSRF
package (aiohttp-csrf is unmaintained and cookie-based), and a per-session token kept in
our own session table is the textbook synchronizer pattern.
"""

from __future__ import annotations

import asyncio
import functools
import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qsl, quote, urlsplit

import jinja2
from aiohttp import web
from sqlalchemy.orm import Session

from bot.catalog.db import session_scope
from bot.config import Settings
from bot.console.accounts import WINDOW_MINUTES, LoggedIn, session_for
from bot.console.catalog_admin import MAX_OVERRIDE_BYTES
from bot.console.conversations import VIETNAM
from bot.gateway.errors import ApiError, read_body

T = TypeVar("T")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

COOKIE = "dvc_console"
PRE_COOKIE = "dvc_console_pre"  # the login form's CSRF token, before there is a session
PREFIX = "/console"
TEMPLATES = Path(__file__).resolve().parent / "templates"

SETTINGS_KEY = web.AppKey("console_settings", Settings)
JINJA_KEY = web.AppKey("console_jinja", jinja2.Environment)
# Bounds this process's concurrent argon2 verifications (accounts.verify_bounded).
LOGIN_GATE_KEY = web.AppKey("console_login_gate", asyncio.Semaphore)
USER_KEY = "console_user"
FORM_KEY = "console_form"  # request state: the form, read once (the guard reads it first)

# The console's own body limits, not the chat's (bot.gateway.app.body_limit, ~15 KB). The
# largest text a console form carries is a fee override file (MAX_OVERRIDE_BYTES of UTF-8);
# a browser sends it urlencoded, every non-ASCII byte as "%XX", so a file at the limit is up
# to 3x that on the wire. Twice as much again, so that a file somewhat over the limit still
# reaches its handler, which answers with the form, the operator's text and what is wrong.
FORM_BYTES = 2 * 3 * MAX_OVERRIDE_BYTES + 64 * 1024
# The login form is read before anyone is known: a name, a password and two tokens.
LOGIN_FORM_BYTES = 16 * 1024

# What each role may do. Agents answer citizens; trainers keep the NLU and the catalog good;
# admins also manage accounts and read the audit log.
PERMISSIONS: dict[str, frozenset[str]] = {
    "dashboard": frozenset({"admin", "trainer", "agent"}),
    "conversations.read": frozenset({"admin", "trainer", "agent"}),
    "handover": frozenset({"admin", "trainer", "agent"}),
    # Taking over or closing a conversation another operator holds (`force`): admins only,
    # so an agent cannot cut a colleague off a citizen in mid-conversation.
    "handover.force": frozenset({"admin"}),
    "nlu.correct": frozenset({"admin", "trainer"}),
    "model.train": frozenset({"admin", "trainer"}),
    "model.activate": frozenset({"admin", "trainer"}),
    "catalog.edit": frozenset({"admin", "trainer"}),
    "operators": frozenset({"admin"}),
    "audit.read": frozenset({"admin"}),
    # Zalo dead letters: retrying re-sends to a citizen, discarding drops their message.
    "zalo.dead_letters": frozenset({"admin"}),
}

ROLE_LABELS = {"admin": "Quản trị", "trainer": "Huấn luyện", "agent": "Cán bộ hỗ trợ"}


@dataclass(frozen=True)
class NavItem:
    """A console page in the menu: shown to the roles that hold its permission."""

    permission: str
    href: str
    label: str
    about: str


# In menu order; pages register here when their module mounts them (add_console).
NAV: list[NavItem] = []


def nav_items(user: LoggedIn | None) -> list[NavItem]:
    return [item for item in NAV if can(user, item.permission)]


def add_nav(item: NavItem) -> None:
    if item.href not in {n.href for n in NAV}:
        NAV.append(item)


def vn_time(value: datetime | None, fmt: str = "%d/%m/%Y %H:%M") -> str:
    """A time as Vietnam's clock shows it; a naive value is UTC (how the tables store it)."""
    if value is None:
        return ""
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(VIETNAM).strftime(fmt)


def jinja_env() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES),
                             autoescape=jinja2.select_autoescape(["html"]),
                             undefined=jinja2.StrictUndefined, trim_blocks=True,
                             lstrip_blocks=True)
    env.globals.update(PREFIX=PREFIX, ROLE_LABELS=ROLE_LABELS, can=can, nav_items=nav_items,
                       VN=VIETNAM, MAX_OVERRIDE_KB=MAX_OVERRIDE_BYTES // 1024)
    env.filters["vn"] = vn_time
    return env


def can(user: LoggedIn | None, permission: str) -> bool:
    return user is not None and user.role in PERMISSIONS[permission]


async def db(request: web.Request, fn: Callable[[Session], T]) -> T:
    """Run `fn(session)` in a worker thread in one transaction (the event loop stays free)."""
    url = request.app[SETTINGS_KEY].database_url

    def work() -> T:
        with session_scope(url) as s:
            return fn(s)

    return await asyncio.to_thread(work)


def address(request: web.Request) -> str:
    return (request.remote or "?")[:64]


async def record(request: web.Request, action: str, target: str,
                 detail: dict | None = None) -> None:
    """An audit entry for the logged-in operator, in a transaction of its own (for changes
    made elsewhere: the registry, the hand-over desk; a change made in one of our own
    transactions writes its entry there with `accounts.audit`)."""
    from bot.console.accounts import audit

    user = request[USER_KEY].username
    await db(request, lambda s: audit(s, user, action, target, detail, address(request)))


def render(request: web.Request, template: str, status: int = 200,
           **ctx: Any) -> web.Response:
    """A page; `problem` in `ctx` overrides the text chosen by the query's `err` code."""
    user = request.get(USER_KEY)
    ctx.setdefault("problem", PROBLEMS.get(request.query.get("err", "")))
    html = request.app[JINJA_KEY].get_template(template).render(
        user=user, csrf=user.csrf_token if user else "", path=request.path,
        notice=NOTICES.get(request.query.get("ok", "")), **ctx)
    resp = web.Response(text=html, status=status, content_type="text/html", charset="utf-8")
    resp.headers["Cache-Control"] = "no-store"
    resp.headers["Content-Security-Policy"] = (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
        "form-action 'self'")
    return resp


# Fixed texts chosen by a code in the redirect's query string: nothing a link can inject.
NOTICES = {
    "saved": "Đã lưu.",
    "added": "Đã thêm.",
    "password": "Đã đổi mật khẩu; các phiên đăng nhập cũ của tài khoản đã kết thúc.",
    "logout": "Bạn đã đăng xuất.",
}
PROBLEMS = {
    "login": "Tên đăng nhập hoặc mật khẩu không đúng, hoặc tài khoản đang bị khóa tạm thời.",
    "throttled": "Có quá nhiều lần đăng nhập không thành công. Vì an toàn, bạn hãy thử lại sau "
                 f"khoảng {WINDOW_MINUTES} phút; nếu quên mật khẩu, hãy nhờ quản trị viên đặt "
                 "lại.",
    "csrf": "Biểu mẫu đã hết hạn. Bạn tải lại trang rồi thử lại.",
}


def redirect(location: str, **query: str) -> web.HTTPSeeOther:
    if query:
        sep = "&" if "?" in location else "?"
        location += sep + "&".join(f"{k}={quote(v)}" for k, v in query.items())
    return web.HTTPSeeOther(location)


def safe_next(value: str | None) -> str:
    """Only a path inside the console is a place to return to after login."""
    if value and value.startswith(PREFIX + "/") and not value.startswith("//") \
            and "\\" not in value and urlsplit(value).netloc == "":
        return value
    return PREFIX + "/"


def secure_cookie(request: web.Request) -> bool:
    mode = request.app[SETTINGS_KEY].console_secure_cookie
    if mode in ("1", "true", "yes"):
        return True
    if mode in ("0", "false", "no"):
        return False
    return request.secure or request.headers.get("X-Forwarded-Proto", "") == "https"


def set_cookie(request: web.Request, resp: web.StreamResponse, name: str, value: str,
               max_age: int | None = None) -> None:
    resp.set_cookie(name, value, path=PREFIX, httponly=True, samesite="Strict",
                    secure=secure_cookie(request), max_age=max_age)


def same_origin(request: web.Request) -> bool:
    """A state-changing request must come from a page of this site (CSRF, second layer)."""
    origin = request.headers.get("Origin") or request.headers.get("Referer")
    if not origin:
        return True  # non-browser clients send neither; the CSRF token still applies
    parts = urlsplit(origin)
    return parts.netloc == request.host


class FormTooLarge(Exception):
    """A console form over its body limit: answered with a page saying so (`too_large_page`),
    never a bare 413, so that the operator knows the edit was not saved and why."""

    def __init__(self, limit: int, size: int | None) -> None:
        super().__init__(f"form body over {limit} bytes")
        self.limit = limit
        self.size = size  # from Content-Length; None when the body came chunked


async def form(request: web.Request, limit: int = FORM_BYTES) -> dict[str, str]:
    """The urlencoded form of a console POST, read once per request with the console's
    limit (FormTooLarge beyond it).

    Not `request.post()`: that applies the app's `client_max_size`, sized for chat messages,
    and a fee override file of ~8 KB of Vietnamese got a bare 413 that lost the edit.
    """
    cached = request.get(FORM_KEY)
    if cached is not None:
        return cached
    try:
        raw = await read_body(request, limit)
    except ApiError as exc:
        raise FormTooLarge(limit, request.content_length) from exc
    if request.content_type != "application/x-www-form-urlencoded":
        data: dict[str, str] = {}  # as `request.post()`: other bodies carry no form
    else:
        charset = request.charset or "utf-8"
        text = raw.decode(charset, errors="replace")
        data = dict(parse_qsl(text, keep_blank_values=True, encoding=charset,
                              errors="replace"))
    request[FORM_KEY] = data
    return data


def kilobytes(size: int) -> str:
    return f"{(size + 1023) // 1024:,}".replace(",", ".")


def too_large_page(request: web.Request, exc: FormTooLarge) -> web.Response:
    """413 as a console page: what was refused, the limit, and how to get the text back.

    The connection is closed: the rest of the body was never read.
    """
    sent = f" ({kilobytes(exc.size)} KB)" if exc.size else ""
    resp = render(request, "error.html", status=413, message=(
        f"Nội dung gửi lên quá lớn{sent}: tối đa {kilobytes(exc.limit)} KB cho một biểu mẫu, "
        "nên chưa được lưu. Nội dung bạn vừa sửa vẫn còn trong trình duyệt: bấm nút Quay lại "
        "(Back) để lấy lại, sao lưu ra một tệp, rút gọn rồi gửi lại. Tệp quy định phí của "
        f"một tỉnh dài tối đa {kilobytes(MAX_OVERRIDE_BYTES)} KB."))
    resp.force_close()
    return resp


def wants_json(request: web.Request) -> bool:
    return request.path.startswith(PREFIX + "/api/")


def guarded(permission: str) -> Callable[[Handler], Handler]:
    """Require a session with `permission`; POSTs also need the session's CSRF token."""

    def wrap(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def guard(request: web.Request) -> web.StreamResponse:
            settings = request.app[SETTINGS_KEY]
            hours, most = settings.console_session_hours, settings.console_session_max_hours
            token = request.cookies.get(COOKIE)
            user = await db(request, lambda s: session_for(s, token, hours, most)) \
                if token else None
            if user is None:
                if wants_json(request) or request.method != "GET":
                    raise web.HTTPUnauthorized(text="Cần đăng nhập.")
                raise redirect(f"{PREFIX}/login", next=request.path_qs)
            request[USER_KEY] = user
            if user.role not in PERMISSIONS[permission]:
                return render(request, "error.html", status=403,
                              message="Vai trò của bạn không được làm việc này.")
            try:
                return await _checked(request, user, handler)
            except FormTooLarge as exc:
                return too_large_page(request, exc)

        return guard

    return wrap


async def _checked(request: web.Request, user: LoggedIn, handler: Handler
                   ) -> web.StreamResponse:
    """The CSRF checks of a state-changing request, then the handler."""
    if request.method not in ("GET", "HEAD"):
        sent = request.headers.get("X-CSRF-Token")
        if sent is None and request.content_type == "multipart/form-data":
            # An upload is streamed by its handler (no size-capped body read here):
            # its form carries the token in the action URL instead.
            sent = request.query.get("csrf", "")
        if sent is None:
            sent = (await form(request)).get("csrf", "")
        if not same_origin(request) or not hmac.compare_digest(
                sent.encode(), user.csrf_token.encode()):
            if wants_json(request):
                raise web.HTTPForbidden(text="CSRF token sai.")
            return render(request, "error.html", status=403,
                          message=PROBLEMS["csrf"])
    return await handler(request)

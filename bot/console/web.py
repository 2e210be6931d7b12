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
from urllib.parse import quote, urlsplit

import jinja2
from aiohttp import web
from sqlalchemy.orm import Session

from bot.catalog.db import session_scope
from bot.config import Settings
from bot.console.accounts import WINDOW_MINUTES, LoggedIn, session_for
from bot.console.conversations import VIETNAM

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
                       VN=VIETNAM)
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


async def form(request: web.Request) -> dict[str, str]:
    data = await request.post()
    return {k: str(v) for k, v in data.items() if isinstance(v, str)}


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

        return guard

    return wrap

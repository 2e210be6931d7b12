"""The operator console's routes on the gateway: login, accounts, audit log (more pages are
added by their own modules: conversations, NLU inbox, models, handover, catalog, dashboard).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import secrets
from pathlib import Path

from aiohttp import web
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.config import Settings
from bot.console import accounts
from bot.console.accounts import AccountError
from bot.console.models import ROLES, AuditEntry, Operator
from bot.console.web import (
    COOKIE,
    JINJA_KEY,
    LOGIN_FORM_BYTES,
    LOGIN_GATE_KEY,
    PRE_COOKIE,
    PREFIX,
    PROBLEMS,
    SETTINGS_KEY,
    USER_KEY,
    FormTooLarge,
    NavItem,
    add_nav,
    address,
    db,
    form,
    guarded,
    jinja_env,
    redirect,
    render,
    safe_next,
    same_origin,
    set_cookie,
    too_large_page,
)

STATIC = Path(__file__).resolve().parent / "static"
AUDIT_PAGE = 100


async def login_page(request: web.Request) -> web.StreamResponse:
    count = await db(request, lambda s: s.execute(select(func.count(Operator.id))).scalar_one())
    pre = request.cookies.get(PRE_COOKIE) or secrets.token_urlsafe(24)
    resp = render(request, "login.html", pre=pre, no_accounts=count == 0,
                  next=safe_next(request.query.get("next")), username="")
    set_cookie(request, resp, PRE_COOKIE, pre, max_age=3600)
    return resp


def _throttled_page(request: web.Request, pre: str, username: str,
                    target: str) -> web.Response:
    """429 with the login form again (the name kept): the operator sees why and when to
    retry instead of a "wrong password" that would make them try, and fail, again."""
    resp = render(request, "login.html", status=429, pre=pre, no_accounts=False,
                  next=target, username=username[:64], problem=PROBLEMS["throttled"])
    resp.headers["Retry-After"] = str(accounts.WINDOW_MINUTES * 60)
    return resp


async def login_submit(request: web.Request) -> web.StreamResponse:
    """Check a login in three steps: the throttle (and the attempt recorded) in one
    transaction, the argon2 verification outside any transaction and bounded per process,
    then the session or the failure in a second transaction. Every attempt, refused or not,
    costs one verification, so timing does not tell which names exist."""
    try:
        data = await form(request, LOGIN_FORM_BYTES)
    except FormTooLarge as exc:
        return too_large_page(request, exc)
    pre = request.cookies.get(PRE_COOKIE, "")
    target = safe_next(data.get("next"))
    if not pre or not same_origin(request) or not hmac.compare_digest(
            data.get("csrf", "").encode(), pre.encode()):
        raise redirect(f"{PREFIX}/login", err="csrf")
    settings = request.app[SETTINGS_KEY]
    who = address(request)
    username = data.get("username", "")
    attempt = await db(request, lambda s: accounts.begin_login(s, username, who))
    ok, new_hash = await accounts.verify_bounded(request.app[LOGIN_GATE_KEY],
                                                 attempt.password_hash,
                                                 data.get("password", ""))
    result = await db(request, lambda s: accounts.finish_login(
        s, attempt, ok, new_hash, settings.console_session_hours,
        settings.console_session_max_hours))
    if attempt.throttled:
        return _throttled_page(request, pre, username, target)
    if result is None:
        raise redirect(f"{PREFIX}/login", err="login", next=target)
    token, _ = result
    resp = web.HTTPSeeOther(target)
    set_cookie(request, resp, COOKIE, token)
    resp.del_cookie(PRE_COOKIE, path=PREFIX)
    raise resp


@guarded("dashboard")
async def logout(request: web.Request) -> web.StreamResponse:
    user = request[USER_KEY]
    token = request.cookies.get(COOKIE)
    await db(request, lambda s: accounts.logout(s, token, user.username))
    resp = redirect(f"{PREFIX}/login", ok="logout")
    resp.del_cookie(COOKIE, path=PREFIX)
    raise resp


async def to_home(request: web.Request) -> web.StreamResponse:
    raise redirect(f"{PREFIX}/")


def _operators(s: Session) -> list[dict]:
    locked = accounts.throttled_names(s)
    return [{"username": o.username, "display_name": o.display_name, "role": o.role,
             "active": o.active, "last_login_at": o.last_login_at,
             "locked": o.username in locked}
            for o in s.execute(select(Operator).order_by(Operator.username)).scalars()]


@guarded("operators")
async def operators_page(request: web.Request) -> web.StreamResponse:
    rows = await db(request, _operators)
    return render(request, "operators.html", operators=rows, roles=ROLES, error=None)


@guarded("operators")
async def operators_action(request: web.Request) -> web.StreamResponse:
    """Add an account, reset a password, change a role, disable or enable."""
    data = await form(request)
    me = request[USER_KEY].username
    what = data.get("action", "")
    name = data.get("username", "")

    def act(s: Session) -> str:
        if what == "add":
            accounts.add_operator(s, name, data.get("password", ""), data.get("role", ""),
                                  data.get("display_name"), by=me)
            return "added"
        if name.strip().lower() == me and what in ("disable", "role"):
            raise AccountError("không tự khóa hay đổi vai trò của chính mình")
        if what == "password":
            accounts.set_password(s, name, data.get("password", ""), by=me)
            return "password"
        if what in ("disable", "enable"):
            accounts.set_active(s, name, what == "enable", by=me)
            return "saved"
        if what == "role":
            accounts.set_role(s, name, data.get("role", ""), by=me)
            return "saved"
        raise AccountError("thao tác không hợp lệ")

    try:
        done = await db(request, act)
    except AccountError as exc:
        rows = await db(request, _operators)
        return render(request, "operators.html", status=400, operators=rows, roles=ROLES,
                      error=str(exc))
    raise redirect(f"{PREFIX}/operators", ok=done)


@guarded("audit.read")
async def audit_page(request: web.Request) -> web.StreamResponse:
    actor = request.query.get("actor", "").strip()[:64]
    action = request.query.get("action", "").strip()[:64]

    def rows(s: Session) -> list[dict]:
        q = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(AUDIT_PAGE)
        if actor:
            q = q.where(AuditEntry.actor == actor)
        if action:
            q = q.where(AuditEntry.action.startswith(action))
        return [{"at": e.at, "actor": e.actor, "action": e.action, "target": e.target,
                 "detail": json.loads(e.detail) if e.detail else None, "address": e.address}
                for e in s.execute(q).scalars()]

    return render(request, "audit.html", entries=await db(request, rows), actor=actor,
                  action=action)


def add_console(app: web.Application, settings: Settings) -> None:
    """Mount /console on the gateway app."""
    app[SETTINGS_KEY] = settings
    app[JINJA_KEY] = jinja_env()
    app[LOGIN_GATE_KEY] = asyncio.Semaphore(accounts.VERIFY_CONCURRENCY)
    r = app.router
    r.add_get(f"{PREFIX}/login", login_page)
    r.add_post(f"{PREFIX}/login", login_submit)
    r.add_post(f"{PREFIX}/logout", logout)
    from bot.console.nlu_pages import add_nlu_pages, dashboard_page

    r.add_get(f"{PREFIX}/", dashboard_page)
    add_nlu_pages(app)
    from bot.console.handover_pages import add_handover_pages

    add_handover_pages(app)
    from bot.console.model_pages import add_model_pages

    add_model_pages(app)
    r.add_get(PREFIX, to_home)
    r.add_get(f"{PREFIX}/operators", operators_page)
    r.add_post(f"{PREFIX}/operators", operators_action)
    r.add_get(f"{PREFIX}/audit", audit_page)
    r.add_static(f"{PREFIX}/static/", STATIC)
    from bot.console.catalog_pages import add_catalog_pages

    add_catalog_pages(app)
    from bot.console.zalo_pages import add_zalo_pages

    add_zalo_pages(app)
    add_nav(NavItem("operators", f"{PREFIX}/operators", "Tài khoản",
                    "Thêm cán bộ, đặt lại mật khẩu, phân vai trò, khóa tài khoản."))
    add_nav(NavItem("audit.read", f"{PREFIX}/audit", "Nhật ký",
                    "Ai đã thay đổi gì, lúc nào."))

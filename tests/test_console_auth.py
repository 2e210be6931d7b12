"""Operator console: accounts, login with lock-out, sessions, roles, CSRF, audit log.

The console runs on the real gateway app (aiohttp TestServer) over a real SQLite database;
nothing of ours is mocked. Rasa is not needed for these pages.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from bot.catalog.db import session_scope
from bot.config import Settings
from bot.console import accounts
from bot.console.models import AuditEntry, OperatorSession
from bot.console.web import safe_next
from bot.gateway.app import create_app
from tests.conftest import free_port

PASSWORD = "mat-khau-du-dai-1"


@pytest.fixture()
def settings(db_url: str) -> Settings:
    with session_scope(db_url) as s:
        accounts.add_operator(s, "admin", PASSWORD, "admin", "Chị Quản Trị")
        accounts.add_operator(s, "lan", PASSWORD, "agent", "Cán bộ Lan")
        accounts.add_operator(s, "minh", PASSWORD, "trainer", "Anh Minh")
    return Settings.from_env({"DATABASE_URL": db_url, "RASA_URL": f"http://127.0.0.1:{free_port()}",
                              "ACTIONS_URL": f"http://127.0.0.1:{free_port()}"})


@pytest.fixture()
async def client(settings: Settings) -> AsyncIterator[TestClient]:
    async with TestClient(TestServer(create_app(settings))) as c:
        yield c


async def login(client: TestClient, username: str, password: str = PASSWORD,
                next_: str = "/console/") -> tuple[int, str]:
    status, location, _ = await login_response(client, username, password, next_)
    return status, location


async def login_response(client: TestClient, username: str, password: str = PASSWORD,
                         next_: str = "/console/") -> tuple[int, str, str]:
    page = await client.get("/console/login")
    token = re.search(r'name="csrf" value="([^"]+)"', await page.text()).group(1)
    resp = await client.post("/console/login", data={
        "username": username, "password": password, "csrf": token, "next": next_},
        allow_redirects=False)
    cookies = " | ".join(resp.headers.getall("Set-Cookie", []))
    return resp.status, resp.headers.get("Location", ""), cookies


async def csrf_of(client: TestClient, path: str = "/console/") -> str:
    html = await (await client.get(path)).text()
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


async def test_login_sets_a_strict_http_only_cookie_and_shows_the_right_menu(
        client: TestClient) -> None:
    status, location, cookies = await login_response(client, "lan")
    assert status == 303 and location == "/console/"
    session_cookie = next(c for c in cookies.split(" | ") if c.startswith("dvc_console="))
    assert "HttpOnly" in session_cookie and "SameSite=Strict" in session_cookie
    assert "Path=/console" in session_cookie
    html = await (await client.get("/console/")).text()
    assert "Cán bộ Lan" in html and "Cán bộ hỗ trợ" in html
    assert "/console/operators" not in html  # an agent's menu has no account management


async def test_wrong_passwords_throttle_the_name_and_say_nothing_about_it(
        client: TestClient, settings: Settings) -> None:
    """More in tests/test_console_login.py (per address, per replica, timing)."""
    status, wrong = await login(client, "minh", "sai-mat-khau-roi")
    assert status == 303 and "err=login" in wrong
    _, unknown = await login(client, "khong-ton-tai", "sai-mat-khau-roi")
    assert unknown == wrong  # an unknown user looks exactly the same
    page = await client.get(wrong)
    assert "không đúng, hoặc tài khoản đang bị khóa tạm thời" in await page.text()
    for _ in range(accounts.MAX_FAILED - 1):
        status, location = await login(client, "minh", "sai-mat-khau-roi")
        assert status == 303 and location == wrong
    status, _ = await login(client, "minh")  # the right password, but throttled now
    assert status == 429
    with session_scope(settings.database_url) as s:
        reasons = [e.detail for e in s.execute(select(AuditEntry).where(
            AuditEntry.action == "login.failed")).scalars()]
    assert sum('"throttled"' in (r or "") for r in reasons) == 1
    assert sum('"unknown"' in (r or "") for r in reasons) == 1


async def test_logged_out_users_get_nothing(client: TestClient) -> None:
    resp = await client.get("/console/operators", allow_redirects=False)
    assert resp.status == 303
    assert resp.headers["Location"].startswith("/console/login?next=/console/operators")
    resp = await client.post("/console/operators", data={"action": "add"},
                             allow_redirects=False)
    assert resp.status == 401
    resp = await client.get("/console/audit", allow_redirects=False)
    assert resp.status == 303
    client.session.cookie_jar.update_cookies({"dvc_console": "forged-token"})
    resp = await client.get("/console/", allow_redirects=False)
    assert resp.status == 303


async def test_roles_are_enforced(client: TestClient) -> None:
    await login(client, "lan")
    resp = await client.get("/console/operators")
    assert resp.status == 403 and "không được làm việc này" in await resp.text()
    token = await csrf_of(client)
    resp = await client.post("/console/operators", data={
        "csrf": token, "action": "add", "username": "x", "role": "admin",
        "password": PASSWORD})
    assert resp.status == 403


async def test_forms_need_the_session_csrf_token_and_this_origin(
        client: TestClient, settings: Settings) -> None:
    await login(client, "admin")
    add = {"action": "add", "username": "hoa", "role": "agent", "password": PASSWORD,
           "display_name": "Cán bộ Hoa"}
    resp = await client.post("/console/operators", data=add)
    assert resp.status == 403  # no token
    resp = await client.post("/console/operators", data={**add, "csrf": "wrong"})
    assert resp.status == 403
    token = await csrf_of(client, "/console/operators")
    resp = await client.post("/console/operators", data={**add, "csrf": token},
                             headers={"Origin": "https://evil.example"})
    assert resp.status == 403
    resp = await client.post("/console/operators", data={**add, "csrf": token})
    assert resp.status == 200 and "Đã thêm." in await resp.text()
    with session_scope(settings.database_url) as s:
        entry = s.execute(select(AuditEntry).where(AuditEntry.action == "operator.add",
                                                   AuditEntry.target == "hoa")).scalar_one()
        assert entry.actor == "admin" and '"agent"' in entry.detail


async def test_bad_account_input_is_explained(client: TestClient) -> None:
    await login(client, "admin")
    token = await csrf_of(client, "/console/operators")
    resp = await client.post("/console/operators", data={
        "csrf": token, "action": "add", "username": "lan", "role": "agent",
        "password": PASSWORD})
    assert resp.status == 400 and "đã có" in await resp.text()
    resp = await client.post("/console/operators", data={
        "csrf": token, "action": "add", "username": "moi", "role": "agent", "password": "ngan"})
    assert resp.status == 400 and "ít nhất 10 ký tự" in await resp.text()
    resp = await client.post("/console/operators", data={
        "csrf": token, "action": "disable", "username": "admin"})
    assert resp.status == 400 and "chính mình" in await resp.text()


async def test_a_new_password_or_a_disabled_account_ends_sessions(
        client: TestClient, settings: Settings) -> None:
    await login(client, "lan")
    assert (await client.get("/console/", allow_redirects=False)).status == 200
    with session_scope(settings.database_url) as s:
        accounts.set_password(s, "lan", "mat-khau-moi-hoan-toan", by="test")
    assert (await client.get("/console/", allow_redirects=False)).status == 303
    status, _ = await login(client, "lan", "mat-khau-moi-hoan-toan")
    assert status == 303 and (await client.get("/console/", allow_redirects=False)).status == 200
    with session_scope(settings.database_url) as s:
        accounts.set_active(s, "lan", False, by="test")
        assert s.execute(select(OperatorSession)).scalars().all() == []
    assert (await client.get("/console/", allow_redirects=False)).status == 303


async def test_logout_ends_the_session_and_the_audit_log_shows_it(
        client: TestClient) -> None:
    await login(client, "lan")
    token = await csrf_of(client)
    cookie = client.session.cookie_jar.filter_cookies(
        client.make_url("/console/"))["dvc_console"].value
    resp = await client.post("/console/logout", data={"csrf": token}, allow_redirects=False)
    assert resp.status == 303
    client.session.cookie_jar.update_cookies({"dvc_console": cookie})  # a stolen copy
    assert (await client.get("/console/", allow_redirects=False)).status == 303
    await login(client, "admin")
    html = await (await client.get("/console/audit?actor=lan")).text()
    assert "logout" in html and "login" in html


async def test_login_form_needs_its_own_token(client: TestClient) -> None:
    resp = await client.post("/console/login", data={"username": "admin",
                                                     "password": PASSWORD},
                             allow_redirects=False)
    assert resp.status == 303 and "err=csrf" in resp.headers["Location"]


@pytest.mark.parametrize(("value", "expected"), [
    ("/console/audit", "/console/audit"),
    ("https://evil.example/console/", "/console/"),
    ("//evil.example/console/", "/console/"),
    ("/console/\\evil", "/console/"),
    ("/other", "/console/"),
    (None, "/console/"),
])
def test_login_returns_only_inside_the_console(value: str | None, expected: str) -> None:
    assert safe_next(value) == expected


async def test_pages_forbid_inline_script_and_framing(client: TestClient) -> None:
    resp = await client.get("/console/login")
    csp = resp.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert resp.headers["Cache-Control"] == "no-store"

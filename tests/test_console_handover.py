"""The console's handover pages on the real gateway app: the live queue, take, reply
(stored and queued for the citizen's channel), close; roles, CSRF and the audit log."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from bot.catalog.db import session_scope
from bot.config import Settings
from bot.console import accounts
from bot.console.models import AuditEntry
from bot.gateway.app import create_app
from bot.handover import queue
from tests.conftest import free_port
from tests.test_console_auth import PASSWORD, csrf_of, login

SESSION = "widget-session-console-1"


@pytest.fixture()
def settings(db_url: str) -> Settings:
    with session_scope(db_url) as s:
        accounts.add_operator(s, "lan", PASSWORD, "agent", "Cán bộ Lan")
        accounts.add_operator(s, "hoa", PASSWORD, "agent", "Cán bộ Hoa")
    return Settings.from_env({"DATABASE_URL": db_url, "HANDOVER_HOURS": "always",
                              "RASA_URL": f"http://127.0.0.1:{free_port()}",
                              "ACTIONS_URL": f"http://127.0.0.1:{free_port()}"})


@pytest.fixture()
async def client(settings: Settings) -> AsyncIterator[TestClient]:
    async with TestClient(TestServer(create_app(settings))) as c:
        yield c


def open_one(settings: Settings, text: str = "cho tôi gặp cán bộ") -> int:
    view, new = queue.open_handover(settings.database_url, sender_id=SESSION, channel="widget",
                                    address=SESSION, reason="requested", after_hours=False)
    assert new
    queue.route_citizen_message(settings.database_url, SESSION, text, hours=None,
                                with_pending=False)
    return view.id


async def test_agent_takes_replies_and_closes(client: TestClient, settings: Settings) -> None:
    hid = open_one(settings, "hồ sơ của tôi bị trả về, tôi cần hỏi cán bộ")
    await login(client, "lan")
    html = await (await client.get("/console/handover")).text()
    assert f"/console/handover/{hid}" in html and "người dân yêu cầu" in html
    page = await (await client.get(f"/console/handover/{hid}")).text()
    assert "hồ sơ của tôi bị trả về" in page and 'data-testid="take"' in page
    token = await csrf_of(client, f"/console/handover/{hid}")
    resp = await client.post(f"/console/handover/{hid}", data={"csrf": token, "action": "take"})
    assert resp.status == 200 and "Đang trao đổi — lan" in await resp.text()
    resp = await client.post(f"/console/handover/{hid}", data={
        "csrf": token, "action": "reply", "text": "Chào bạn, mình là cán bộ Lan, mình xem giúp."})
    assert resp.status == 200
    _, sent = queue.messages_after(settings.database_url, SESSION, 0)  # what the widget pulls
    staff = [m for m in sent if m.author == "agent"]
    assert [m.text for m in staff] == ["Chào bạn, mình là cán bộ Lan, mình xem giúp."]
    resp = await client.post(f"/console/handover/{hid}", data={"csrf": token, "action": "close"})
    assert resp.status == 200 and "Đã kết thúc" in await resp.text()
    assert queue.find_open(settings.database_url, SESSION) is None
    with session_scope(settings.database_url) as s:
        actions = [e.action for e in s.execute(select(AuditEntry).where(
            AuditEntry.target == str(hid)).order_by(AuditEntry.id)).scalars()]
    assert actions == ["handover.take", "handover.reply", "handover.close"]


async def test_a_held_handover_is_refused_to_another_agent_and_empty_replies_explained(
        client: TestClient, settings: Settings) -> None:
    hid = open_one(settings)
    queue.take(settings.database_url, hid, "hoa")
    await login(client, "lan")
    token = await csrf_of(client, f"/console/handover/{hid}")
    resp = await client.post(f"/console/handover/{hid}", data={"csrf": token, "action": "take"})
    assert resp.status == 409 and "hoa" in await resp.text()
    resp = await client.post(f"/console/handover/{hid}", data={
        "csrf": token, "action": "reply", "text": "   "})
    assert resp.status == 400 and "chưa viết nội dung" in await resp.text()
    resp = await client.post(f"/console/handover/{hid}", data={"action": "close"})
    assert resp.status == 403  # no CSRF token
    assert queue.find_open(settings.database_url, SESSION) is not None
    assert (await client.get("/console/handover/99999")).status == 404


async def test_the_queue_page_long_poll_wakes_on_a_new_request(
        client: TestClient, settings: Settings) -> None:
    await login(client, "lan")
    first = await (await client.get("/console/api/handover/changes?version=0")).json()
    waiting = asyncio.ensure_future(client.get(
        f"/console/api/handover/changes?version={first['version']}"))
    await asyncio.sleep(0.5)
    await asyncio.to_thread(open_one, settings)
    body = await (await asyncio.wait_for(waiting, timeout=15)).json()
    assert body["changed"] is True and body["version"] > first["version"]


async def test_logged_out_and_unknown_roles_get_nothing(client: TestClient) -> None:
    resp = await client.get("/console/api/handover/changes?version=0", allow_redirects=False)
    assert resp.status == 401
    resp = await client.post("/console/handover/1", data={"action": "take"},
                             allow_redirects=False)
    assert resp.status == 401


async def test_only_an_admin_may_take_over_or_close_a_colleagues_conversation(
        client: TestClient, settings: Settings) -> None:
    """`force` (issue 18, item 11): an agent cannot cut a colleague off a citizen; an admin
    can, and the audit log says it was forced."""
    with session_scope(settings.database_url) as s:
        accounts.add_operator(s, "an", PASSWORD, "admin", "Quản trị An")
    hid = open_one(settings)
    queue.take(settings.database_url, hid, "hoa")
    await login(client, "lan")
    page = await (await client.get(f"/console/handover/{hid}")).text()
    assert 'data-testid="take-over"' not in page and 'data-testid="held-by-other"' in page
    token = await csrf_of(client, f"/console/handover/{hid}")
    for action in ("take", "close"):
        resp = await client.post(f"/console/handover/{hid}", data={
            "csrf": token, "action": action, "force": "1"})
        assert resp.status == 403 and "Chỉ quản trị viên" in await resp.text()
    assert queue.get(settings.database_url, hid).handover.taken_by == "hoa"
    await login(client, "an")
    page = await (await client.get(f"/console/handover/{hid}")).text()
    assert 'data-testid="take-over"' in page
    token = await csrf_of(client, f"/console/handover/{hid}")
    resp = await client.post(f"/console/handover/{hid}", data={
        "csrf": token, "action": "take", "force": "1"})
    assert resp.status == 200 and "Đang trao đổi — an" in await resp.text()
    with session_scope(settings.database_url) as s:
        entries = [(e.actor, e.action, e.detail) for e in s.execute(select(AuditEntry).where(
            AuditEntry.target == str(hid)).order_by(AuditEntry.id)).scalars()]
    assert entries == [("lan", "handover.take.refused", '{"force": true}'),
                       ("lan", "handover.close.refused", '{"force": true}'),
                       ("an", "handover.take", '{"force": true}')]

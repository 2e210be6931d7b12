"""The console's Zalo dead-letter page (bot/console/zalo_pages.py) on the real gateway app:
what an admin sees (Vietnam time, the Zalo user id masked, the error, the tries), retry and
discard (CSRF-protected, audited), and nobody else's access."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select, update

from bot.catalog.db import session_scope
from bot.catalog.models import ZaloInbox, ZaloOutbox
from bot.channels.zalo import queue
from bot.config import Settings
from bot.console import accounts
from bot.console.models import AuditEntry
from bot.gateway.app import create_app
from tests.conftest import free_port
from tests.test_console_auth import PASSWORD, csrf_of, login

USER = "6142494823000000001"
DEAD_AT = datetime(2026, 1, 5, 3, 4)  # UTC: 10:04 in Vietnam


@pytest.fixture()
def settings(db_url: str) -> Settings:
    with session_scope(db_url) as s:
        accounts.add_operator(s, "admin", PASSWORD, "admin", "Chị Quản Trị")
        accounts.add_operator(s, "minh", PASSWORD, "trainer", "Anh Minh")
    return Settings.from_env({"DATABASE_URL": db_url,
                              "RASA_URL": f"http://127.0.0.1:{free_port()}",
                              "ACTIONS_URL": f"http://127.0.0.1:{free_port()}"})


@pytest.fixture()
async def client(settings: Settings) -> AsyncIterator[TestClient]:
    async with TestClient(TestServer(create_app(settings))) as c:
        yield c


def dead_event_and_reply(url: str) -> tuple[int, int]:
    """One dead event (answering raised 20 times) and one dead reply (Zalo kept refusing)."""
    event = json.dumps({"event_name": "user_send_text", "sender": {"id": USER},
                        "message": {"msg_id": "m1", "text": "CCCD 001203004567 của tôi"}})
    assert queue.record_event(url, "m1", USER, event.encode())
    assert queue.record_event(url, "m2", USER, b"{}")
    with session_scope(url) as s:
        first, second = s.execute(select(ZaloInbox.id).order_by(ZaloInbox.id)).scalars()
    queue.complete(url, second, USER, [("text", {"text": "trả lời"})])
    with session_scope(url) as s:
        s.execute(update(ZaloInbox).where(ZaloInbox.id == first).values(
            dead_at=DEAD_AT, attempts=20, last_error="KeyError: 'text' (channel.py:118)"))
        s.execute(update(ZaloOutbox).values(status="dead", dead_at=DEAD_AT, attempts=20,
                                            last_error="-124: fake error"))
        reply = s.execute(select(ZaloOutbox.id)).scalar_one()
    return first, reply


async def test_an_admin_sees_the_dead_letters_without_personal_data(
        client: TestClient, settings: Settings) -> None:
    event_id, reply_id = dead_event_and_reply(settings.database_url)
    await login(client, "admin")
    home = await (await client.get("/console/")).text()
    assert "/console/zalo" in home  # in an admin's menu
    html = await (await client.get("/console/zalo")).text()
    assert "Tin người dân gửi đến" in html and "Câu trả lời gửi đi" in html
    assert "05/01/2026 10:04" in html  # Vietnam time
    assert "6142…" in html and USER not in html  # the Zalo user id masked
    assert "KeyError: &#39;text&#39; (channel.py:118)" in html and "-124: fake error" in html
    assert "user_send_text" in html and "001203004567" not in html  # never the text
    assert f'data-testid="retry-event-{event_id}"' in html
    assert f'data-testid="discard-reply-{reply_id}"' in html


async def test_retry_and_discard_are_audited_and_need_the_csrf_token(
        client: TestClient, settings: Settings) -> None:
    url = settings.database_url
    event_id, reply_id = dead_event_and_reply(url)
    await login(client, "admin")
    resp = await client.post("/console/zalo", data={"action": "retry", "kind": "event",
                                                    "id": str(event_id)})
    assert resp.status == 403  # no CSRF token
    assert len(queue.dead_letters(url)) == 2
    token = await csrf_of(client, "/console/zalo")
    resp = await client.post("/console/zalo", data={
        "csrf": token, "action": "retry", "kind": "event", "id": str(event_id)},
        allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/console/zalo?ok=saved"
    [pending] = queue.pending_events(url)
    assert pending.id == event_id and pending.due  # back in the queue, due now
    resp = await client.post("/console/zalo", data={
        "csrf": token, "action": "discard", "kind": "reply", "id": str(reply_id)})
    assert resp.status == 200 and "Không có tin lỗi nào." in await resp.text()
    with session_scope(url) as s:
        assert s.get(ZaloOutbox, reply_id).status == "discarded"
        audit = [(e.action, e.target) for e in s.execute(
            select(AuditEntry).where(AuditEntry.action.startswith("zalo."))
            .order_by(AuditEntry.id)).scalars()]
    assert audit == [("zalo.retry", f"event:{event_id}"), ("zalo.discard", f"reply:{reply_id}")]
    resp = await client.post("/console/zalo", data={
        "csrf": token, "action": "discard", "kind": "reply", "id": str(reply_id)})
    assert resp.status == 409 and "không còn trong danh sách" in await resp.text()
    resp = await client.post("/console/zalo", data={
        "csrf": token, "action": "drop-table", "kind": "reply", "id": "1"})
    assert resp.status == 400


async def test_only_admins_see_the_page(client: TestClient, settings: Settings) -> None:
    dead_event_and_reply(settings.database_url)
    await login(client, "minh")
    assert "/console/zalo" not in await (await client.get("/console/")).text()
    resp = await client.get("/console/zalo")
    assert resp.status == 403
    token = await csrf_of(client)
    resp = await client.post("/console/zalo", data={"csrf": token, "action": "discard",
                                                    "kind": "event", "id": "1"})
    assert resp.status == 403 and len(queue.dead_letters(settings.database_url)) == 2

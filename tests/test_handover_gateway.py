"""The gateway's side of a handover: REST, WebSocket pushes, the pull endpoint, cancel.

The app is the real `create_app` on a real SQLite database with its real handover desk;
Rasa is the loopback stand-in of test_gateway_input (the action that opens a handover in
production is replaced by the same queue function it calls). test_handover_stack.py runs
the whole thing for real, browser and Zalo included.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import text as sql_text

from bot.catalog.db import session_scope
from bot.gateway.app import create_app
from bot.handover import queue
from bot.handover.desk import HANDOVER_KEY, HandoverDesk
from tests.test_gateway_input import (  # noqa: F401 - fixtures
    database_url,
    error_code,
    fake_rasa,
    make_settings,
)

SESSION = "w-handover-0001"
CHAT = "/api/v1/chat"


@pytest.fixture
async def client(database_url: str, fake_rasa: dict[str, Any]  # noqa: F811
                 ) -> AsyncIterator[TestClient]:
    fake_rasa["body"] = json.dumps([{"text": "Trợ lý trả lời"}]).encode()
    settings = make_settings(database_url, fake_rasa["url"], handover_hours="always",
                             allowed_origins="self,https://ward.example")
    async with TestClient(TestServer(create_app(settings))) as c:
        yield c


def desk(client: TestClient) -> HandoverDesk:
    return client.server.app[HANDOVER_KEY]


def open_for(url: str, sender: str, channel: str = "widget") -> int:
    """What action_request_human does in the action server."""
    view, _ = queue.open_handover(url, sender_id=sender, channel=channel, address=sender,
                                  reason="requested", after_hours=False)
    return view.id


async def chat(client: TestClient, text: str, sender: str = SESSION, **extra: Any
               ) -> dict[str, Any]:
    resp = await client.post(CHAT, json={"sender": sender, "text": text, **extra})
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def test_rest_conversation_through_a_handover(
        client: TestClient, database_url: str, fake_rasa: dict[str, Any]) -> None:  # noqa: F811
    body = await chat(client, "xin chào")
    assert [m["text"] for m in body["messages"]] == ["Trợ lý trả lời"] and "handover" not in body
    hid = open_for(database_url, SESSION)
    asked = len(fake_rasa["received"])

    body = await chat(client, "Tôi cần hỏi về đất đai")
    assert body["handover"] == {"status": "waiting", "after_hours": False}
    (note,) = body["messages"]  # the single acknowledgement, shaped like a bot message
    assert note["author"] == "system" and note["id"].startswith("hm-") and note["ts"]
    body = await chat(client, "Có ai không ạ?")
    assert body == {"messages": [], "handover": {"status": "waiting", "after_hours": False}}
    assert len(fake_rasa["received"]) == asked  # the bot never saw them

    await desk(client).take(hid, "cb.lan")
    await desk(client).reply(hid, "cb.lan", "Chào bạn, bạn hỏi đất ở phường nào?")
    body = await chat(client, "Phường Ba Đình")  # a REST client gets them with its answer
    assert body["handover"]["status"] == "held"
    assert [(m["author"], m["text"]) for m in body["messages"]] == [
        ("system", queue.texts.TAKEN), ("agent", "Chào bạn, bạn hỏi đất ở phường nào?")]
    assert "cb.lan" not in json.dumps(body)

    await desk(client).close(hid, "cb.lan")
    body = await chat(client, "đăng ký khai sinh cần gì")  # the bot answers again
    assert len(fake_rasa["received"]) == asked + 1 and "handover" not in body
    assert [m.get("author") for m in body["messages"]] == ["system", None]
    assert "kết thúc" in body["messages"][0]["text"]
    thread = [(m.author, m.text) for m in (await desk(client).get(hid)).messages]
    assert ("citizen", "Phường Ba Đình") in thread and ("citizen", "Có ai không ạ?") in thread
    assert all(m.delivery == "delivered" for m in (await desk(client).get(hid)).messages
               if m.author != "citizen")


async def test_websocket_push_pull_and_cancel(
        client: TestClient, database_url: str, fake_rasa: dict[str, Any]) -> None:  # noqa: F811
    hid = open_for(database_url, SESSION)
    async with client.ws_connect(f"/api/v1/ws?session={SESSION}") as ws:
        await ws.send_json({"type": "message", "id": "m1", "text": "Cho tôi hỏi"})
        reply = await ws.receive_json(timeout=5)  # no typing frames: nobody is typing
        assert reply["type"] == "reply" and reply["reply_to"] == "m1"
        assert reply["handover"]["status"] == "waiting"
        assert [m["author"] for m in reply["messages"]] == ["system"]

        # An agent in this process: pushed at once.
        await desk(client).reply(hid, "cb.lan", "Mình là cán bộ, bạn cần gì?")
        frame = await ws.receive_json(timeout=5)
        assert frame["type"] == "handover" and frame["handover"]["status"] == "held"
        assert [m["text"] for m in frame["messages"]] == ["Mình là cán bộ, bạn cần gì?"]

        # An agent in another process (here: the queue called directly): the change feed
        # notices within its poll interval and pushes too.
        queue.reply(database_url, hid, "cb.lan", "Bạn còn đó không?")
        frame = await ws.receive_json(timeout=5)
        assert [m["text"] for m in frame["messages"]] == ["Bạn còn đó không?"]
        await asyncio.sleep(0.2)
        assert all(m.delivery == "delivered" for m in (await desk(client).get(hid)).messages
                   if m.author == "agent")

        # The pull endpoint replays what a widget missed, from its cursor.
        first = frame["messages"][0]["seq"] - 1
        resp = await client.get(f"/api/v1/messages?session={SESSION}&after={first}")
        body = await resp.json()
        assert [m["text"] for m in body["messages"]] == ["Bạn còn đó không?"]
        assert body["handover"]["status"] == "held"

        # "Quay lại trợ lý ảo": closed by the citizen, the note pushed, the bot answers.
        resp = await client.post("/api/v1/handover/cancel", json={"session": SESSION})
        assert resp.status == 200 and (await resp.json()) == {"handover": None}
        frame = await ws.receive_json(timeout=5)
        assert frame["handover"] is None and "trợ lý ảo" in frame["messages"][0]["text"]
        asked = len(fake_rasa["received"])
        await ws.send_json({"type": "message", "id": "m2", "text": "lệ phí căn cước"})
        frames = [await ws.receive_json(timeout=5) for _ in range(3)]
        assert [f["type"] for f in frames] == ["typing", "typing", "reply"]
        assert len(fake_rasa["received"]) == asked + 1
    assert (await desk(client).get(hid)).handover.closed_by == "citizen"


async def test_pull_and_cancel_refuse_bad_input_and_foreign_sites(client: TestClient) -> None:
    resp = await client.get("/api/v1/messages?session=short")
    assert await error_code(resp, 422) == "invalid_field"
    resp = await client.get(f"/api/v1/messages?session={SESSION}&after=-1")
    assert await error_code(resp, 422) == "invalid_field"
    resp = await client.get(f"/api/v1/messages?session={SESSION}",
                            headers={"Origin": "https://evil.example"})
    assert await error_code(resp, 403) == "origin_not_allowed"
    resp = await client.get(f"/api/v1/messages?session={SESSION}")
    assert (await resp.json()) == {"messages": [], "handover": None}
    resp = await client.post("/api/v1/handover/cancel", data=b"{}")
    assert await error_code(resp, 422) == "invalid_field"


async def test_zalo_conversations_cannot_be_reached_from_the_web(
        client: TestClient, fake_rasa: dict[str, Any]) -> None:  # noqa: F811
    resp = await client.post(CHAT, json={"sender": "zalo-123", "text": "xin chào"})
    assert await error_code(resp, 422) == "invalid_field"
    resp = await client.get("/api/v1/ws?session=zalo-12345678")
    assert await error_code(resp, 422) == "invalid_field"
    await chat(client, "xin chào", sender="web-claims-zalo", metadata={"channel": "zalo"})
    assert fake_rasa["received"][-1]["metadata"]["channel"] == "web"


async def test_the_bot_answers_when_the_queue_cannot_be_read(
        client: TestClient, database_url: str, fake_rasa: dict[str, Any]) -> None:  # noqa: F811
    open_for(database_url, SESSION)
    with session_scope(database_url) as s:
        s.execute(sql_text("DROP TABLE handover_messages"))
        s.execute(sql_text("DROP TABLE handovers"))
    body = await chat(client, "đăng ký tạm trú cần gì")
    assert [m["text"] for m in body["messages"]] == ["Trợ lý trả lời"]
    assert fake_rasa["received"][-1]["message"] == "đăng ký tạm trú cần gì"


async def test_agents_see_the_queue_change_live(client: TestClient, database_url: str  # noqa: F811
                                                ) -> None:
    d, sender = desk(client), "w-live-00001"
    start = (await d.changes_since(0)).version
    waiter = asyncio.create_task(d.wait_for_changes(start, timeout=10))
    await asyncio.sleep(0.2)
    assert not waiter.done()
    hid = await asyncio.to_thread(open_for, database_url, sender)  # the action server
    changes = await asyncio.wait_for(waiter, 5)  # the feed's poll noticed
    assert [(h.id, h.status) for h in changes.handovers] == [(hid, "waiting")]

    updates = d.subscribe(changes.version)
    following = asyncio.create_task(updates.__anext__())
    await chat(client, "Tôi cần giúp về hộ tịch", sender=sender)  # in-process: at once
    got = await asyncio.wait_for(following, 5)
    assert got.handovers[0].last_text == "Tôi cần giúp về hộ tịch"
    await updates.aclose()
    assert [h.id for h in await d.list_open()] == [hid]
    assert [h.id for h in await d.list_handovers(status="waiting", channel="widget")] == [hid]
    assert (await d.get(hid)).handover.last_citizen_message_at is not None

"""The gateway's side of the web widget: origins, rate limits, WebSocket, feedback, files.

The app is the real `create_app`; Rasa is the loopback stand-in of test_gateway_input (the
browser tests in test_widget_browser.py run everything for real).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer, make_mocked_request
from sqlalchemy import select

from bot.catalog.db import session_scope
from bot.catalog.models import Feedback
from bot.gateway.app import create_app
from bot.gateway.widget import OriginPolicy, RateLimiter
from tests.test_gateway_input import (  # noqa: F401 - fixtures
    database_url,
    error_code,
    fake_rasa,
    make_settings,
)

SESSION = "a1b2c3d4e5f60718"


@pytest.mark.parametrize(
    ("spec", "origin", "allowed"),
    [
        ("self", "http://gw.test:8080", True),
        ("self", "http://evil.test", False),
        ("self,http://localhost:*", "http://localhost:5500", True),
        ("self,http://localhost:*", "http://localhost", True),
        ("self,http://localhost:*", "http://localhost.evil.test:80", False),
        ("https://portal.hanoi.gov.vn", "https://portal.hanoi.gov.vn", True),
        ("https://portal.hanoi.gov.vn", "https://portal.hanoi.gov.vn/", True),
        ("https://portal.hanoi.gov.vn", "http://portal.hanoi.gov.vn", False),
        ("https://portal.hanoi.gov.vn", "https://portal.hanoi.gov.vn.evil.test", False),
        ("*", "https://anything.test", True),
    ],
)
def test_origin_policy(spec: str, origin: str, allowed: bool) -> None:
    request = make_mocked_request("GET", "/api/v1/chat", headers={"Host": "gw.test:8080"})
    assert OriginPolicy(spec).allows(origin, request) is allowed


def test_rate_limiter_sliding_window_and_sweep() -> None:
    rl = RateLimiter(2, window=60)
    assert rl.allow("a", now=0) and rl.allow("a", now=1)
    assert not rl.allow("a", now=59.9)  # third in one window
    assert rl.allow("b", now=30)  # keys are independent
    assert rl.allow("a", now=60.5)  # the first one left the window
    rl.allow("c", now=200)  # a sweep drops keys idle for a whole window
    assert set(rl._events) == {"c"}
    assert RateLimiter(0).allow("x")  # 0 = no limit


@pytest.fixture
async def client(database_url: str, fake_rasa: dict[str, Any]  # noqa: F811
                 ) -> AsyncIterator[TestClient]:
    settings = make_settings(database_url, fake_rasa["url"], rasa_timeout=0.5,
                             allowed_origins="self,https://ward.example",
                             rate_limit_per_minute=3)
    async with TestClient(TestServer(create_app(settings))) as c:
        yield c


async def test_websocket_chat_typing_then_reply_with_ids(client: TestClient,
                                                         fake_rasa: dict[str, Any]  # noqa: F811
                                                         ) -> None:
    fake_rasa["body"] = json.dumps([{"text": "Chào bạn", "buttons": [
        {"title": "Lệ phí", "payload": "/ask_fee"}]}]).encode()
    async with client.ws_connect(f"/api/v1/ws?session={SESSION}",
                                 headers={"Origin": "https://ward.example"}) as ws:
        await ws.send_json({"type": "message", "id": "m1", "text": " Xin cha\u0300o "})
        assert await ws.receive_json() == {"type": "typing", "on": True}
        assert await ws.receive_json() == {"type": "typing", "on": False}
        reply = await ws.receive_json()
    assert reply["type"] == "reply" and reply["reply_to"] == "m1"
    (m,) = reply["messages"]
    assert m["text"] == "Chào bạn" and m["buttons"][0]["payload"] == "/ask_fee"
    assert len(m["id"]) == 32 and m["ts"].endswith("Z")
    sent = fake_rasa["received"][-1]
    assert sent["sender"] == SESSION and sent["message"] == "Xin chào"  # NFC, trimmed
    assert sent["metadata"]["channel"] == "widget"


async def test_websocket_bad_frames_get_error_frames_and_the_socket_lives_on(
        client: TestClient, fake_rasa: dict[str, Any]) -> None:  # noqa: F811
    fake_rasa["body"] = json.dumps([{"text": "ok"}]).encode()
    async with client.ws_connect(f"/api/v1/ws?session={SESSION}") as ws:
        await ws.send_str("not json")
        assert (await ws.receive_json())["code"] == "invalid_json"
        await ws.send_json({"type": "message", "id": "e", "text": "   "})
        err = await ws.receive_json()
        assert (err["code"], err["reply_to"]) == ("empty_text", "e")
        await ws.send_json({"type": "message", "text": "x" * 5000})
        assert (await ws.receive_json())["code"] == "too_large"
        await ws.send_str('{"type": "message", "id": "s", "text": "a\\ud800"}')
        err = await ws.receive_json()  # a lone surrogate: refused, the socket lives on
        assert (err["code"], err["reply_to"]) == ("invalid_encoding", "s")
        for i in range(3):  # the limit is 3 per minute for this session
            await ws.send_json({"type": "message", "id": str(i), "text": "hỏi"})
            frames = [await ws.receive_json() for _ in range(3)]
            assert frames[-1]["type"] == "reply"
        await ws.send_json({"type": "message", "id": "4", "text": "hỏi"})
        err = await ws.receive_json()
        assert err["code"] == "rate_limited" and "chờ" in err["message"]


async def test_websocket_refuses_bad_session_and_foreign_origin(client: TestClient) -> None:
    resp = await client.get("/api/v1/ws?session=short")
    assert await error_code(resp, 422) == "invalid_field"
    resp = await client.get(f"/api/v1/ws?session={SESSION}",
                            headers={"Origin": "https://evil.example"})
    assert await error_code(resp, 403) == "origin_not_allowed"


async def test_websocket_apology_when_rasa_is_down(client: TestClient,
                                                   fake_rasa: dict[str, Any]  # noqa: F811
                                                   ) -> None:
    fake_rasa["status"] = 500
    async with client.ws_connect(f"/api/v1/ws?session={SESSION}") as ws:
        await ws.send_json({"type": "message", "id": "x", "text": "chào"})
        frames = [await ws.receive_json() for _ in range(3)]
    assert frames[-1]["code"] == "assistant_unavailable"
    assert "1900 1234" in frames[-1]["message"]


async def test_cors_for_allowed_origin_and_preflight(client: TestClient,
                                                     fake_rasa: dict[str, Any]  # noqa: F811
                                                     ) -> None:
    fake_rasa["body"] = b"[]"
    resp = await client.options("/api/v1/chat", headers={
        "Origin": "https://ward.example", "Access-Control-Request-Method": "POST"})
    assert resp.status == 204
    assert resp.headers["Access-Control-Allow-Origin"] == "https://ward.example"
    assert "POST" in resp.headers["Access-Control-Allow-Methods"]
    resp = await client.post("/api/v1/chat", json={"sender": SESSION, "text": "chào"},
                             headers={"Origin": "https://ward.example"})
    assert resp.status == 200
    assert resp.headers["Access-Control-Allow-Origin"] == "https://ward.example"
    resp = await client.post("/api/v1/chat", json={"sender": SESSION, "text": "chào"},
                             headers={"Origin": "https://evil.example"})
    assert await error_code(resp, 403) == "origin_not_allowed"
    assert "Access-Control-Allow-Origin" not in resp.headers


async def test_rest_chat_is_rate_limited_per_session(client: TestClient,
                                                     fake_rasa: dict[str, Any]  # noqa: F811
                                                     ) -> None:
    fake_rasa["body"] = b"[]"
    for _ in range(3):
        resp = await client.post("/api/v1/chat", json={"sender": "s-limited", "text": "a"})
        assert resp.status == 200
    resp = await client.post("/api/v1/chat", json={"sender": "s-limited", "text": "a"})
    assert await error_code(resp, 429) == "rate_limited"
    resp = await client.post("/api/v1/chat", json={"sender": "s-other", "text": "a"})
    assert resp.status == 200


async def test_feedback_is_stored_and_the_last_rating_counts(client: TestClient,
                                                             database_url: str  # noqa: F811
                                                             ) -> None:
    body = {"session": SESSION, "message_id": "0123456789abcdef", "rating": "up",
            "text": "Lệ phí: 0 đồng"}
    resp = await client.post("/api/v1/feedback", json=body)
    assert resp.status == 200 and (await resp.json()) == {"ok": True}
    resp = await client.post("/api/v1/feedback", json={**body, "rating": "down"})
    assert resp.status == 200
    with session_scope(database_url) as s:
        rows = s.execute(select(Feedback)).scalars().all()
        assert [(r.session, r.rating, r.text) for r in rows] == [
            (SESSION, "down", "Lệ phí: 0 đồng")]


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"nope", 400, "invalid_json"),
        (b"[]", 400, "invalid_body"),
        (json.dumps({"session": "x", "message_id": "0123456789", "rating": "up"}).encode(),
         422, "invalid_field"),
        (json.dumps({"session": SESSION, "message_id": "0123456789", "rating": "meh"}).encode(),
         422, "invalid_field"),
        (json.dumps({"session": SESSION, "message_id": "<script>", "rating": "up"}).encode(),
         422, "invalid_field"),
        (b'{"session": "%s", "message_id": "0123456789", "rating": "up", "text": "a\\ud800"}'
         % SESSION.encode(), 400, "invalid_encoding"),
        (b"\xff\xfe{}", 400, "invalid_encoding"),
    ],
)
async def test_feedback_rejects_bad_bodies(client: TestClient, body: bytes, status: int,
                                           code: str) -> None:
    resp = await client.post("/api/v1/feedback", data=body,
                             headers={"Content-Type": "application/json"})
    assert await error_code(resp, status) == code


async def test_widget_files_and_demo_page_headers(client: TestClient) -> None:
    resp = await client.get("/widget.js")
    assert resp.status == 200 and "javascript" in resp.headers["Content-Type"]
    assert resp.headers["Cross-Origin-Resource-Policy"] == "cross-origin"
    resp = await client.get("/widget.css")
    assert resp.status == 200 and "text/css" in resp.headers["Content-Type"]
    resp = await client.get("/demo")
    assert resp.status == 200
    csp = resp.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "style-src 'self'" in csp
    assert "unsafe-inline" not in csp
    html = await resp.text()
    assert '<script src="/widget.js"' in html
    assert "<style" not in html and "style=" not in html  # nothing inline for the CSP
    resp = await client.get("/demo/demo.css")
    assert resp.status == 200


def test_app_has_no_route_left_unguarded_by_the_origin_check() -> None:
    """Every /api/ route passes through cors_middleware (it is in the app's middlewares)."""
    from bot.gateway.widget import cors_middleware

    app = create_app(make_settings("sqlite://", "http://127.0.0.1:9"))
    assert cors_middleware in app.middlewares
    assert any(isinstance(r.resource, web.AbstractResource) and
               r.resource.canonical == "/api/v1/ws" for r in app.router.routes())

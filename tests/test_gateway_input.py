"""Gateway input validation, failure handling, search, health and chat page.

The app under test is the real `create_app(Settings(...))`. Rasa and the action server
point at a loopback port where nothing listens, so "Rasa is down" is a real connection
refusal, not a mock. The catalog lives in a SQLite file under tmp_path, pre-filled with
our own small records so the tests never depend on the shipped seed's content.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bot.catalog.db import session_scope
from bot.catalog.seed import upsert_records
from bot.client_address import CLIENT_METADATA_KEY, client_key
from bot.config import Settings
from bot.gateway.app import body_limit, create_app
from bot.gateway.rasa_client import parse_rasa_messages

HOTLINE = "1900 1234"
HEALTH_TOKEN = "health-token-for-monitoring"
MONITOR = {"Authorization": f"Bearer {HEALTH_TOKEN}"}
CHAT = "/api/v1/chat"
SEARCH = "/api/v1/procedures/search"

TEST_RECORDS: list[dict[str, Any]] = [
    {
        "code": "TEST.0001",
        "name": "Cấp giấy phép nuôi chim bồ câu đưa thư",
        "aliases": ["xin phép nuôi bồ câu"],
    },
    {
        "code": "TEST.0002",
        "name": "Đăng ký thuyền buồm du lịch",
        "aliases": ["đăng ký thuyền buồm"],
    },
]


def free_port() -> int:
    """A loopback port that was free a moment ago and that nobody listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_settings(database_url: str, rasa_url: str, **overrides: Any) -> Settings:
    fields: dict[str, Any] = {
        "rasa_url": rasa_url,
        "actions_url": rasa_url,
        "database_url": database_url,
        "support_hotline": HOTLINE,
        "rasa_timeout": 5.0,
        "health_token": HEALTH_TOKEN,
    }
    return Settings(**{**fields, **overrides})


@pytest.fixture
def database_url(tmp_path) -> str:
    url = f"sqlite:///{tmp_path / 'catalog.sqlite3'}"
    with session_scope(url) as session:
        report = upsert_records(session, TEST_RECORDS, source="test")
    assert report.new == len(TEST_RECORDS), report.errors
    return url


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(database_url, f"http://127.0.0.1:{free_port()}")


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[TestClient]:
    async with TestClient(TestServer(create_app(settings))) as c:
        yield c


async def error_code(resp, status: int) -> str:
    """Assert the status and the JSON error envelope; return the machine code."""
    assert resp.status == status, await resp.text()
    assert resp.content_type == "application/json"
    body = await resp.json()
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body["error"]["code"]


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("raw", "status", "code"),
    [
        (b"", 400, "invalid_json"),
        (b"{not json", 400, "invalid_json"),
        (b"[" * 7000 + b"]" * 7000, 400, "invalid_json"),  # RecursionError, no crash
        ('{"sender": "a", "text": "xin chào"}'.encode("utf-16"), 400, "invalid_encoding"),
        (b'{"sender": "a", "text": "caf\xe9"}', 400, "invalid_encoding"),
        (b'{"sender": "a", "text": "\\ud800"}', 400, "invalid_encoding"),  # lone surrogate
        (b'["sender", "text"]', 400, "invalid_body"),
        (b'"xin chao"', 400, "invalid_body"),
        (b"null", 400, "invalid_body"),
        (b'{"text": "xin chao"}', 422, "missing_field"),
        (b'{"sender": "a"}', 422, "missing_field"),
        (b'{"sender": null, "text": "xin chao"}', 422, "missing_field"),
        (b'{"sender": 42, "text": "xin chao"}', 422, "invalid_field"),
        (b'{"sender": "a", "text": ["xin chao"]}', 422, "invalid_field"),
        (b'{"sender": "   ", "text": "xin chao"}', 422, "invalid_field"),
        (b'{"sender": "a", "text": "hi", "metadata": "web"}', 422, "invalid_field"),
        (b'{"sender": "a", "text": ""}', 422, "empty_text"),
        (b'{"sender": "a", "text": " \\n\\t \\u00a0 "}', 422, "empty_text"),
    ],
)
async def test_chat_rejects_malformed_bodies(
    client: TestClient, raw: bytes, status: int, code: str
) -> None:
    resp = await client.post(CHAT, data=raw, headers={"Content-Type": "application/json"})
    assert await error_code(resp, status) == code


async def test_sender_length_limit(client: TestClient) -> None:
    resp = await client.post(CHAT, json={"sender": "s" * 129, "text": "xin chào"})
    assert await error_code(resp, 422) == "invalid_field"
    # Exactly 128 passes validation and reaches (the absent) Rasa.
    resp = await client.post(CHAT, json={"sender": "s" * 128, "text": "xin chào"})
    assert resp.status == 503


async def test_text_limit_counts_utf8_bytes(client: TestClient, settings: Settings) -> None:
    limit = settings.max_message_bytes
    resp = await client.post(CHAT, json={"sender": "a", "text": "a" * (limit + 1)})
    assert await error_code(resp, 413) == "too_large"
    # "ệ" is 3 bytes in UTF-8: fewer characters than the limit, more bytes.
    text = "ệ" * (limit // 3 + 1)
    assert len(text) < limit < len(text.encode("utf-8"))
    resp = await client.post(CHAT, json={"sender": "a", "text": text})
    assert await error_code(resp, 413) == "too_large"
    # Exactly at the limit is accepted (and fails later only because Rasa is down).
    resp = await client.post(CHAT, json={"sender": "a", "text": "a" * limit})
    assert resp.status == 503


async def test_oversized_body_by_content_length(client: TestClient, settings: Settings) -> None:
    body = json.dumps(
        {"sender": "a", "text": "hi", "metadata": {"pad": "x" * body_limit(settings)}}
    ).encode()
    resp = await client.post(CHAT, data=body, headers={"Content-Type": "application/json"})
    assert await error_code(resp, 413) == "too_large"


async def test_oversized_body_without_content_length(
    client: TestClient, settings: Settings
) -> None:
    """Chunked upload: the size must be enforced while reading, not from headers."""
    pad = b"x" * (body_limit(settings) + 10)

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"sender": "a", "text": "hi", "metadata": {"pad": "'
        yield pad
        yield b'"}}'

    resp = await client.post(CHAT, data=chunks(), headers={"Content-Type": "application/json"})
    assert "Content-Length" not in resp.request_info.headers
    assert await error_code(resp, 413) == "too_large"


async def test_unknown_route_and_wrong_method_are_json(client: TestClient) -> None:
    resp = await client.get("/api/v1/nothing-here")
    assert await error_code(resp, 404) == "not_found"
    resp = await client.get(CHAT)
    assert await error_code(resp, 405) == "method_not_allowed"
    assert "POST" in resp.headers["Allow"]
    resp = await client.post(SEARCH, json={"q": "x"})
    assert await error_code(resp, 405) == "method_not_allowed"


# --------------------------------------------------------------------------- Rasa down


async def test_chat_apologises_when_rasa_is_down(client: TestClient) -> None:
    resp = await client.post(
        CHAT, json={"sender": "web-1", "text": "Lệ phí làm căn cước?", "metadata": {"x": 1}}
    )
    assert resp.status == 503
    body = await resp.json()
    assert body["error"]["code"] == "assistant_unavailable"
    [message] = body["messages"]
    assert message["buttons"] == []
    assert message["text"].startswith("Xin lỗi")
    assert HOTLINE in message["text"]
    assert "Traceback" not in await resp.text()


async def test_healthz_reports_rasa_and_actions_down_database_ok(client: TestClient) -> None:
    resp = await client.get("/healthz", headers=MONITOR)
    assert resp.status == 503
    body = await resp.json()
    assert body["status"] == "degraded"
    checks = body["checks"]
    assert set(checks) == {"rasa", "actions", "database"}
    assert checks["rasa"]["ok"] is False and checks["rasa"]["detail"]
    assert checks["actions"]["ok"] is False and checks["actions"]["detail"]
    assert checks["database"]["ok"] is True
    # the two test procedures plus the shipped seed, which is synced at start-up
    count = int(re.search(r"catalog has (\d+) procedures", checks["database"]["detail"])[1])
    assert count >= 2


async def test_healthz_tells_the_public_the_status_only(
        client: TestClient, settings: Settings) -> None:
    """Anyone may ask /healthz (probes, load balancers): the status and the HTTP code, never
    the internal URLs or the error texts of the checks."""
    resp = await client.get("/healthz")
    assert resp.status == 503 and resp.headers["Cache-Control"] == "no-store"
    assert await resp.json() == {"status": "degraded"}
    text = await resp.text()
    assert settings.rasa_url not in text and "127.0.0.1" not in text
    for wrong in ("Bearer not-the-token", f"Basic {HEALTH_TOKEN}", "Bearer", HEALTH_TOKEN):
        resp = await client.get("/healthz", headers={"Authorization": wrong})
        assert await error_code(resp, 401) == "unauthorized"
        assert resp.headers["WWW-Authenticate"] == "Bearer"
        assert "checks" not in await resp.text()


async def test_healthz_without_a_health_token_refuses_every_bearer(
        database_url: str) -> None:
    settings = make_settings(database_url, f"http://127.0.0.1:{free_port()}", health_token="")
    async with TestClient(TestServer(create_app(settings))) as c:
        assert await (await c.get("/healthz")).json() == {"status": "degraded"}
        resp = await c.get("/healthz", headers={"Authorization": "Bearer "})
        assert await error_code(resp, 401) == "unauthorized"


async def test_console_admins_see_the_health_details(
        client: TestClient, settings: Settings) -> None:
    from bot.console import accounts
    from tests.test_console_auth import PASSWORD, login

    with session_scope(settings.database_url) as s:
        accounts.add_operator(s, "quan", PASSWORD, "admin")
        accounts.add_operator(s, "lan", PASSWORD, "agent")
    assert (await client.get("/console/api/health")).status == 401
    await login(client, "lan")
    assert (await client.get("/console/api/health")).status == 403
    await login(client, "quan")
    resp = await client.get("/console/api/health")
    assert resp.status == 503 and resp.headers["Cache-Control"] == "no-store"
    body = await resp.json()
    assert body["status"] == "degraded" and body["checks"]["database"]["ok"] is True
    assert settings.rasa_url in body["checks"]["rasa"]["detail"]


async def test_chat_turn_logs_are_masked(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bot.gateway")
    await client.post(
        CHAT,
        json={"sender": "0912345678", "text": "CCCD 001203004567, sđt 0987654321" + "a" * 500},
    )
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "chat turn" in logged
    for raw in ("0912345678", "001203004567", "0987654321"):
        assert raw not in logged
    assert "001******567" in logged
    assert "a" * 250 not in logged  # truncated to 200 characters


# --------------------------------------------------------------------------- fake Rasa


@pytest.fixture
async def fake_rasa() -> AsyncIterator[dict[str, Any]]:
    """A stand-in REST channel whose reply each test sets; records what it received."""
    state: dict[str, Any] = {"received": [], "status": 200, "body": b"[]", "delay": 0.0}

    async def webhook(request: web.Request) -> web.Response:
        state["received"].append(await request.json())
        await asyncio.sleep(state["delay"])
        return web.Response(
            status=state["status"], body=state["body"], content_type="application/json"
        )

    app = web.Application()
    app.router.add_post("/webhooks/rest/webhook", webhook)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    state["url"] = str(server.make_url("")).rstrip("/")
    yield state
    await server.close()


@pytest.fixture
async def rasa_client(
    database_url: str, fake_rasa: dict[str, Any]
) -> AsyncIterator[TestClient]:
    settings = make_settings(database_url, fake_rasa["url"], rasa_timeout=0.5)
    async with TestClient(TestServer(create_app(settings))) as c:
        yield c


async def test_chat_forwards_nfc_text_and_shapes_reply(
    rasa_client: TestClient, fake_rasa: dict[str, Any]
) -> None:
    fake_rasa["body"] = json.dumps([
        {"recipient_id": "u1", "text": "Dòng 1\nDòng 2",
         "buttons": [{"title": "Lệ phí", "payload": '/ask_fee{"code":"1.0"}'}]},
        {"recipient_id": "u1", "image": "https://example.invalid/x.png"},
        {"recipient_id": "u1", "text": "Chỉ có chữ"},
        {"recipient_id": "u1", "custom": {"a": 1}, "text": "Có chữ kèm custom"},
    ]).encode()
    nfd = "Le\u0323\u0302 phi\u0301"  # "Lệ phí" typed in decomposed form
    resp = await rasa_client.post(
        CHAT, json={"sender": "u1", "text": f"  {nfd}  ", "metadata": {"lang": "vi"}}
    )
    assert resp.status == 200
    body = await resp.json()
    ids = [m.pop("id") for m in body["messages"]]
    stamps = [m.pop("ts") for m in body["messages"]]
    assert len(set(ids)) == 3 and all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", t) for t in stamps)
    assert body == {"messages": [
        {"text": "Dòng 1\nDòng 2",
         "buttons": [{"title": "Lệ phí", "payload": '/ask_fee{"code":"1.0"}'}]},
        {"text": "Chỉ có chữ", "buttons": []},
        {"text": "Có chữ kèm custom", "buttons": []},
    ]}
    [sent] = fake_rasa["received"]
    # every message carries an id that finds it again in a tracker (replica failover)
    assert re.fullmatch(r"[0-9a-f]{32}", sent["metadata"].pop("dvc_message_id"))
    # and the client's key, for the status look-up limit per address (tests/test_gateway_limits)
    assert sent["metadata"].pop(CLIENT_METADATA_KEY) == client_key("127.0.0.1")
    assert sent == {"sender": "u1", "message": "Lệ phí",
                    "metadata": {"channel": "web", "lang": "vi"}}


@pytest.mark.parametrize(
    ("status", "body", "delay"),
    [
        (500, b'{"error": "boom"}', 0.0),
        (200, b"<html>not json</html>", 0.0),
        (200, b'{"not": "a list"}', 0.0),
        (200, b"[]", 2.0),  # slower than rasa_timeout=0.5
    ],
    ids=["http-500", "invalid-json", "not-a-list", "timeout"],
)
async def test_chat_503_on_bad_rasa_replies(
    rasa_client: TestClient, fake_rasa: dict[str, Any], status: int, body: bytes, delay: float
) -> None:
    fake_rasa.update(status=status, body=body, delay=delay)
    resp = await rasa_client.post(CHAT, json={"sender": "u1", "text": "xin chào"})
    assert resp.status == 503
    data = await resp.json()
    assert data["error"]["code"] == "assistant_unavailable"
    assert HOTLINE in data["messages"][0]["text"]


def test_parse_rasa_messages_defaults_button_payload_to_title() -> None:
    parsed = parse_rasa_messages([
        {"buttons": [{"title": "Có"}, {"payload": "/no"}, "junk"]},
        "junk",
        {"text": "   "},
    ])
    assert parsed == [{"text": "", "buttons": [{"title": "Có", "payload": "Có"}]}]


# --------------------------------------------------------------------------- search


async def test_search_accent_free_query_finds_test_procedure(client: TestClient) -> None:
    resp = await client.get(SEARCH, params={"q": "thu tuc nuoi chim bo cau dua thu"})
    assert resp.status == 200
    results = (await resp.json())["results"]
    assert results and results[0]["code"] == "TEST.0001"
    assert results[0]["name"] == "Cấp giấy phép nuôi chim bồ câu đưa thư"
    assert 0 < results[0]["score"] <= 1


async def test_search_nfd_query_and_limit(client: TestClient) -> None:
    resp = await client.get(SEARCH, params={"q": "thuye\u0300n buo\u0302\u0300m", "limit": "1"})
    assert resp.status == 200
    results = (await resp.json())["results"]
    assert [r["code"] for r in results] == ["TEST.0002"]


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({}, "missing_field"),
        ({"q": ""}, "empty_query"),
        ({"q": "   "}, "empty_query"),
        ({"q": "a" * 501}, "invalid_field"),
        ({"q": "bo cau", "limit": "0"}, "invalid_field"),
        ({"q": "bo cau", "limit": "21"}, "invalid_field"),
        ({"q": "bo cau", "limit": "-1"}, "invalid_field"),
        ({"q": "bo cau", "limit": "abc"}, "invalid_field"),
        ({"q": "bo cau", "limit": "5.0"}, "invalid_field"),
        ({"q": "bo cau", "limit": ""}, "invalid_field"),
        ({"q": "bo cau", "limit": "٥"}, "invalid_field"),  # non-ASCII digit
    ],
)
async def test_search_rejects_bad_params(
    client: TestClient, params: dict[str, str], code: str
) -> None:
    resp = await client.get(SEARCH, params=params)
    assert await error_code(resp, 422) == code


async def test_search_accepts_limit_bounds(client: TestClient) -> None:
    for limit in ("1", "20"):
        resp = await client.get(SEARCH, params={"q": "bo cau", "limit": limit})
        assert resp.status == 200
        assert len((await resp.json())["results"]) <= int(limit)


# --------------------------------------------------------------------------- page


async def test_chat_page_is_served(client: TestClient) -> None:
    resp = await client.get("/")
    assert resp.status == 200
    assert resp.content_type == "text/html"
    html = await resp.text()
    assert "Trợ lý dịch vụ công" in html
    assert "Nhập câu hỏi của bạn…" in html
    assert "/static/chat.js" in html and "/static/chat.css" in html
    assert "default-src 'self'" in resp.headers["Content-Security-Policy"]

    js = await client.get("/static/chat.js")
    assert js.status == 200
    source = await js.text()
    assert "textContent" in source and ".innerHTML" not in source
    assert "localStorage" in source
    css = await client.get("/static/chat.css")
    assert css.status == 200 and "pre-wrap" in await css.text()

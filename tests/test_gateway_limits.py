"""Every public route of the gateway is limited per client address (issue 18, item 4), and a
Zalo conversation cannot be driven from the web API (item 11).

The app is the real `create_app` behind a trusted proxy (TRUSTED_PROXIES=127.0.0.1, the test
client's address), so each test can speak for several citizens through X-Forwarded-For,
as the recommended reverse proxy does. Rasa is the loopback stand-in of test_gateway_input.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bot.catalog.db import session_scope
from bot.catalog.seed import upsert_records
from bot.client_address import CLIENT_METADATA_KEY, bucket, client_key
from bot.gateway.app import create_app
from bot.gateway.widget import SOCKET_CAP_KEY
from bot.handover import queue
from tests.test_gateway_input import TEST_RECORDS, error_code, make_settings

# One app for the whole module (each start of the app costs seconds): every test speaks for
# addresses of its own, so the buckets of one never touch another's.
pytestmark = pytest.mark.asyncio(scope="module")

SESSION = "w-limits-0001"
LIMIT = 3
CITIZEN, OTHER = "203.0.113.7", "198.51.100.20"
WS_CITIZEN, WS_OTHER = "203.0.113.50", "198.51.100.50"
CHAT_CITIZEN, CHAT_OTHER = "203.0.113.60", "198.51.100.60"


def client_of(address: str) -> dict[str, str]:
    """Headers of a request the trusted proxy forwards for `address`."""
    return {"X-Forwarded-For": address}


@pytest.fixture(scope="module")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('limits') / 'catalog.sqlite3'}"
    with session_scope(url) as session:
        upsert_records(session, TEST_RECORDS, source="test")
    return url


@pytest_asyncio.fixture(scope="module")
async def fake_rasa() -> AsyncIterator[dict[str, Any]]:
    """A stand-in REST channel that records what it received and says hello."""
    state: dict[str, Any] = {"received": []}

    async def webhook(request: web.Request) -> web.Response:
        state["received"].append(await request.json())
        return web.json_response([{"text": "Chào bạn"}])

    app = web.Application()
    app.router.add_post("/webhooks/rest/webhook", webhook)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    state["url"] = str(server.make_url("")).rstrip("/")
    yield state
    await server.close()


@pytest_asyncio.fixture(scope="module")
async def client(database_url: str, fake_rasa: dict[str, Any]) -> AsyncIterator[TestClient]:
    settings = make_settings(database_url, fake_rasa["url"], trusted_proxies="127.0.0.1",
                             rate_limit_search_per_minute=LIMIT,
                             rate_limit_poll_per_minute=LIMIT,
                             rate_limit_health_per_minute=LIMIT,
                             websockets_per_address=2, handover_hours="always")
    async with TestClient(TestServer(create_app(settings))) as c:
        yield c


async def assert_refused(resp: aiohttp.ClientResponse) -> None:
    """The gateway's JSON 429: machine code, a Vietnamese message, and Retry-After."""
    assert await error_code(resp, 429) == "rate_limited"
    body = await resp.json()
    assert "vui lòng chờ một chút" in body["error"]["message"]
    assert int(resp.headers["Retry-After"]) > 0


ROUTES = {
    "search": ["/api/v1/procedures/search?q=b%E1%BB%93+c%C3%A2u"],
    # search and fees share one bucket: both read the catalog for anyone
    "search+fees": ["/api/v1/procedures/search?q=thuy%E1%BB%81n",
                    "/api/v1/procedures/TEST.0001/fees"],
    "messages": [f"/api/v1/messages?session={SESSION}"],
    "healthz": ["/healthz"],
}


async def use_up(client: TestClient, paths: list[str], address: str) -> None:
    """LIMIT requests go through, the next one on each path is refused."""
    for i in range(LIMIT):
        resp = await client.get(paths[i % len(paths)], headers=client_of(address))
        assert resp.status != 429, (paths, i, await resp.text())
    for path in paths:
        await assert_refused(await client.get(path, headers=client_of(address)))


async def test_public_routes_are_limited_per_client_address(client: TestClient) -> None:
    """One app for all route families (each start of the app costs seconds)."""
    for n, (family, paths) in enumerate(ROUTES.items()):
        citizen = f"203.0.113.{n + 1}"
        await use_up(client, paths, citizen)
        # Another citizen behind the same proxy has a bucket of their own.
        resp = await client.get(paths[0], headers=client_of(f"198.51.100.{n + 1}"))
        assert resp.status != 429, family
    # Families are separate buckets: polling for staff replies or a probe hammering
    # /healthz never uses up what a citizen needs to search (and the reverse).
    await use_up(client, ROUTES["search"], CITIZEN)
    for family in ("messages", "healthz"):
        resp = await client.get(ROUTES[family][0], headers=client_of(CITIZEN))
        assert resp.status != 429, family

    # A malformed request counts too: the limit comes first.
    for _ in range(LIMIT):
        resp = await client.get("/api/v1/procedures/search", headers=client_of(OTHER))
        assert await error_code(resp, 422) == "missing_field"
    await assert_refused(await client.get("/api/v1/procedures/search?q=x",
                                          headers=client_of(OTHER)))

    # A /64 is one IPv6 subscriber: a fresh address from it per request is no way around.
    await use_up(client, ROUTES["search"], "2001:db8:1:2::1")
    await assert_refused(await client.get(ROUTES["search"][0],
                                          headers=client_of("2001:db8:1:2:ffff::9")))
    resp = await client.get(ROUTES["search"][0], headers=client_of("2001:db8:1:3::1"))
    assert resp.status != 429
    assert bucket("::ffff:203.0.113.7") == CITIZEN


# --------------------------------------------------------------------------- WebSocket


async def wait_for(condition: Any, seconds: float = 5.0) -> None:
    """The server ends a socket's handler shortly after the client sees the close."""
    for _ in range(int(seconds / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met in time")


async def test_websockets_are_capped_per_address_and_slots_come_back(
        client: TestClient) -> None:
    url = "/api/v1/ws?session=w-sock-000{}"
    first = await client.ws_connect(url.format(1), headers=client_of(WS_CITIZEN))
    second = await client.ws_connect(url.format(2), headers=client_of(WS_CITIZEN))
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await client.ws_connect(url.format(3), headers=client_of(WS_CITIZEN))
    assert refused.value.status == 429
    # The refusal is the usual JSON error, readable by a non-browser client.
    resp = await client.get(url.format(3), headers={
        **client_of(WS_CITIZEN), "Connection": "Upgrade", "Upgrade": "websocket",
        "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
    assert await error_code(resp, 429) == "too_many_connections"
    assert "cửa sổ trò chuyện" in (await resp.json())["error"]["message"]
    assert "Retry-After" in resp.headers
    # Another address is not affected.
    other = await client.ws_connect(url.format(4), headers=client_of(WS_OTHER))
    await other.close()

    # A socket closed normally gives its slot back...
    cap = client.server.app[SOCKET_CAP_KEY]
    await first.close()
    await wait_for(lambda: cap.open_count(WS_CITIZEN) == 1)
    # ...and so does one that ends in an error: a frame over the size limit (1009).
    await second.send_str("x" * 100_000)
    msg = await second.receive(timeout=5)
    assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED,
                        aiohttp.WSMsgType.CLOSING)
    await second.close()
    await wait_for(lambda: cap.open_count(WS_CITIZEN) == 0)
    # ...and so does one whose client just vanishes (no close frame).
    third = await client.ws_connect(url.format(5), headers=client_of(WS_CITIZEN))
    await wait_for(lambda: cap.open_count(WS_CITIZEN) == 1)
    third._response.connection.transport.abort()  # the TCP connection drops
    await wait_for(lambda: cap.open_count(WS_CITIZEN) == 0)
    again = [await client.ws_connect(url.format(6 + i), headers=client_of(WS_CITIZEN))
             for i in range(2)]
    for ws in again:
        await ws.close()


# --------------------------------------------------------------------------- metadata


async def test_rasa_gets_the_client_key_of_the_real_address_never_the_bodys(
        client: TestClient, fake_rasa: dict[str, Any]) -> None:
    """The action server limits status look-ups per client (item 5): what it reads must be
    the address the gateway saw, whatever the request said."""
    fake_rasa["received"].clear()
    resp = await client.post("/api/v1/chat", headers=client_of(CHAT_CITIZEN), json={
        "sender": "rest-citizen-1", "text": "tra cứu hồ sơ",
        "metadata": {CLIENT_METADATA_KEY: client_key("1.1.1.1"), "channel": "widget"}})
    assert resp.status == 200, await resp.text()
    async with client.ws_connect(f"/api/v1/ws?session={SESSION}",
                                 headers=client_of(CHAT_OTHER)) as ws:
        await ws.send_json({"type": "message", "id": "m1", "text": "tra cứu hồ sơ"})
        while (await ws.receive_json(timeout=5))["type"] != "reply":
            pass
    rest, socket = (m["metadata"] for m in fake_rasa["received"])
    assert rest[CLIENT_METADATA_KEY] == client_key(CHAT_CITIZEN)
    assert socket[CLIENT_METADATA_KEY] == client_key(CHAT_OTHER)
    assert client_key(CHAT_CITIZEN) != client_key(CHAT_OTHER)
    assert CHAT_CITIZEN not in json.dumps(rest)  # a pseudonym: Rasa stores the metadata


# --------------------------------------------------------------------------- item 11


async def test_a_zalo_conversation_cannot_be_cancelled_or_read_from_the_web(
        client: TestClient, database_url: str) -> None:
    """Anyone knowing a Zalo user id could close that citizen's hand-over (item 11)."""
    queue.open_handover(database_url, sender_id="zalo-84901234567", channel="zalo",
                        address="84901234567", reason="requested", after_hours=False)
    resp = await client.post("/api/v1/handover/cancel", json={"session": "zalo-84901234567"})
    assert await error_code(resp, 422) == "invalid_field"
    assert "Zalo" in (await resp.json())["error"]["message"]
    resp = await client.get("/api/v1/messages?session=zalo-84901234567")
    assert await error_code(resp, 422) == "invalid_field"
    assert queue.find_open(database_url, "zalo-84901234567") is not None  # still open
    # The widget's own conversations still go back to the assistant.
    queue.open_handover(database_url, sender_id=SESSION, channel="widget", address=SESSION,
                        reason="requested", after_hours=False)
    resp = await client.post("/api/v1/handover/cancel", json={"session": SESSION})
    assert resp.status == 200 and queue.find_open(database_url, SESSION) is None

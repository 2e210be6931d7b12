"""Hostile input, fuzzed: the chat API, search and fees, the widget socket, the Zalo webhook.

Property-based (hypothesis): whatever a client sends (arbitrary bytes, invalid UTF-8, deep
or huge JSON, control characters, lone surrogates, SQL and HTML injection strings, wrong
types), the gateway answers with a clear JSON 4xx (or, for a well-formed chat message, the
documented 503 "assistant_unavailable" apology, because Rasa is down here), never a 5xx,
never an unhandled exception in the log, and it stays usable afterwards.

The app under test is the real `create_app(Settings(...))`, served on a real loopback TCP
port by a background thread's event loop (one server per module, many examples through
it). Rasa, the action server and the Zalo OA API point at loopback ports where nothing
listens (see tests/test_gateway_input.py). The body and message limits, the rate limits
and the signature check are the configured ones; nothing is mocked.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import unicodedata
from collections.abc import AsyncIterator, Awaitable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import aiohttp
import pytest
from aiohttp import WSMsgType, web
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import text as sql_text
from yarl import URL

from bot.catalog.db import session_scope
from bot.catalog.seed import upsert_records
from bot.channels.zalo.signature import SIGNATURE_HEADER, expected_mac
from bot.config import Settings
from bot.gateway.app import MAX_SENDER_CHARS, body_limit, create_app
from bot.gateway.widget import LIMITS_KEY
from tests.test_gateway_input import HOTLINE, TEST_RECORDS, free_port

T = TypeVar("T")

CHAT = "/api/v1/chat"
SEARCH = "/api/v1/procedures/search"
WS = "/api/v1/ws"
ZALO = "/webhooks/zalo"
SESSION = "fuzz0123session"
ZALO_APP_ID = "fuzz-app-id"
ZALO_SECRET = "fuzz-oa-secret-key"
HEALTH_TOKEN = "fuzz-health-token"  # /healthz's details (README "Security checks")
MAX_MESSAGE_BYTES = 1024
REPLY_SECONDS = 10.0  # every request must be answered within this (the time limit)

FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                           HealthCheck.data_too_large],
)

# --------------------------------------------------------------------------- the server


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Gateway:
    """The real gateway on a TCP port, driven from sync test code.

    Server and client share one event loop in a background thread; `run` submits a
    coroutine to it and waits (with a timeout: an answer that never comes is a failure).
    """

    def __init__(self, settings_: Settings) -> None:
        self.settings = settings_
        self.app = create_app(settings_)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.run(self._start(), timeout=60)

    async def _start(self) -> None:
        self.runner = web.AppRunner(self.app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        host, port = self.runner.addresses[0][:2]
        self.base = f"http://{host}:{port}"
        self.http = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=REPLY_SECONDS))

    def run(self, coro: Awaitable[T], timeout: float = REPLY_SECONDS + 5) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        async def stop() -> None:
            await self.http.close()
            await self.runner.cleanup()

        self.run(stop(), timeout=30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()

    def request(self, method: str, path: str | URL, **kwargs: Any) -> Reply:
        async def go() -> Reply:
            url = path if isinstance(path, URL) else self.base + path
            async with self.http.request(method, url, **kwargs) as resp:
                return Reply(resp.status, dict(resp.headers), await resp.read())

        started = time.monotonic()
        reply = self.run(go())
        assert time.monotonic() - started < REPLY_SECONDS
        return reply

    def url(self, path: str) -> URL:
        return URL(self.base + path, encoded=True)


def fuzz_settings(database_url: str, **overrides: Any) -> Settings:
    dead = f"http://127.0.0.1:{free_port()}"
    fields: dict[str, Any] = {
        "rasa_url": dead, "actions_url": dead, "database_url": database_url,
        "support_hotline": HOTLINE, "rasa_timeout": 2.0,
        "max_message_bytes": MAX_MESSAGE_BYTES,
        "rate_limit_per_minute": 0, "rate_limit_address_per_minute": 0,  # off: fuzzing
        "rate_limit_search_per_minute": 0, "rate_limit_poll_per_minute": 0,
        "rate_limit_health_per_minute": 0, "websockets_per_address": 0,
        "zalo_app_id": ZALO_APP_ID, "zalo_oa_secret_key": ZALO_SECRET,
        "zalo_app_secret": "fuzz-app-secret", "zalo_access_token": "fuzz-token",
        "zalo_refresh_token": "fuzz-refresh", "zalo_api_base": dead, "zalo_oauth_base": dead,
        "catalog_refresh": 3600.0, "health_token": HEALTH_TOKEN,
    }
    return Settings(**{**fields, **overrides})


def make_database(directory: Path) -> str:
    url = f"sqlite:///{directory / 'catalog.sqlite3'}"
    with session_scope(url) as session:
        report = upsert_records(session, TEST_RECORDS, source="test")
    assert report.new == len(TEST_RECORDS), report.errors
    return url


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    gw = Gateway(fuzz_settings(make_database(tmp_path_factory.mktemp("hostile"))))
    yield gw
    gw.close()


@pytest.fixture(autouse=True)
def no_unhandled_errors(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """No request may make aiohttp or the gateway log an unhandled exception."""
    caplog.set_level(logging.ERROR)
    yield
    bad = [f"{r.name}: {r.getMessage()}\n{r.exc_text or ''}" for r in caplog.records
           if r.levelno >= logging.ERROR]
    assert not bad, "\n".join(bad)
    assert "Error handling request" not in caplog.text
    assert "Traceback" not in caplog.text


def assert_json_error(reply: Reply) -> str:
    """A 4xx/503 reply carries the JSON error envelope; return its machine code."""
    assert reply.headers.get("Content-Type", "").startswith("application/json"), reply
    body = reply.json()
    error = body["error"]
    assert isinstance(error["code"], str) and error["code"]
    assert isinstance(error["message"], str) and error["message"]
    assert b"Traceback" not in reply.body
    return error["code"]


# --------------------------------------------------------------------------- strategies

INJECTIONS = [
    "'; DROP TABLE procedures; --",
    "\" OR 1=1 --",
    "1' UNION SELECT code, name FROM procedures --",
    "%' OR '%'='",
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(document.cookie)>",
    "javascript:alert(1)",
    "{{7*7}}${7*7}<%= 7*7 %>",
    "../../../../etc/passwd",
    "\x00\x01\x02\x1b[31m\x7f",
    "\u202e\u200b\ufeff",
    "a\r\nSet-Cookie: x=1",
    "\ud800", "\udfff", "a\ud83d",  # lone surrogates
    "Lệ phí làm căn cước?",
    "Le\u0323\u0302 phi\u0301",  # decomposed Vietnamese
    "zalo-123",
    "",
    "   ",
]

hostile_text = st.one_of(
    st.sampled_from(INJECTIONS),
    st.text(),
    st.text(st.characters(categories=["Cc", "Cf", "Cs", "Zs", "Co"])),
    st.text(max_size=5).map(lambda s: s * 2000),  # long
)

json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), hostile_text,
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(hostile_text, children, max_size=4),
    max_leaves=12,
)


def dumps(value: Any, ascii_only: bool) -> bytes:
    """JSON bytes; non-ASCII output cannot carry lone surrogates, so escape them then."""
    try:
        return json.dumps(value, ensure_ascii=ascii_only).encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(value).encode("utf-8")


chat_objects = st.fixed_dictionaries(
    {"sender": st.one_of(st.text(min_size=1, max_size=20), json_values,
                         st.integers(MAX_SENDER_CHARS - 2, MAX_SENDER_CHARS + 2).map(
                             lambda n: "s" * n)),
     "text": st.one_of(hostile_text, json_values,
                       st.integers(MAX_MESSAGE_BYTES - 2, MAX_MESSAGE_BYTES + 2).map(
                           lambda n: "a" * n))},
    optional={"metadata": json_values, "extra": json_values},
)


def nested(depth: int, kind: str) -> bytes:
    if kind == "list":
        return b"[" * depth + b"]" * depth
    if kind == "object":
        return b'{"a":' * depth + b"1" + b"}" * depth
    return b'{"sender": "s", "text": "t", "metadata": ' + nested(depth, "object") + b"}"


deep_bodies = st.builds(nested, st.one_of(st.integers(1, 400), st.integers(5_000, 20_000)),
                        st.sampled_from(["list", "object", "metadata"]))

chat_bodies = st.one_of(
    st.binary(max_size=2000),
    st.builds(dumps, json_values, st.booleans()),
    st.builds(dumps, chat_objects, st.booleans()),
    deep_bodies,
    st.builds(lambda b: b"\xef\xbb\xbf" + b, st.builds(dumps, chat_objects, st.booleans())),
)

content_types = st.sampled_from([
    None, "application/json", "text/plain", "application/json; charset=latin-1",
    "multipart/form-data; boundary=xyz", "application/x-www-form-urlencoded",
])


def well_formed_chat(raw: bytes, limit: int) -> bool:
    """An independent reading of the chat contract: would this body reach Rasa?"""
    if len(raw) > limit:
        return False
    try:
        data = json.loads(raw.decode("utf-8-sig"))
    except (ValueError, RecursionError):
        return False
    if not isinstance(data, dict):
        return False
    sender, text, metadata = data.get("sender"), data.get("text"), data.get("metadata")
    if not isinstance(sender, str) or not isinstance(text, str):
        return False
    text = unicodedata.normalize("NFC", text).strip()
    try:
        size = len(text.encode("utf-8"))
        sender.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return (bool(sender.strip()) and len(sender) <= MAX_SENDER_CHARS
            and not sender.startswith("zalo-") and 0 < size <= MAX_MESSAGE_BYTES
            and (metadata is None or isinstance(metadata, dict)))


# --------------------------------------------------------------------------- chat API


@FUZZ
@given(raw=chat_bodies, content_type=content_types)
@example(raw=b"[" * 100_000 + b"]" * 100_000, content_type="application/json")
@example(raw=b'{"sender": "a", "text": "\\ud800"}', content_type="application/json")
@example(raw=b'{"sender": "\\udfff", "text": "x"}', content_type="application/json")
@example(raw=b'{"sender": "a", "text": "caf\xe9"}', content_type=None)
@example(raw=b'{"sender": "a", "text": "a\\u0000b"}', content_type="application/json")
@example(raw=json.dumps({"sender": "'; DROP TABLE procedures; --",
                         "text": "<script>alert(1)</script>"}).encode(),
         content_type="text/plain")
def test_chat_never_5xx(gateway: Gateway, raw: bytes, content_type: str | None) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    reply = gateway.request("POST", CHAT, data=raw, headers=headers)
    code = assert_json_error(reply)
    if well_formed_chat(raw, body_limit(gateway.settings)):
        assert (reply.status, code) == (503, "assistant_unavailable"), reply
        assert HOTLINE in reply.json()["messages"][0]["text"]
    else:
        assert 400 <= reply.status < 500, reply


@pytest.mark.parametrize("size", [2 * 1024 * 1024, 20 * 1024 * 1024])
def test_chat_huge_bodies_are_413(gateway: Gateway, size: int) -> None:
    """Far over the body limit, with and without Content-Length (chunked)."""
    pad = b"x" * size
    reply = gateway.request("POST", CHAT, data=b'{"sender": "a", "text": "' + pad + b'"}')
    assert (reply.status, assert_json_error(reply)) == (413, "too_large")
    # Fixed: the body is left unread, so the connection must not be kept alive (the next
    # request on it waited up to 10 s behind the junk).
    assert reply.headers.get("Connection", "").lower() == "close"
    assert gateway.request("GET", SEARCH, params={"q": "bo cau"}).status == 200

    async def chunks() -> Any:
        yield b'{"sender": "a", "text": "'
        for i in range(0, size, 65536):
            yield pad[i:i + 65536]
        yield b'"}'

    reply = gateway.request("POST", CHAT, data=chunks())
    assert (reply.status, assert_json_error(reply)) == (413, "too_large")


def test_database_intact_after_injections(gateway: Gateway) -> None:
    """Runs after the fuzzing above (file order): the catalog and /healthz still work."""
    for evil in INJECTIONS[:4]:
        gateway.request("POST", CHAT, json={"sender": evil, "text": evil})
        assert gateway.request("GET", SEARCH, params={"q": evil}).status in (200, 422)
    reply = gateway.request("GET", "/healthz",
                            headers={"Authorization": f"Bearer {HEALTH_TOKEN}"})
    database = reply.json()["checks"]["database"]
    assert database["ok"] is True, database
    with session_scope(gateway.settings.database_url) as s:
        count = s.execute(sql_text("SELECT count(*) FROM procedures")).scalar_one()
        codes = set(s.execute(sql_text(
            "SELECT code FROM procedures WHERE code LIKE 'TEST.%'")).scalars())
    assert count >= len(TEST_RECORDS) and codes == {r["code"] for r in TEST_RECORDS}


# --------------------------------------------------------------------------- search, fees

raw_url_junk = st.one_of(
    st.text().map(lambda s: quote(s.encode("utf-8", "surrogatepass"), safe="")),
    st.binary(max_size=60).map(lambda b: "".join(f"%{c:02X}" for c in b)),
    st.sampled_from(["%", "%zz", "%ff%fe", "%00", "%ed%a0%80", "..%2f..%2f", "%2e%2e",
                     ";", "a%3Bb", "+", "&&&", "=", "q=", "%u0041", "%C0%AF"]),
    st.integers(1, 5000).map(lambda n: "a" * n),
)
limits = st.one_of(st.none(), st.text(max_size=8), st.integers(-5, 30).map(str),
                   st.sampled_from(["5.0", "1e3", " 5", "٥", "0x5", "99999999999999999"]))


@FUZZ
@given(q=raw_url_junk, limit=limits, extra=raw_url_junk)
@example(q="%ff%fe", limit=None, extra="")
@example(q="%ed%a0%80", limit="5", extra="")  # an encoded lone surrogate
@example(q="a" * 5000, limit="1", extra="")
def test_search_never_5xx(gateway: Gateway, q: str, limit: str | None, extra: str) -> None:
    query = f"q={q}&{extra}={extra}" + (f"&limit={quote(limit, safe='')}" if limit else "")
    assume(len(query) < 7000)  # aiohttp refuses request lines over 8190 bytes itself
    reply = gateway.request("GET", gateway.url(f"{SEARCH}?{query}"))
    assert reply.status in (200, 422), reply
    if reply.status == 200:
        assert isinstance(reply.json()["results"], list)
    else:
        assert_json_error(reply)


@FUZZ
@given(code=raw_url_junk, key=st.sampled_from(["channel", "date", "province", "situation",
                                               "x"]), value=raw_url_junk)
@example(code="TEST.0001", key="date", value="9999-99-99")
@example(code="%00", key="province", value="%ff")
@example(code="TEST.0001", key="situation", value="%2C%2C%2C")
def test_fees_never_5xx(gateway: Gateway, code: str, key: str, value: str) -> None:
    if not code:
        code = "x"
    # aiohttp refuses request lines over 8190 bytes itself (README "Hostile input"); failed
    # a fresh-clone CI run with 3,158 + 5,000 characters
    assume(len(code) + len(value) < 7000)
    reply = gateway.request("GET", gateway.url(f"/api/v1/procedures/{code}/fees?{key}={value}"))
    assert reply.status in (200, 400, 404, 422), reply
    if reply.status != 200:
        assert_json_error(reply)


# --------------------------------------------------------------------------- WebSocket

text_frames = st.one_of(
    hostile_text,
    st.builds(lambda v, a: dumps(v, a).decode("utf-8"), json_values, st.booleans()),
    st.builds(
        lambda d, a: dumps({"type": "message", **d}, a).decode("utf-8"),
        st.fixed_dictionaries({}, optional={"text": json_values | hostile_text,
                                            "id": json_values, "type": json_values}),
        st.booleans()),
)
ws_frames = st.one_of(
    text_frames.map(lambda s: ("text", s)),
    st.binary(max_size=200).map(lambda b: ("binary", b)),
    st.binary(max_size=50).map(lambda b: ("raw_text", b"\xff" + b)),  # never UTF-8
)


async def _receive_until_answer(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any] | None:
    """The answer to one text frame: an error or reply frame (skipping typing), or None
    when the server closed the socket."""
    while True:
        msg = await ws.receive(timeout=REPLY_SECONDS)
        if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.CLOSING):
            return None
        assert msg.type == WSMsgType.TEXT, msg
        frame = json.loads(msg.data)
        if frame.get("type") != "typing":
            return frame


async def _ws_session(gateway: Gateway, frames: list[tuple[str, Any]]) -> list[Any]:
    answers: list[Any] = []
    async with gateway.http.ws_connect(f"{gateway.base}{WS}?session={SESSION}") as ws:
        for kind, data in frames:
            if kind == "binary":
                await ws.send_bytes(data)
                continue  # binary frames are ignored by the server
            if isinstance(data, str):  # lone surrogates make a text frame that is not UTF-8
                data = data.encode("utf-8", "surrogatepass")
            # the raw writer: aiohttp's send_str refuses what a hostile client may send
            await ws._writer.send(data, binary=False)
            answer = await _receive_until_answer(ws)
            answers.append(answer)
            if answer is None:
                assert ws.close_code in (1007, 1009), ws.close_code
                return answers
            assert answer["type"] in ("error", "reply"), answer
            if answer["type"] == "error":
                assert isinstance(answer["code"], str) and answer["message"]
        # the socket is still usable: a good message gets the apology (Rasa is down)
        await ws.send_json({"type": "message", "id": "ok", "text": "xin chào"})
        answer = await _receive_until_answer(ws)
        assert answer is not None and answer["code"] == "assistant_unavailable", answer
        assert answer["reply_to"] == "ok"
    return answers


@FUZZ
@given(frames=st.lists(ws_frames, min_size=1, max_size=4))
@example(frames=[("text", '{"type": "message", "text": "a\\ud800", "id": ["x"]}')])
@example(frames=[("text", "[" * 10_000 + "]" * 10_000)])
@example(frames=[("raw_text", b"\xff\xfe{}"), ("text", "{}")])
@example(frames=[("text", '{"type": "message", "text": "' + "x" * 100_000 + '"}')])
@example(frames=[("binary", b"\x00" * 100), ("text", "null")])
def test_websocket_never_crashes(gateway: Gateway, frames: list[tuple[str, Any]]) -> None:
    gateway.run(_ws_session(gateway, frames), timeout=60)
    # and the server takes the next connection
    gateway.run(_ws_session(gateway, []), timeout=30)


# --------------------------------------------------------------------------- Zalo webhook


def sign(body: bytes, timestamp: str) -> str:
    return "mac=" + expected_mac(ZALO_APP_ID, body, timestamp, ZALO_SECRET)


zalo_events = st.fixed_dictionaries(
    {"event_name": st.one_of(st.sampled_from(
        ["user_send_text", "user_send_image", "follow", "unfollow", "oa_send_text",
         "user_send_business_card", "user_seen_message"]), json_values),
     "sender": st.one_of(st.fixed_dictionaries({"id": json_values}), json_values),
     "message": st.one_of(st.fixed_dictionaries(
         {"msg_id": json_values, "text": hostile_text}), json_values)},
    optional={"follower": json_values, "app_id": json_values,
              "recipient": json_values, "user_id_by_app": json_values},
)


@FUZZ
@given(event=zalo_events, ascii_only=st.booleans())
@example(event={"event_name": "user_send_text", "sender": {"id": "u" * 5000},
                "message": {"msg_id": "m" * 5000, "text": "'; DROP TABLE zalo_inbox; --"}},
         ascii_only=True)
@example(event={"event_name": "user_send_text", "sender": {"id": "u1"},  # > 64 KiB: 413,
                "message": {"msg_id": "m1", "text": "x" * 70_000}},  # then the connection
         ascii_only=True)  # must not be reused (fixed in bot/channels/zalo/channel.py)
@example(event={"event_name": "follow", "follower": {"id": 10**40}, "sender": None,
                "message": None}, ascii_only=False)
@example(event={"event_name": "\ud800", "sender": {"id": None}, "message": None},
         ascii_only=False)  # a lone surrogate echoed back: was a 500 (bot.gateway.errors.dumps)
def test_zalo_signed_events_of_any_shape_are_200(gateway: Gateway, event: dict[str, Any],
                                                 ascii_only: bool) -> None:
    ts = str(int(time.time() * 1000))
    body = dumps({**event, "timestamp": ts}, ascii_only)
    reply = gateway.request("POST", ZALO, data=body,
                            headers={SIGNATURE_HEADER: sign(body, ts),
                                     "Content-Type": "application/json"})
    if len(body) > 64 * 1024:
        assert (reply.status, assert_json_error(reply)) == (413, "too_large")
        return
    assert reply.status == 200, reply
    assert reply.json()["ok"] is True


@FUZZ
@given(raw=st.one_of(st.binary(max_size=3000), chat_bodies,
                     st.builds(dumps, zalo_events, st.booleans())),
       header=st.one_of(st.none(), st.text(st.characters(min_codepoint=32, max_codepoint=126)),
                        st.sampled_from(INJECTIONS[:10]).map(lambda s: "mac=" + s.strip()),
                        st.just("signed-wrong-ts"), st.just("signed-stale")))
@example(raw=b'{"timestamp": "1"}', header="mac=" + "0" * 64)
@example(raw=b"[" * 50_000, header="mac=" + "f" * 64)
@example(raw=b"", header="mac=\x00\x01\x02\x1b[31m\x7f")  # failed CI: aiohttp's own 400
def test_zalo_unsigned_or_badly_signed_is_4xx(gateway: Gateway, raw: bytes,
                                              header: str | None) -> None:
    if header == "signed-wrong-ts":  # a valid mac, but over a timestamp not in the body
        header = sign(raw, str(int(time.time() * 1000)))
    elif header == "signed-stale":  # correctly signed, an hour old
        ts = str(int(time.time() * 1000) - 3_600_000)
        raw = dumps({"event_name": "user_send_text", "timestamp": ts}, True)
        header = sign(raw, ts)
    headers = {} if header is None else {SIGNATURE_HEADER: header}
    try:
        reply = gateway.request("POST", ZALO, data=raw, headers=headers)
    except ValueError:  # aiohttp refuses to send some header values itself
        return
    if header is not None and not header.isprintable():
        # Control characters in a header value never reach our code: aiohttp's own parser
        # answers a plain-text 400 (README "Hostile input"); a refusal all the same.
        assert reply.status in (400, 401, 413), reply
        return
    assert reply.status in (401, 413), reply
    assert assert_json_error(reply) in ("bad_signature", "too_large")


def test_zalo_huge_body_is_413(gateway: Gateway) -> None:
    """Fixed: the 413 kept the connection alive with the body unread, so the next request
    on it (aiohttp's client reuses connections) stalled behind the junk for 10 s."""
    for _ in range(3):
        reply = gateway.request("POST", ZALO, data=b"{" + b" " * 2 * 1024 * 1024 + b"}")
        assert (reply.status, assert_json_error(reply)) == (413, "too_large")
        assert reply.headers.get("Connection", "").lower() == "close"
        assert gateway.request("GET", SEARCH, params={"q": "bo cau"}).status == 200


async def _in_pieces(body: bytes, size: int = 1000) -> AsyncIterator[bytes]:
    """A chunked upload that arrives in many small network writes."""
    for start in range(0, len(body), size):
        yield body[start:start + size]
        await asyncio.sleep(0.001)


def test_bodies_arriving_in_pieces_are_read_whole(gateway: Gateway) -> None:
    """Failed CI (flaky): the Zalo webhook, feedback and hand-over cancel read their bodies
    with `content.read(n)`, which returns only what is buffered — a valid signed event that
    arrived in several TCP segments was refused as badly signed, a JSON body cut short."""
    ts = str(int(time.time() * 1000))
    event = {"event_name": "user_send_text", "sender": {"id": "pieces-user"},
             "message": {"msg_id": "pieces-1", "text": "x" * 60_000}, "timestamp": ts}
    body = json.dumps(event).encode()
    reply = gateway.request("POST", ZALO, data=_in_pieces(body),
                            headers={SIGNATURE_HEADER: sign(body, ts)})
    assert reply.status == 200, reply
    assert reply.json()["ok"] is True
    too_big = json.dumps({**event, "message": {"text": "x" * 70_000}}).encode()
    reply = gateway.request("POST", ZALO, data=_in_pieces(too_big),
                            headers={SIGNATURE_HEADER: sign(too_big, ts)})
    assert (reply.status, assert_json_error(reply)) == (413, "too_large")
    # feedback: the whole JSON is parsed (cut short it was a 400 invalid_json)
    feedback = json.dumps({"session": SESSION, "message_id": "message-0001", "rating": "down",
                           "text": "chưa đúng " * 100}).encode()
    reply = gateway.request("POST", "/api/v1/feedback", data=_in_pieces(feedback, 50))
    assert reply.status == 200, reply
    reply = gateway.request("POST", "/api/v1/handover/cancel",
                            data=_in_pieces(json.dumps({"session": SESSION}).encode(), 5))
    assert reply.status == 200, reply


# --------------------------------------------------------------------------- rate limits


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    database = make_database(tmp_path_factory.mktemp("limited"))
    gw = Gateway(fuzz_settings(database, rate_limit_per_minute=3,
                               rate_limit_address_per_minute=7))
    yield gw
    gw.close()


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(senders=st.lists(st.sampled_from(["alice-1", "bob-22", "carol-333", "dave-4444"]),
                        min_size=1, max_size=14),
       channel=st.sampled_from(["rest", "ws"]))
@example(senders=["alice-1"] * 4, channel="rest")  # the session limit
@example(senders=["alice-1", "bob-22", "carol-333", "dave-4444"] * 2, channel="rest")  # address
def test_rate_limits_per_sender_and_per_address(limited: Gateway, senders: list[str],
                                                channel: str) -> None:
    """Against a model of the two sliding windows (3 per sender, 7 per address)."""
    limits = limited.app[LIMITS_KEY]

    async def reset() -> None:  # a fresh minute for each example
        limits.session._events.clear()
        limits.address._events.clear()

    limited.run(reset())
    per_sender: dict[str, int] = {}
    address = 0
    for sender in senders:
        # the model: the address window counts first, then the sender's
        allowed = address < 7 and per_sender.get(sender, 0) < 3
        if address < 7:
            address += 1
            if per_sender.get(sender, 0) < 3:
                per_sender[sender] = per_sender.get(sender, 0) + 1
        if channel == "rest":
            reply = limited.request("POST", CHAT, json={"sender": sender, "text": "xin chào"})
            code = assert_json_error(reply)
            if allowed:
                assert (reply.status, code) == (503, "assistant_unavailable")
            else:
                assert (reply.status, code) == (429, "rate_limited"), reply
                assert int(reply.headers["Retry-After"]) > 0
        else:
            answer = limited.run(_ws_one(limited, sender + "-session", "xin chào"))
            assert answer["code"] == ("assistant_unavailable" if allowed else "rate_limited")


async def _ws_one(gateway: Gateway, session: str, text: str) -> dict[str, Any]:
    async with gateway.http.ws_connect(f"{gateway.base}{WS}?session={session}") as ws:
        await ws.send_json({"type": "message", "text": text})
        answer = await _receive_until_answer(ws)
    assert answer is not None
    return answer

"""Scaling out, the parts: replica settings, routing by conversation with failover against
real HTTP peers on loopback, the endpoints each replica gets, and the Redis lock store's
degraded mode against this machine's Redis (REDIS_URL; the test fails without it)."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import yaml
from aiohttp import web

from bot.config import Settings
from bot.gateway.rasa_client import (
    MESSAGE_ID_KEY,
    RasaClient,
    RasaUnavailable,
    answer_in_tracker,
    replica_order,
)
from bot.stack import REDIS_PASSWORD_ENV, Stack, lock_store_config
from tests.conftest import free_port

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
RASA_TOKEN = "rasa-api-token"  # the fake replicas' --auth-token


# --------------------------------------------------------------------------- settings


def test_replicas_get_consecutive_ports_and_need_redis() -> None:
    s = Settings.from_env({"RASA_PORT": "6000", "ACTIONS_PORT": "6100", "RASA_REPLICAS": "3",
                           "ACTIONS_REPLICAS": "2", "REDIS_URL": "redis://r:6379/2"})
    assert s.rasa_urls == ("http://127.0.0.1:6000", "http://127.0.0.1:6001",
                           "http://127.0.0.1:6002")
    assert s.actions_urls == ("http://127.0.0.1:6100", "http://127.0.0.1:6101")
    with pytest.raises(SystemExit, match="REDIS_URL"):
        Settings.from_env({"RASA_REPLICAS": "2"})
    with pytest.raises(SystemExit, match="between 1 and 32"):
        Settings.from_env({"ACTIONS_REPLICAS": "0"})
    explicit = Settings.from_env({"RASA_URLS": "http://a:5005/, http://b:5005",
                                  "RASA_REPLICAS": "2", "REDIS_URL": "redis://r"})
    assert explicit.rasa_urls == ("http://a:5005", "http://b:5005")
    single = Settings.from_env({"RASA_URL": "http://rasa:5005"})
    assert single.rasa_urls == ("http://rasa:5005",) and single.redis_url == ""


def test_every_replica_gets_its_endpoints(tmp_path: Path) -> None:
    s = Settings.from_env({"RASA_PORT": "6000", "ACTIONS_PORT": "6100", "RASA_REPLICAS": "3",
                           "ACTIONS_REPLICAS": "2", "DATABASE_URL": f"sqlite:///{tmp_path}/x.db",
                           "REDIS_URL": "redis://:s3cret@127.0.0.1:6380/3"})
    st = Stack(s, tmp_path / "model.tar.gz", log_dir=tmp_path)
    try:
        plan = st.plan()
        written = list(st.endpoints_files)
        assert len(written) == 3
        assert list(plan) == ["actions", "actions-2", "rasa", "rasa-2", "rasa-3", "gateway"]
        assert [p.health_url for n, p in plan.items() if n.startswith("actions")] == [
            "http://127.0.0.1:6100/health", "http://127.0.0.1:6101/health"]
        actions_of = []
        for name in ("rasa", "rasa-2", "rasa-3"):
            svc = plan[name]
            assert svc.cmd[1:4] == ["-m", "bot.rasa_runtime", "run"]  # every replica patched
            endpoints = Path(svc.cmd[svc.cmd.index("--endpoints") + 1])
            text = endpoints.read_text(encoding="utf-8")
            assert "s3cret" not in text  # the password travels in the environment
            conf = yaml.safe_load(text)
            assert conf["lock_store"] == {
                "type": "bot.lock_store.FallbackRedisLockStore", "url": "127.0.0.1",
                "port": 6380, "db": 3, "key_prefix": "dvc",
                "password": "${" + REDIS_PASSWORD_ENV + "}"}
            assert svc.env[REDIS_PASSWORD_ENV] == "s3cret"
            assert svc.env["TICKET_LOCK_LIFETIME"] == "20"
            assert conf["tracker_store"]["type"] == "SQL"
            actions_of.append(conf["action_endpoint"]["url"])
        assert actions_of == ["http://127.0.0.1:6100/webhook", "http://127.0.0.1:6101/webhook",
                              "http://127.0.0.1:6100/webhook"]
    finally:
        st.stop()
    assert not any(p.exists() for p in written)  # removed with the stack


def test_lock_store_config_without_redis_keeps_in_memory() -> None:
    assert lock_store_config("") == (None, {})
    conf, env = lock_store_config("rediss://user:pw@cache.example:6390/1")
    assert conf is not None and conf["use_ssl"] is True and conf["username"] == "user"
    assert (conf["url"], conf["port"], conf["db"]) == ("cache.example", 6390, 1)
    assert env == {REDIS_PASSWORD_ENV: "pw"}


# --------------------------------------------------------------------------- hashing


def test_conversations_spread_and_only_a_lost_replicas_move() -> None:
    urls = ["http://r1", "http://r2", "http://r3"]
    senders = [f"sender-{i}" for i in range(3000)]
    first = {s: replica_order(s, urls)[0] for s in senders}
    counts = Counter(first.values())
    assert all(800 < counts[u] < 1200 for u in urls), counts
    assert all(replica_order(s, urls)[0] == first[s] for s in senders[:50])  # stable
    without = [u for u in urls if u != "http://r2"]
    for s in senders:
        now = replica_order(s, without)[0]
        if first[s] != "http://r2":
            assert now == first[s]  # untouched by the loss of another replica
        else:
            assert now == replica_order(s, urls)[1]  # its next replica in hash order


def test_answer_in_tracker_finds_the_turn_of_one_message() -> None:
    events = [
        {"event": "user", "text": "a", "metadata": {MESSAGE_ID_KEY: "m1"}},
        {"event": "bot", "text": "trả lời 1", "data": {"buttons": None}},
        {"event": "user", "text": "b", "metadata": {MESSAGE_ID_KEY: "m2"}},
        {"event": "action", "name": "action_x"},
        {"event": "bot", "text": "trả lời 2a", "data": {}},
        {"event": "bot", "text": "", "data": {"buttons": [{"title": "T", "payload": "/p"}]}},
        {"event": "user", "text": "c", "metadata": {MESSAGE_ID_KEY: "m3"}},
    ]
    tracker = {"events": events}
    assert answer_in_tracker(tracker, "m1") == [{"text": "trả lời 1", "buttons": []}]
    assert [m["text"] for m in answer_in_tracker(tracker, "m2")] == ["trả lời 2a", ""]
    assert answer_in_tracker(tracker, "m3") == []  # taken, not answered (yet)
    assert answer_in_tracker(tracker, "nope") is None
    assert answer_in_tracker({"events": "junk"}, "m1") is None


# --------------------------------------------------------------------------- failover


class FakeRasa:
    """A Rasa REST channel peer on loopback: answers, drops the connection after taking a
    message (`drop`), answers late (`delay`), and serves a tracker (`stored_from`: the
    tracker holds the last message that peer took, answered "đã trả lời") only to a caller
    with its API token, as Rasa run with `--auth-token` does (the webhook needs none)."""

    def __init__(self, name: str) -> None:
        self.name, self.drop, self.delay = name, False, 0.0
        self.posts: list[dict] = []
        self.stored_from: FakeRasa | None = None
        self.token = RASA_TOKEN
        self.runner: web.AppRunner | None = None
        self.port = free_port()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def webhook(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.posts.append(body)
        if self.drop:  # took the message, then died before answering
            assert request.transport is not None
            request.transport.close()
            await asyncio.sleep(0.5)
        await asyncio.sleep(self.delay)
        return web.json_response([{"recipient_id": body["sender"], "text": self.name}])

    async def tracker(self, request: web.Request) -> web.Response:
        if request.query.get("token") != self.token:
            return web.json_response({"reason": "NotAuthenticated"}, status=401)
        events: list[dict] = []
        if self.stored_from is not None and self.stored_from.posts:
            mid = self.stored_from.posts[-1]["metadata"][MESSAGE_ID_KEY]
            events = [{"event": "user", "text": "x", "metadata": {MESSAGE_ID_KEY: mid}},
                      {"event": "bot", "text": "đã trả lời", "data": {}}]
        return web.json_response({"events": events})

    async def root(self, request: web.Request) -> web.Response:
        return web.Response(text="Hello from Rasa: 3.6.21")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/webhooks/rest/webhook", self.webhook)
        app.router.add_get("/conversations/{sender}/tracker", self.tracker)
        app.router.add_get("/", self.root)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


async def _peers() -> AsyncIterator[tuple[FakeRasa, FakeRasa]]:
    a, b = FakeRasa("A"), FakeRasa("B")
    await a.start()
    await b.start()
    try:
        yield a, b
    finally:
        await a.stop()
        await b.stop()


def _senders_for(first: str, urls: list[str]) -> list[str]:
    return [s for s in (f"c{i}" for i in range(200)) if replica_order(s, urls)[0] == first]


async def test_a_conversation_stays_on_its_replica_and_fails_over() -> None:
    async for a, b in _peers():
        async with aiohttp.ClientSession() as session:
            client = RasaClient(session, [a.url, b.url], "http://127.0.0.1:1")
            sender = _senders_for(a.url, [a.url, b.url])[0]
            for _ in range(3):
                assert [m["text"] for m in await client.send(sender, "chào", {})] == ["A"]
            assert len(a.posts) == 3 and not b.posts
            ids = {p["metadata"][MESSAGE_ID_KEY] for p in a.posts}
            assert len(ids) == 3  # every message can be found again in a tracker

            await a.stop()  # replica A is gone: refused connections, nothing delivered
            assert [m["text"] for m in await client.send(sender, "chào", {})] == ["B"]
            assert client.replicas_for(sender)[0] == b.url  # skipped while marked down
            assert len(b.posts) == 1


async def test_a_replica_dying_after_answering_is_not_answered_twice() -> None:
    async for a, b in _peers():
        async with aiohttp.ClientSession() as session:
            client = RasaClient(session, [a.url, b.url], "http://127.0.0.1:1",
                                token=RASA_TOKEN)
            first, second = _senders_for(a.url, [a.url, b.url])[:2]
            a.drop = True
            # A stored the turn before it died: the shared tracker (read via B) has it.
            b.stored_from = a
            answer = await client.send(first, "thủ tục khai sinh", {})
            assert [m["text"] for m in answer] == ["đã trả lời"]
            assert not b.posts  # not sent a second time

            # A died before storing anything: the message goes to B.
            b.stored_from = None
            client._down_until.clear()
            assert [m["text"] for m in await client.send(second, "chào", {})] == ["B"]
            assert len(b.posts) == 1


async def test_a_timeout_is_not_failed_over() -> None:
    """A slow replica may still answer: a second one would answer the message again."""
    async for a, b in _peers():
        a.delay = 2.0
        timeout = aiohttp.ClientTimeout(total=0.5)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            client = RasaClient(session, [a.url, b.url], "http://127.0.0.1:1")
            with pytest.raises(RasaUnavailable, match="TimeoutError"):
                await client.send(_senders_for(a.url, [a.url, b.url])[0], "chào", {})
            assert not b.posts


async def test_health_is_ok_while_one_replica_answers() -> None:
    async for a, _b in _peers():
        dead = f"http://127.0.0.1:{free_port()}"
        async with aiohttp.ClientSession() as session:
            ok, detail = await RasaClient(session, [a.url, dead], dead).check_rasa()
            assert ok and detail.startswith("1/2 replicas up") and dead in detail
            assert (await RasaClient(session, [dead], dead).check_rasa())[0] is False
            ok, detail = await RasaClient(session, a.url, [dead, dead]).check_actions()
            assert not ok and detail.startswith("0/2 action servers up")


# --------------------------------------------------------------------------- lock store


def _redis_lock_store(url: str):  # noqa: ANN202 - Rasa's types
    from rasa.utils.endpoints import EndpointConfig

    from bot.lock_store import FallbackRedisLockStore
    from bot.stack import lock_store_config

    conf, _ = lock_store_config(url)
    assert conf is not None
    conf.pop("type")
    host = conf.pop("url")
    return FallbackRedisLockStore(EndpointConfig(url=host, **conf))


def test_redis_lock_store_shares_locks_and_degrades_without_redis(caplog) -> None:  # noqa: ANN001
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.exceptions.RedisError as exc:
        pytest.fail(f"Redis is required at {REDIS_URL} (.ci/services starts it): {exc}")
    one, two = _redis_lock_store(REDIS_URL), _redis_lock_store(REDIS_URL)
    conversation = f"conv-{os.getpid()}"
    ticket = one.issue_ticket(conversation)
    lock = two.get_lock(conversation)  # another replica sees the same lock
    assert lock is not None and lock.is_locked(ticket + 1)
    one.cleanup(conversation, ticket)
    assert not one.degraded and not two.degraded

    with socket.socket() as s:  # a port where nothing listens: Redis is "down"
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
    down = _redis_lock_store(f"redis://127.0.0.1:{dead_port}/0")
    caplog.set_level("ERROR", logger="bot.lock_store")

    async def turn() -> bool:
        async with down.lock(conversation, lock_lifetime=5, wait_time_in_seconds=0.05) as lk:
            return lk.is_locked(lk.last_issued + 1)

    assert asyncio.run(turn()) is True  # in-process locks: the message is still served
    assert down.degraded
    assert asyncio.run(turn()) is True
    assert sum("degraded mode" in r.getMessage() for r in caplog.records) == 1  # once


def test_a_conversation_locked_by_a_dead_replica_is_freed_after_its_lifetime() -> None:
    """Replica A took a conversation's lock and died; replica B waits behind it. In Rasa's
    own loop B's ticket expired with A's and B waited until its client gave up."""
    a, b = _redis_lock_store(REDIS_URL), _redis_lock_store(REDIS_URL)
    conversation = f"dead-holder-{os.getpid()}"
    a.delete_lock(conversation)
    a.issue_ticket(conversation, 1.0)  # A holds the lock, then dies (never cleans up)

    async def wait_behind() -> float:
        started = time.monotonic()
        async with b.lock(conversation, lock_lifetime=1.0, wait_time_in_seconds=0.1):
            return time.monotonic() - started

    waited = asyncio.run(asyncio.wait_for(wait_behind(), 10))
    assert 0.8 < waited < 3.0
    assert b.get_lock(conversation) is None or not b.get_lock(conversation).tickets

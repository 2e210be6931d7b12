"""The scaled-out profile, running: PostgreSQL (catalog, gateway tables, Rasa's tracker
store), a Redis lock store, two Rasa replicas and two action servers behind the gateway.

Real parts only: the machine's PostgreSQL (DATABASE_ADMIN_URL; one throw-away database),
a Redis server of this module's own (so it can be stopped without disturbing anything
else; `redis-server` must be installed, .ci/services installs it), real Rasa replicas and
action servers started by bot.stack. Each test FAILS, never skips, when PostgreSQL or
redis-server is missing.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from bot.bench.scale import PrivateRedis, consecutive_ports
from bot.config import Settings
from bot.gateway.rasa_client import replica_order
from bot.stack import Stack
from tests.conftest import free_port, throwaway_postgres

HEALTH_TOKEN = "scale-out-health-token"  # /healthz's details (README "Security checks")


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    from bot.catalog.db import session_scope
    from bot.catalog.seed import load_seed

    with throwaway_postgres("dvc_scale") as url:
        with session_scope(url) as s:
            load_seed(s)
        yield url


@pytest.fixture(scope="module")
def redis_server() -> Iterator[PrivateRedis]:
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is required (.ci/services installs it)")
    server = PrivateRedis()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def stack(trained, pg_url: str, redis_server: PrivateRedis,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    _, trained_model = trained
    # Its own models folder: the rollout test adds a model, which no other module may see.
    models = tmp_path_factory.mktemp("scale-models")
    model = models / trained_model.name
    shutil.copyfile(trained_model, model)
    settings = Settings.from_env({
        "DATABASE_URL": pg_url, "REDIS_URL": redis_server.url,
        "RASA_REPLICAS": "2", "ACTIONS_REPLICAS": "2",
        "RASA_PORT": str(consecutive_ports(2)), "ACTIONS_PORT": str(consecutive_ports(2)),
        "BOT_PORT": str(free_port()), "MODELS_DIR": str(models),
        "RATE_LIMIT_PER_MINUTE": "0", "RATE_LIMIT_ADDRESS_PER_MINUTE": "0",
        "HEALTH_TOKEN": HEALTH_TOKEN,  # chat_health reads the checks' details
    })
    st = Stack(settings, model, log_dir=trained_model.parent / "logs-scale")
    st.start(timeout=300)
    try:
        yield st
    finally:
        st.stop()


def chat(st: Stack, sender: str, message: str) -> tuple[int, dict[str, Any]]:
    url = f"http://{st.settings.bot_host}:{st.settings.bot_port}/api/v1/chat"
    req = urllib.request.Request(url, data=json.dumps({"sender": sender, "text": message})
                                 .encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def turns(pg_url: str, sender: str) -> list[int]:
    """For each user message of `sender` in Rasa's tracker store (PostgreSQL), how many bot
    turns followed it (a turn ends with `action_listen`): 1 each when nothing was lost or
    answered twice."""
    engine = create_engine(pg_url, future=True)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text(
                "SELECT type_name, action_name FROM events WHERE sender_id = :s "
                "ORDER BY timestamp, id"), {"s": sender}).all()
    finally:
        engine.dispose()
    counts: list[int] = []
    for kind, action in rows:
        if kind == "user":
            counts.append(0)
        elif kind == "action" and action == "action_listen" and counts:
            counts[-1] += 1
    return counts


def senders_on(st: Stack, replica: int, n: int, prefix: str) -> list[str]:
    urls = list(st.settings.rasa_urls)
    picked = [s for s in (f"{prefix}-{i}" for i in range(500))
              if replica_order(s, urls)[0] == urls[replica]]
    return picked[:n]


QUESTIONS = ("chào bạn", "đăng ký khai sinh cần giấy tờ gì", "lệ phí bao nhiêu")


def test_conversations_spread_over_replicas_one_turn_per_message(stack: Stack,
                                                                 pg_url: str) -> None:
    senders = senders_on(stack, 0, 4, "spread") + senders_on(stack, 1, 4, "spread")

    def converse(sender: str) -> list[int]:
        return [chat(stack, sender, q)[0] for q in QUESTIONS]

    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(converse, senders))
    assert all(s == [200, 200, 200] for s in statuses), statuses
    for sender in senders:
        assert turns(pg_url, sender) == [1, 1, 1], sender


def test_a_killed_replica_moves_its_conversations(stack: Stack, pg_url: str) -> None:
    moving = senders_on(stack, 1, 3, "moving")
    for sender in moving:  # started on replica 2
        assert chat(stack, sender, QUESTIONS[0])[0] == 200
    stack.kill("rasa-2")
    try:
        for sender in moving:
            status, body = chat(stack, sender, QUESTIONS[1])
            assert status == 200, body
            assert "Hồ sơ" in " ".join(m["text"] for m in body["messages"])
        _, health = chat_health(stack)
        assert health["checks"]["rasa"]["ok"] and "1/2 replicas up" in \
            health["checks"]["rasa"]["detail"]
    finally:
        stack.restart("rasa-2", timeout=300)
    for sender in moving:  # back on their replica, nothing lost or repeated
        assert chat(stack, sender, QUESTIONS[2])[0] == 200
        assert turns(pg_url, sender) == [1, 1, 1], sender


def test_without_action_servers_the_citizen_gets_an_apology(stack: Stack) -> None:
    sender = f"noactions-{uuid.uuid4().hex[:6]}"
    for name in ("actions", "actions-2"):
        stack.kill(name)
    try:
        status, body = chat(stack, sender, QUESTIONS[1])
        joined = " ".join(m["text"] for m in body["messages"])
        assert "Xin lỗi" in joined, (status, body)
    finally:
        for name in ("actions", "actions-2"):
            stack.restart(name)
    status, body = chat(stack, sender, QUESTIONS[1])
    assert status == 200 and "Hồ sơ" in " ".join(m["text"] for m in body["messages"])


def test_a_crashed_replica_and_action_server_come_back_under_load(stack: Stack,
                                                                   pg_url: str) -> None:
    """What `bot run` does (Stack.supervise) when one Rasa replica and one action server are
    SIGKILLed under load: no message fails (the gateway moves conversations to the other
    replica, a replica whose action server is down uses the other one), and the supervisor
    starts both again (issue 18, item 2)."""
    old = {name: stack.procs[name].pid for name in ("rasa-2", "actions-2")}
    senders = senders_on(stack, 0, 2, "crash") + senders_on(stack, 1, 3, "crash")
    done = threading.Event()
    said: list[tuple[int, str]] = []

    def converse(sender: str) -> list[tuple[int, str]]:
        out = []
        while not done.is_set():
            status, body = chat(stack, sender, QUESTIONS[1])
            out.append((status, " ".join(m["text"] for m in body.get("messages", []))))
            time.sleep(0.3)
        return out

    def back(name: str) -> bool:
        proc = stack.procs[name]
        return proc.pid != old[name] and proc.poll() is None and _answers(
            stack.services[name].health_url)

    def crash_under_load() -> None:
        try:
            with ThreadPoolExecutor(len(senders)) as pool:
                talks = [pool.submit(converse, s) for s in senders]
                time.sleep(2)
                stack.kill("actions-2")
                stack.kill("rasa-2")
                deadline = time.monotonic() + 300
                while not (back("rasa-2") and back("actions-2")) \
                        and time.monotonic() < deadline:
                    time.sleep(1)
                time.sleep(2)  # a little load on the restarted replica too
                done.set()
                said.extend(turn for talk in talks for turn in talk.result())
        finally:
            done.set()
            stack.stopping.set()

    # The supervisor runs on this (the main) thread, as in `bot run`: a child dies with the
    # thread that started it (PR_SET_PDEATHSIG), so restarts must come from a lasting one.
    threading.Thread(target=crash_under_load, daemon=True).start()
    try:
        assert stack.supervise() == 0
    finally:
        stack.stopping.clear()
    assert back("rasa-2") and back("actions-2"), stack.log_tail("rasa-2")
    failed = [t for t in said if t[0] != 200 or "Hồ sơ" not in t[1]]
    assert len(said) > 20 and not failed, (len(said), failed[:3])
    _, health = chat_health(stack)
    assert "2/2 replicas up" in health["checks"]["rasa"]["detail"], health


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False


def test_an_activation_reaches_every_replica(stack: Stack) -> None:
    """The model registry rolls a model out to every replica (RASA_URLS defaults to the
    local replicas), and a replica restarted later comes back on the active model."""
    from bot.registry.activation import activate, server_status
    from bot.registry.registry import SUFFIX, sync

    new = stack.model.with_name(stack.model.name[: -len(SUFFIX)] + "-rollout" + SUFFIX)
    shutil.copyfile(stack.model, new)
    sync(stack.settings)
    result = activate(new.name, stack.settings, by="test", force=True)
    assert sorted(r.url for r in result.servers if r.outcome == "swapped") == sorted(
        stack.settings.rasa_urls)
    token = stack.settings.rasa_token  # made by the stack: Rasa's API needs it
    for url in stack.settings.rasa_urls:
        assert (server_status(url, token=token) or {}).get("model_file") == new.name
    stack.restart("rasa-2", timeout=300)
    assert (server_status(stack.settings.rasa_urls[1], token=token) or {}).get(
        "model_file") == new.name
    status, body = chat(stack, f"rollout-{uuid.uuid4().hex[:6]}", QUESTIONS[1])
    assert status == 200 and "Hồ sơ" in " ".join(m["text"] for m in body["messages"])


def test_redis_down_is_a_degraded_mode_not_an_outage(stack: Stack,
                                                     redis_server: PrivateRedis,
                                                     pg_url: str) -> None:
    sender = f"noredis-{uuid.uuid4().hex[:6]}"
    redis_server.stop()
    try:
        status, health = chat_health(stack)
        assert status == 200 and health["status"] == "degraded"
        assert health["checks"]["lock_store"]["ok"] is False
        assert "degraded" in health["checks"]["lock_store"]["detail"]
        for q in QUESTIONS[:2]:
            status, body = chat(stack, sender, q)
            assert status == 200 and body["messages"], body
        logs = stack.log_tail("rasa", 400) + stack.log_tail("rasa-2", 400)
        assert "degraded mode" in logs
    finally:
        redis_server.start()
    time.sleep(11)  # the replicas try Redis again after bot.lock_store.RETRY_SECONDS
    status, body = chat(stack, sender, QUESTIONS[2])
    assert status == 200
    assert turns(pg_url, sender) == [1, 1, 1]
    status, health = chat_health(stack)
    assert health["checks"]["lock_store"]["ok"] is True


def chat_health(st: Stack) -> tuple[int, dict[str, Any]]:
    """/healthz with its details: as monitoring asks, with HEALTH_TOKEN."""
    url = f"http://{st.settings.bot_host}:{st.settings.bot_port}/healthz"
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {HEALTH_TOKEN}"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())

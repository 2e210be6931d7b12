"""The Zalo channel end to end: signed webhook events through the real gateway, Rasa and
action server, answers delivered to a fake Zalo OA server on loopback (tests/zalo_fake.py).

The fake runs in its own thread and event loop; the stack is real processes, so a gateway
restart in the middle of a delivery is a real process restart.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import func, select

from bot.catalog.db import session_scope
from bot.catalog.models import ZaloInbox, ZaloOutbox
from bot.channels.zalo.signature import expected_mac
from bot.stack import Stack
from tests.conftest import own_stack
from tests.zalo_fake import FakeZalo

pytestmark = pytest.mark.integration
OA_SECRET = "fake-oa-secret-key"


@pytest.fixture(scope="module")
def zalo() -> Iterator[FakeZalo]:
    """The fake Zalo platform, served from a background thread's event loop."""
    loop = asyncio.new_event_loop()
    # Each module's fake OA is its own authorisation (its own first token pair): modules
    # share the session's database, where an earlier module's rotated pair is stored.
    tag = uuid.uuid4().hex[:8]
    fake = FakeZalo(access_token=f"fake-access-{tag}", refresh_token=f"fake-refresh-{tag}")
    ready = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(fake.start())
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(10)
    yield fake
    asyncio.run_coroutine_threadsafe(fake.close(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)


@pytest.fixture(scope="module")
def stack(trained, zalo: FakeZalo) -> Iterator[Stack]:
    with own_stack(trained, "zalo", ZALO_APP_ID=zalo.app_id, ZALO_OA_SECRET_KEY=OA_SECRET,
                   ZALO_APP_SECRET=zalo.app_secret, ZALO_ACCESS_TOKEN=zalo.access_token,
                   ZALO_REFRESH_TOKEN=zalo.refresh_token, ZALO_API_BASE=zalo.base_url,
                   ZALO_OAUTH_BASE=zalo.base_url) as st:
        yield st


def text_event(user: str, msg_id: str, text: str, ts_ms: int | None = None) -> dict:
    return {"app_id": "fake-app-id", "event_name": "user_send_text",
            "timestamp": str(ts_ms if ts_ms is not None else int(time.time() * 1000)),
            "sender": {"id": user}, "recipient": {"id": "oa-1"},
            "message": {"msg_id": msg_id, "text": text}, "user_id_by_app": "x"}


def post(st: Stack, zalo: FakeZalo, event: dict, mac: str | None = None) -> tuple[int, dict]:
    """POST an event to the gateway's webhook, signed like Zalo signs it (unless `mac`)."""
    body = json.dumps(event, ensure_ascii=False).encode()
    mac = mac or expected_mac(zalo.app_id, body, event["timestamp"], OA_SECRET)
    req = urllib.request.Request(
        f"http://{st.settings.bot_host}:{st.settings.bot_port}/webhooks/zalo", data=body,
        method="POST", headers={"Content-Type": "application/json",
                                "X-ZEvent-Signature": f"mac={mac}"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def wait_until(check: Callable[[], bool], timeout: float = 90.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if check():
            return
        time.sleep(0.25)
    raise AssertionError("timed out waiting")


def texts_to(zalo: FakeZalo, user: str) -> list[str]:
    return [m.text or json.dumps(m.attachment, ensure_ascii=False)
            for m in zalo.messages_to(user)]


def test_signed_text_is_answered_once_even_when_zalo_retries(stack: Stack,
                                                             zalo: FakeZalo) -> None:
    user = "u-birth"
    event = text_event(user, "msg-birth-1", "đăng ký khai sinh cần giấy tờ gì")
    status, body = post(stack, zalo, event)
    assert status == 200 and body["duplicate"] is False
    wait_until(lambda: any("Hồ sơ cần chuẩn bị" in t for t in texts_to(zalo, user)))
    status, body = post(stack, zalo, event)  # Zalo retries the same msg_id
    assert status == 200 and body["duplicate"] is True
    time.sleep(3)
    answers = [t for t in texts_to(zalo, user) if "Hồ sơ cần chuẩn bị" in t]
    assert len(answers) == 1, texts_to(zalo, user)
    assert all(len(t) <= 2000 for t in texts_to(zalo, user))


def test_forged_and_replayed_signatures_are_refused(stack: Stack, zalo: FakeZalo) -> None:
    user = "u-forged"
    status, body = post(stack, zalo, text_event(user, "msg-f1", "xin chào"), mac="0" * 64)
    assert status == 401 and body["error"]["code"] == "bad_signature"
    old = text_event(user, "msg-f2", "xin chào", ts_ms=int(time.time() * 1000) - 3_600_000)
    status, _ = post(stack, zalo, old)  # a captured request replayed an hour later
    assert status == 401
    time.sleep(2)
    assert texts_to(zalo, user) == []
    with session_scope(stack.settings.database_url) as s:
        assert s.execute(select(func.count()).select_from(ZaloInbox).where(
            ZaloInbox.user_id == user)).scalar_one() == 0


def test_attachment_and_follow_get_polite_replies(stack: Stack, zalo: FakeZalo) -> None:
    user = "u-image"
    now = str(int(time.time() * 1000))
    image = {"app_id": zalo.app_id, "event_name": "user_send_image", "timestamp": now,
             "sender": {"id": user}, "recipient": {"id": "oa-1"},
             "message": {"msg_id": "msg-img-1", "attachments": [
                 {"type": "image", "payload": {"url": "https://example.invalid/a.jpg"}}]}}
    assert post(stack, zalo, image)[0] == 200
    follow = {"app_id": zalo.app_id, "event_name": "follow", "timestamp": now,
              "follower": {"id": user}, "oa_id": "oa-1", "source": "oa_profile"}
    assert post(stack, zalo, follow)[0] == 200
    echo = {"app_id": zalo.app_id, "event_name": "oa_send_text", "timestamp": now,
            "sender": {"id": "oa-1"}, "recipient": {"id": user},
            "message": {"msg_id": "msg-echo-1", "text": "echo"}}
    assert post(stack, zalo, echo)[1].get("ignored") == "oa_send_text"
    wait_until(lambda: len(texts_to(zalo, user)) >= 2)
    sent = texts_to(zalo, user)
    assert any("hình ảnh" in t for t in sent) and any("gặp cán bộ" in t for t in sent), sent


def test_zalo_outage_then_recovery_delivers_everything_once(stack: Stack,
                                                            zalo: FakeZalo) -> None:
    user = "u-outage"
    zalo.down()
    try:
        for i, q in enumerate(("đăng ký tạm trú cần giấy tờ gì", "đăng ký tạm trú mất bao lâu")):
            assert post(stack, zalo, text_event(user, f"msg-out-{i}", q))[0] == 200
        time.sleep(4)
        assert texts_to(zalo, user) == []
    finally:
        zalo.up()
    wait_until(lambda: any("Thời hạn giải quyết" in t for t in texts_to(zalo, user)), 120)
    sent = texts_to(zalo, user)
    assert len(sent) == len(set(sent)), sent  # nothing twice
    first = next(i for i, t in enumerate(sent) if "Hồ sơ cần chuẩn bị" in t)
    second = next(i for i, t in enumerate(sent) if "Thời hạn giải quyết" in t)
    assert first < second  # in the order the citizen asked


def test_token_expiry_mid_conversation_refreshes_once(stack: Stack, zalo: FakeZalo) -> None:
    user = "u-token"
    before = zalo.refresh_calls
    zalo.expire_token()
    assert post(stack, zalo, text_event(user, "msg-tok-1", "đăng ký kết hôn mất bao lâu"))[0] \
        == 200
    wait_until(lambda: bool(texts_to(zalo, user)))
    assert zalo.refresh_calls == before + 1


def test_gateway_restart_between_receive_and_send_delivers_once(stack: Stack,
                                                                zalo: FakeZalo) -> None:
    user = "u-restart"
    zalo.down()
    try:
        assert post(stack, zalo, text_event(user, "msg-rs-1", "đăng ký khai tử cần giấy tờ gì"
                                            ))[0] == 200

        def queued() -> bool:
            with session_scope(stack.settings.database_url) as s:
                return s.execute(select(func.count()).select_from(ZaloOutbox).where(
                    ZaloOutbox.user_id == user)).scalar_one() > 0

        wait_until(queued)  # the answer is written, Zalo is down: nothing sent yet
        stack.restart_gateway()
    finally:
        zalo.up()
    wait_until(lambda: any("Hồ sơ cần chuẩn bị" in t for t in texts_to(zalo, user)), 120)
    time.sleep(3)
    sent = texts_to(zalo, user)
    assert len(sent) == len(set(sent)), sent
    with session_scope(stack.settings.database_url) as s:
        statuses = s.execute(select(ZaloOutbox.status).where(ZaloOutbox.user_id == user)
                             ).scalars().all()
    assert statuses and set(statuses) == {"sent"}


def test_two_gateways_answer_each_event_once_and_send_each_reply_once(
        stack: Stack, zalo: FakeZalo) -> None:
    """Scaled out, every gateway runs the Zalo worker on the shared database: the user
    leases make each stored event reach Rasa once and each reply go out once, whichever
    gateway Zalo's webhook hit (README "Zalo with several gateways")."""
    import dataclasses
    import subprocess
    import sys

    from sqlalchemy import text as sql

    from bot.config import ROOT
    from bot.stack import service_env, wait_http
    from tests.conftest import free_port

    other = Stack(dataclasses.replace(stack.settings, bot_port=free_port()), stack.model)
    env = service_env(other.settings)
    log = open(stack.log_dir / "gateway-second.log", "ab")  # noqa: SIM115
    second = subprocess.Popen([sys.executable, "-m", "bot", "gateway"], cwd=ROOT, env=env,
                              stdout=log, stderr=subprocess.STDOUT)
    try:
        assert wait_http(f"http://{other.settings.bot_host}:{other.settings.bot_port}/healthz",
                         120, second)
        users = [f"u-two-{i}" for i in range(6)]
        for turn, question in enumerate(("xin chào", "đăng ký khai sinh cần giấy tờ gì")):
            for i, user in enumerate(users):
                gateway = (stack, other)[(i + turn) % 2]  # alternate between the two
                assert post(gateway, zalo, text_event(user, f"msg-two-{i}-{turn}",
                                                      question))[0] == 200
        for user in users:
            wait_until(lambda u=user: any("Hồ sơ cần chuẩn bị" in t
                                          for t in texts_to(zalo, u)), 120)
        time.sleep(4)  # anything sent twice would have arrived by now
        for user in users:
            sent = texts_to(zalo, user)
            assert sum("Hồ sơ cần chuẩn bị" in t for t in sent) == 1, sent
            assert len(sent) == len(set(sent)), sent
            with session_scope(stack.settings.database_url) as s:
                heard = s.execute(sql("SELECT count(*) FROM events WHERE sender_id = :s "
                                      "AND type_name = 'user'"),
                                  {"s": f"zalo-{user}"}).scalar_one()
            assert heard == 2, (user, heard)  # each event reached Rasa exactly once
    finally:
        second.terminate()
        second.wait(15)
        log.close()

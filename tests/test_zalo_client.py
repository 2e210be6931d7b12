"""The Zalo OA client against `FakeZalo` over real HTTP on the loopback interface.

Nothing is mocked: the client's aiohttp session talks to an aiohttp server that answers like
Zalo (errors as HTTP 200 + negative codes, single-use refresh tokens), so retries, timeouts and
the single-flight refresh are exercised end to end.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import aiohttp
import pytest

from bot.channels.zalo.client import (
    MemoryTokenStore,
    SendResult,
    ZaloAuthError,
    ZaloClient,
    mask_user_id,
)
from tests.zalo_fake import FakeZalo

USER = "8412345678901234567"
OTHER = "8499999999999999999"


@pytest.fixture
async def zalo() -> AsyncIterator[FakeZalo]:
    async with FakeZalo() as fake:
        yield fake


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as s:
        yield s


@pytest.fixture
def store(zalo: FakeZalo) -> MemoryTokenStore:
    return MemoryTokenStore(zalo.access_token, zalo.refresh_token)


def make_client(
    session: aiohttp.ClientSession,
    store: MemoryTokenStore,
    zalo: FakeZalo,
    max_attempts: int = 5,
    base_delay: float = 0.01,
) -> ZaloClient:
    return ZaloClient(
        session,
        store,
        app_id=zalo.app_id,
        app_secret=zalo.app_secret,
        api_base=zalo.base_url,
        oauth_base=zalo.base_url,
        max_attempts=max_attempts,
        base_delay=base_delay,
    )


@pytest.fixture
def client(session: aiohttp.ClientSession, store: MemoryTokenStore, zalo: FakeZalo) -> ZaloClient:
    return make_client(session, store, zalo)


# --------------------------------------------------------------------------- sending


async def test_send_text_ok(client: ZaloClient, zalo: FakeZalo) -> None:
    result = await client.send_text(USER, "Xin chào, tôi có thể giúp gì?")

    assert result == SendResult(True, False, 0, "Success", "fake-msg-1")
    [sent] = zalo.messages
    assert sent.user_id == USER
    assert sent.access_token == "fake-access-0"
    assert sent.body == {
        "recipient": {"user_id": USER},
        "message": {"text": "Xin chào, tôi có thể giúp gì?"},
    }


@pytest.mark.parametrize("code", [-100, -124, -201, -200])
async def test_http_200_with_error_code_is_a_failure(
    client: ZaloClient, zalo: FakeZalo, code: int
) -> None:
    zalo.error_next(1, code, "something is wrong")

    result = await client.send_text(USER, "xin chào")

    assert not result.ok
    assert result.code == code
    assert result.message == "something is wrong"
    assert result.message_id is None
    assert len(zalo.requests) == 1, "a Zalo verdict is not retried by the client"
    assert zalo.messages == []


async def test_invalid_parameter_is_permanent(client: ZaloClient, zalo: FakeZalo) -> None:
    zalo.error_next(1, -201)
    result = await client.send_text(USER, "xin chào")
    assert (result.ok, result.permanent) == (False, True)


async def test_text_must_be_split_first(client: ZaloClient, zalo: FakeZalo) -> None:
    with pytest.raises(ValueError):
        await client.send_text(USER, "a" * 2001)
    with pytest.raises(ValueError):
        await client.send_text(USER, "   ")
    assert zalo.requests == []


async def test_send_list_body_shape(client: ZaloClient, zalo: FakeZalo) -> None:
    buttons = [
        {"title": "Đăng ký khai sinh", "payload": "/chon_thu_tuc"},
        {"title": "Khác"},
    ]
    result = await client.send_list(USER, "Bạn muốn làm thủ tục nào?", buttons)

    assert result.ok
    [sent] = zalo.messages
    assert sent.body == {
        "recipient": {"user_id": USER},
        "message": {
            "attachment": {
                "type": "template",
                "payload": {
                    "template_type": "list",
                    "elements": [{"title": "Bạn muốn làm thủ tục nào?"}],
                    "buttons": [
                        {
                            "title": "Đăng ký khai sinh",
                            "type": "oa.query.show",
                            "payload": "/chon_thu_tuc",
                        },
                        {"title": "Khác", "type": "oa.query.show", "payload": "Khác"},
                    ],
                },
            }
        },
    }


async def test_send_list_long_title_goes_to_subtitle() -> None:
    title = "Thủ tục " * 30  # 240 characters
    body = ZaloClient.list_body(USER, title, [{"title": "Có", "payload": "/affirm"}])
    [element] = body["message"]["attachment"]["payload"]["elements"]
    assert len(element["title"]) == 100 and element["title"].endswith("…")
    assert element["subtitle"] == title.strip()


async def test_send_list_rejected_template_exposes_code(client: ZaloClient, zalo: FakeZalo) -> None:
    zalo.reject_templates(-201)

    result = await client.send_list(USER, "Chọn một", [{"title": "A", "payload": "a"}])

    assert not result.ok and result.code == -201
    assert len(zalo.requests) == 1
    # ...and the caller's text fallback still goes through.
    assert (await client.send_text(USER, "1. A\nBạn nhắn số thứ tự để chọn nhé.")).ok


async def test_send_list_button_count(client: ZaloClient) -> None:
    with pytest.raises(ValueError):
        await client.send_list(USER, "Chọn", [{"title": str(i)} for i in range(6)])
    with pytest.raises(ValueError):
        await client.send_list(USER, "Chọn", [])


# --------------------------------------------------------------------------- tokens


async def test_expired_token_refreshes_once_and_resends(
    client: ZaloClient, zalo: FakeZalo, store: MemoryTokenStore
) -> None:
    zalo.expire_token()

    result = await client.send_text(USER, "xin chào")

    assert result.ok
    assert zalo.refresh_calls == 1
    assert zalo.refresh_forms == [
        {"refresh_token": "fake-refresh-0", "app_id": zalo.app_id, "grant_type": "refresh_token"}
    ]
    assert await store.get() == (zalo.access_token, zalo.refresh_token)
    assert store.saves == 1
    assert [r.outcome for r in zalo.requests] == ["error -216", "ok"]
    [sent] = zalo.messages
    assert sent.access_token == zalo.access_token != "fake-access-0"

    # the new token is kept: the next send needs no refresh
    assert (await client.send_text(USER, "lần hai")).ok
    assert zalo.refresh_calls == 1


async def test_concurrent_sends_with_expired_token_refresh_once(
    client: ZaloClient, zalo: FakeZalo, store: MemoryTokenStore
) -> None:
    assert (await client.send_text(USER, "làm nóng")).ok  # the client holds the token now
    zalo.expire_token()
    zalo.slow(0.05)  # let all ten requests be in flight with the old token

    results = await asyncio.gather(*(client.send_text(USER, f"tin {i}") for i in range(10)))

    assert all(r.ok for r in results), results
    assert zalo.refresh_calls == 1
    assert store.saves == 1
    assert len(zalo.messages) == 11
    assert {m.access_token for m in zalo.messages[1:]} == {zalo.access_token}
    assert sum(r.outcome == "error -216" for r in zalo.requests) == 10


async def test_refresh_with_rotated_refresh_token_fails(
    client: ZaloClient, zalo: FakeZalo, store: MemoryTokenStore
) -> None:
    new_access = await client.refresh()
    assert new_access == zalo.access_token
    assert await store.get() == (zalo.access_token, zalo.refresh_token)

    # Someone restores the old pair (a stale backup, a second process with old state).
    await store.save("fake-access-0", "fake-refresh-0")
    with pytest.raises(ZaloAuthError) as info:
        await client.refresh()

    assert info.value.code == -14014
    assert zalo.refresh_calls == 2, "a rejected refresh is not retried"
    assert await store.get() == ("fake-access-0", "fake-refresh-0"), "nothing saved on failure"


async def test_send_when_refresh_is_rejected(
    client: ZaloClient, zalo: FakeZalo, store: MemoryTokenStore
) -> None:
    await store.save("fake-access-0", "not-a-valid-refresh-token")
    zalo.expire_token()

    results = await asyncio.gather(*(client.send_text(USER, f"tin {i}") for i in range(5)))

    assert all(not r.ok and not r.permanent and r.code == -216 for r in results)
    assert "refresh" in results[0].message
    assert zalo.refresh_calls == 1, "one attempt per dead refresh token, not one per sender"
    assert zalo.messages == []


async def test_token_rejected_again_after_refresh_is_not_a_loop(
    client: ZaloClient, zalo: FakeZalo
) -> None:
    zalo.expire_token()
    zalo.error_next(1, -216, "Access token is invalid")  # the new token is rejected once too

    result = await client.send_text(USER, "xin chào")

    assert not result.ok and result.code == -216
    assert zalo.refresh_calls == 1
    assert len(zalo.requests) == 2


async def test_token_written_by_another_process_is_adopted_without_refresh(
    client: ZaloClient, zalo: FakeZalo, store: MemoryTokenStore
) -> None:
    assert (await client.send_text(USER, "làm nóng")).ok
    # another gateway worker refreshed and stored the new pair
    async with aiohttp.ClientSession() as other_session:
        other = make_client(other_session, store, zalo)
        await other.refresh()
    assert zalo.refresh_calls == 1

    assert (await client.send_text(USER, "sau đó")).ok
    assert zalo.refresh_calls == 1, "the stored token was newer: no second refresh"


# --------------------------------------------------------------------------- failures


async def test_user_not_reachable_is_permanent_without_retry(
    client: ZaloClient, zalo: FakeZalo
) -> None:
    zalo.block_user(USER)

    result = await client.send_text(USER, "xin chào")

    assert (result.ok, result.permanent, result.code) == (False, True, -230)
    assert len(zalo.requests) == 1
    assert (await client.send_text(OTHER, "xin chào")).ok


async def test_user_without_recent_interaction_232_is_permanent(
    client: ZaloClient, zalo: FakeZalo
) -> None:
    zalo.error_next(1, -232, "User has not interacted")
    result = await client.send_text(USER, "xin chào")
    assert (result.ok, result.permanent, result.code) == (False, True, -232)
    assert len(zalo.requests) == 1


async def test_server_errors_then_ok_is_delivered(client: ZaloClient, zalo: FakeZalo) -> None:
    zalo.fail_next(2, status=500)

    result = await client.send_text(USER, "xin chào")

    assert result.ok and result.message_id
    assert [r.outcome for r in zalo.requests] == ["http 500", "http 500", "ok"]
    assert len(zalo.messages) == 1


async def test_always_failing_gives_up_after_max_attempts(
    session: aiohttp.ClientSession, store: MemoryTokenStore, zalo: FakeZalo
) -> None:
    client = make_client(session, store, zalo, max_attempts=4)
    zalo.fail_next(100, status=500)

    result = await client.send_text(USER, "xin chào")

    assert (result.ok, result.permanent, result.code) == (False, False, 500)
    assert len(zalo.requests) == 4


async def test_down_is_retried_and_transient(
    session: aiohttp.ClientSession, store: MemoryTokenStore, zalo: FakeZalo
) -> None:
    client = make_client(session, store, zalo, max_attempts=3)
    zalo.down()
    result = await client.send_text(USER, "xin chào")
    assert (result.ok, result.permanent, result.code) == (False, False, 503)
    assert len(zalo.requests) == 3

    zalo.up()
    assert (await client.send_text(USER, "xin chào")).ok


async def test_rate_limit_is_retried(client: ZaloClient, zalo: FakeZalo) -> None:
    zalo.rate_limit_next(2)
    zalo.fail_next(1, status=429)

    result = await client.send_text(USER, "xin chào")

    assert result.ok
    assert [r.outcome for r in zalo.requests] == ["http 429", "error -32", "error -32", "ok"]


async def test_rate_limit_forever_is_transient(
    session: aiohttp.ClientSession, store: MemoryTokenStore, zalo: FakeZalo
) -> None:
    client = make_client(session, store, zalo, max_attempts=3)
    zalo.rate_limit_next(10)
    result = await client.send_text(USER, "xin chào")
    assert (result.ok, result.permanent, result.code) == (False, False, -32)
    assert len(zalo.requests) == 3


async def test_slow_server_beyond_timeout_is_transient(
    store: MemoryTokenStore, zalo: FakeZalo
) -> None:
    zalo.slow(1.0)
    timeout = aiohttp.ClientTimeout(total=0.2)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        client = make_client(session, store, zalo, max_attempts=2)
        result = await client.send_text(USER, "xin chào")

    assert (result.ok, result.permanent, result.code) == (False, False, None)
    assert result.message == "timeout"
    assert len(zalo.requests) == 2


async def test_connection_refused_is_transient(
    session: aiohttp.ClientSession, store: MemoryTokenStore, zalo: FakeZalo
) -> None:
    client = make_client(session, store, zalo, max_attempts=2)
    await zalo.close()  # nothing listens on the port any more

    result = await client.send_text(USER, "xin chào")

    assert (result.ok, result.permanent, result.code) == (False, False, None)


# --------------------------------------------------------------------------- logging


async def test_no_tokens_or_text_in_logs(
    client: ZaloClient, zalo: FakeZalo, store: MemoryTokenStore, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secret_text = "Số CCCD của tôi là 001099012345"
    seen_tokens = {zalo.access_token, zalo.refresh_token, zalo.app_secret}

    zalo.expire_token()
    zalo.fail_next(1, status=502)
    assert (await client.send_text(USER, secret_text)).ok
    seen_tokens |= {zalo.access_token, zalo.refresh_token}
    zalo.block_user(OTHER)
    assert not (await client.send_text(OTHER, secret_text)).ok
    await store.save("fake-access-0", "fake-refresh-0")
    with pytest.raises(ZaloAuthError) as info:
        await client.refresh()

    logged = caplog.text + "".join(repr(r.args) for r in caplog.records)
    assert caplog.records, "the client does log"
    for secret in seen_tokens | {secret_text, USER, OTHER}:
        assert secret not in logged
        assert secret not in str(info.value)
    assert mask_user_id(USER) in logged
    assert mask_user_id(USER) == "8412…"
    assert "fake-access" not in repr(client) + repr(store)

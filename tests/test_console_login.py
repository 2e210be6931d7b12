"""Console login hardening (issue 18, items 6 and 11): throttling per address and per
(account, address) instead of a lock-out anyone can keep on `admin`, one argon2
verification per attempt whatever the outcome, a bound on concurrent verifications, and an
absolute session lifetime.

The real gateway app on a real SQLite database, as in test_console_auth.py. Client addresses
come through the gateway's own X-Forwarded-For handling (TRUSTED_PROXIES=127.0.0.1). argon2
runs with cheap parameters here (`hasher`), only to keep the tests fast: what is checked is
how many verifications run, never how long they take.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import threading
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import NamedTuple

import argon2
import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from bot.catalog.db import session_scope
from bot.config import Settings
from bot.console import accounts
from bot.console.models import AuditEntry, LoginFailure, OperatorSession
from bot.console.web import PROBLEMS
from bot.gateway.app import create_app
from tests.conftest import free_port

PASSWORD = "mat-khau-du-dai-1"
OFFICE = "198.51.100.7"  # where the real operators work
ATTACKER = "203.0.113.66"


class CountingHasher(argon2.PasswordHasher):
    """argon2 with cheap parameters that counts verifications and the most running at once
    (an optional pause inside each one makes overlaps visible)."""

    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=1024, parallelism=1)
        self.calls = 0
        self.running = 0
        self.most = 0
        self.pause = 0.0
        self._lock = threading.Lock()

    def verify(self, hash: str | bytes, password: str | bytes) -> bool:  # noqa: A002
        with self._lock:
            self.calls += 1
            self.running += 1
            self.most = max(self.most, self.running)
        try:
            time.sleep(self.pause)
            return super().verify(hash, password)
        finally:
            with self._lock:
                self.running -= 1


@pytest.fixture()
def hasher(monkeypatch: pytest.MonkeyPatch) -> CountingHasher:
    counting = CountingHasher()
    monkeypatch.setattr(accounts, "_HASHER", counting)
    monkeypatch.setattr(accounts, "_DUMMY_HASH", counting.hash("dummy-" + secrets.token_hex(8)))
    return counting


@pytest.fixture()
def settings(db_url: str, hasher: CountingHasher) -> Settings:
    with session_scope(db_url) as s:
        accounts.add_operator(s, "admin", PASSWORD, "admin", "Chị Quản Trị")
        accounts.add_operator(s, "lan", PASSWORD, "agent", "Cán bộ Lan")
        accounts.add_operator(s, "cu", PASSWORD, "agent", "Tài khoản cũ")
        accounts.set_active(s, "cu", False, by="test")
    return Settings.from_env({"DATABASE_URL": db_url, "TRUSTED_PROXIES": "127.0.0.1",
                              "RASA_URL": f"http://127.0.0.1:{free_port()}",
                              "ACTIONS_URL": f"http://127.0.0.1:{free_port()}"})


@pytest.fixture()
async def client(settings: Settings) -> AsyncIterator[TestClient]:
    async with TestClient(TestServer(create_app(settings))) as c:
        yield c


class Answer(NamedTuple):
    status: int
    location: str
    text: str
    retry_after: str | None


async def form_token(client: TestClient) -> str:
    html = await (await client.get("/console/login")).text()
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


async def attempt(client: TestClient, username: str, password: str, address: str,
                  token: str | None = None) -> Answer:
    """One login post from `address` (as our trusted proxy reports it)."""
    token = token or await form_token(client)
    resp = await client.post("/console/login", data={
        "username": username, "password": password, "csrf": token, "next": "/console/"},
        headers={"X-Forwarded-For": address}, allow_redirects=False)
    return Answer(resp.status, resp.headers.get("Location", ""), await resp.text(),
                  resp.headers.get("Retry-After"))


def failures(settings: Settings) -> list[tuple[str, str]]:
    with session_scope(settings.database_url) as s:
        return [(f.username, f.address) for f in s.execute(select(LoginFailure)).scalars()]


def audit_details(settings: Settings, action: str) -> list[str]:
    with session_scope(settings.database_url) as s:
        return [e.detail or "" for e in s.execute(select(AuditEntry).where(
            AuditEntry.action == action).order_by(AuditEntry.id)).scalars()]


async def test_every_attempt_costs_exactly_one_argon2_verification(
        client: TestClient, hasher: CountingHasher, settings: Settings) -> None:
    """Unknown name, wrong password, disabled account, throttled, success: one each, so
    the time an answer takes tells nothing (the old code skipped the check when locked or
    disabled)."""
    cases = [("khong-ton-tai", "sai-mat-khau-roi", OFFICE),  # unknown name
             ("lan", "sai-mat-khau-roi", OFFICE),  # wrong password
             ("cu", PASSWORD, OFFICE),  # disabled account, right password
             ("x" * 200, "sai-mat-khau-roi", OFFICE)]  # not even a valid name
    answers = []
    for username, password, address in cases:
        before = hasher.calls
        answers.append(await attempt(client, username, password, address))
        assert hasher.calls == before + 1, username
    assert {(a.status, a.location) for a in answers} == {
        (303, "/console/login?err=login&next=/console/")}  # all alike
    for _ in range(accounts.MAX_FAILED):
        await attempt(client, "admin", "sai-mat-khau-roi", ATTACKER)
    before = hasher.calls
    throttled = await attempt(client, "admin", PASSWORD, ATTACKER)
    assert throttled.status == 429 and hasher.calls == before + 1
    before = hasher.calls
    assert (await attempt(client, "lan", PASSWORD, OFFICE)).status == 303
    assert hasher.calls == before + 1


def test_the_dummy_hash_has_the_parameters_of_real_hashes() -> None:
    real = accounts._HASHER.hash(PASSWORD)
    assert argon2.extract_parameters(accounts._DUMMY_HASH) == argon2.extract_parameters(real)


async def test_a_guesser_locks_out_itself_not_the_admin(
        client: TestClient, settings: Settings) -> None:
    for _ in range(accounts.MAX_FAILED):
        answer = await attempt(client, "admin", "sai-mat-khau-roi", ATTACKER)
        assert answer.status == 303 and "err=login" in answer.location
    answer = await attempt(client, "admin", PASSWORD, ATTACKER)  # even the right password
    assert answer.status == 429
    assert PROBLEMS["throttled"] in answer.text and "thử lại sau khoảng 15 phút" in answer.text
    assert 'value="admin"' in answer.text  # the form keeps the name typed
    assert answer.retry_after == str(accounts.WINDOW_MINUTES * 60)
    # The admin, at the office, logs in as usual.
    answer = await attempt(client, "admin", PASSWORD, OFFICE)
    assert answer.status == 303 and answer.location == "/console/"
    # An unknown name is throttled exactly alike: no way to learn which names exist.
    for _ in range(accounts.MAX_FAILED):
        await attempt(client, "khong-ton-tai", "sai-mat-khau-roi", ATTACKER)
    unknown = await attempt(client, "khong-ton-tai", "sai-mat-khau-roi", ATTACKER)
    real = await attempt(client, "admin", PASSWORD, ATTACKER)
    assert (unknown.status, unknown.retry_after) == (real.status, real.retry_after)
    assert unknown.text.replace('value="khong-ton-tai"', 'value="admin"') == real.text
    assert sum('"throttled"' in d and '"account+address"' in d
               for d in audit_details(settings, "login.failed")) == 3


async def test_one_address_trying_many_names_is_throttled(
        client: TestClient, settings: Settings) -> None:
    token = await form_token(client)
    for i in range(accounts.ADDRESS_MAX_FAILED):
        answer = await attempt(client, f"ten-{i}", "sai-mat-khau-roi", ATTACKER, token)
        assert answer.status == 303
    assert (await attempt(client, "lan", PASSWORD, ATTACKER, token)).status == 429
    assert (await attempt(client, "lan", PASSWORD, OFFICE, token)).status == 303
    assert '"address"' in audit_details(settings, "login.failed")[-1]


async def test_a_guess_spread_over_many_addresses_is_refused_from_new_addresses_only(
        client: TestClient, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(accounts, "ACCOUNT_MAX_FAILED", 8)
    assert (await attempt(client, "admin", PASSWORD, OFFICE)).status == 303  # known address
    token = await form_token(client)
    for i in range(8):  # a botnet: 8 machines, one guess each
        answer = await attempt(client, "admin", "sai-mat-khau-roi", f"203.0.113.{i + 1}", token)
        assert answer.status == 303
    assert (await attempt(client, "admin", PASSWORD, "192.0.2.50", token)).status == 429
    assert (await attempt(client, "admin", PASSWORD, OFFICE, token)).status == 303
    # A password reset by another admin lifts the block for the account.
    with session_scope(settings.database_url) as s:
        accounts.set_password(s, "admin", "mat-khau-moi-hoan-toan", by="test")
    assert not [f for f in failures(settings) if f[0] == "admin"]
    token = await form_token(client)
    answer = await attempt(client, "admin", "mat-khau-moi-hoan-toan", "192.0.2.50", token)
    assert answer.status == 303


async def test_every_gateway_replica_sees_the_same_failures(
        client: TestClient, settings: Settings) -> None:
    async with TestClient(TestServer(create_app(settings))) as other:
        for _ in range(accounts.MAX_FAILED):
            await attempt(client, "admin", "sai-mat-khau-roi", ATTACKER)
        assert (await attempt(other, "admin", PASSWORD, ATTACKER)).status == 429


async def test_a_success_forgets_the_earlier_failures_of_that_name_and_address(
        client: TestClient, settings: Settings) -> None:
    for _ in range(accounts.MAX_FAILED - 1):
        await attempt(client, "lan", "sai-mat-khau-roi", OFFICE)
    assert (await attempt(client, "lan", PASSWORD, OFFICE)).status == 303
    assert failures(settings) == []
    assert (await attempt(client, "lan", "sai-mat-khau-roi", OFFICE)).status == 303


async def test_concurrent_argon2_verifications_are_bounded(
        client: TestClient, hasher: CountingHasher) -> None:
    hasher.pause = 0.5  # long enough for the posts below to overlap
    token = await form_token(client)
    started = time.monotonic()
    posts = asyncio.gather(*(
        attempt(client, f"ten-{i}", "sai-mat-khau-roi", f"192.0.2.{i + 1}", token)
        for i in range(6)))
    await asyncio.sleep(0.2)
    # The checks run off the event loop: a page is served while they queue.
    assert (await client.get("/console/login")).status == 200
    assert not posts.done()
    answers = await posts
    assert all(a.status == 303 for a in answers)
    assert hasher.most == accounts.VERIFY_CONCURRENCY  # reached, never exceeded
    assert time.monotonic() - started >= 3 * hasher.pause  # 6 checks, 2 at a time


async def test_a_session_in_use_still_ends_after_the_absolute_lifetime(
        client: TestClient, settings: Settings) -> None:
    assert settings.console_session_max_hours == 12.0
    assert (await attempt(client, "lan", PASSWORD, OFFICE)).status == 303
    t = accounts.now()

    def age(hours: float) -> None:
        """The session began `hours` ago and is in use (its expiry slides on a request)."""
        with session_scope(settings.database_url) as s:
            row = s.execute(select(OperatorSession)).scalar_one()
            row.created_at = t - timedelta(hours=hours)
            row.last_seen_at = t - timedelta(minutes=5)
            row.expires_at = t + timedelta(hours=1)

    age(11)
    assert (await client.get("/console/", allow_redirects=False)).status == 200
    with session_scope(settings.database_url) as s:
        row = s.execute(select(OperatorSession)).scalar_one()
        assert row.expires_at <= row.created_at + timedelta(hours=12)  # slid, but capped
    age(12.05)
    resp = await client.get("/console/", allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"].startswith("/console/login")


def test_the_absolute_lifetime_is_a_setting() -> None:
    assert Settings.from_env({"CONSOLE_SESSION_MAX_HOURS": "4"}).console_session_max_hours == 4
    assert Settings.from_env({}).console_session_max_hours == 12.0

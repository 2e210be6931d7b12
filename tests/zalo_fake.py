"""A fake Zalo platform over real HTTP, for the Zalo client and the channel's integration tests.

`FakeZalo` is an aiohttp app on 127.0.0.1 (a free port) serving the two endpoints our side
calls, with Zalo's quirks: errors come back as HTTP 200 with a negative ``error`` code, refresh
tokens are single-use. Point the client's ``api_base`` and ``oauth_base`` at ``base_url``.

    async with FakeZalo() as zalo:
        store = MemoryTokenStore(zalo.access_token, zalo.refresh_token)
        client = ZaloClient(session, store, zalo.app_id, zalo.app_secret,
                            zalo.base_url, zalo.base_url)
        zalo.expire_token()            # the next send gets -216, the client refreshes
        ...
        assert zalo.messages[0].text == "..."
        assert zalo.refresh_calls == 1

Knobs (each affects the message endpoint unless noted): `fail_next(n, status)`,
`rate_limit_next(n)` (Zalo's -32), `error_next(n, code)` (any Zalo error code),
`expire_token()` (-216 for the current token), `block_user(uid)` (-230), `slow(seconds)`,
`down()` / `up()` (503 on both endpoints), `reject_templates(code)`. Records: `requests`
(every message request, accepted or not), `messages` (accepted ones), `refresh_calls`.

Zalo shapes as documented in bot/channels/zalo/client.py; the refresh error body
(``{"error": -14014, "error_name": ..., "error_description": ...}``) is a plausible
imitation, not a confirmed copy.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.loopback import serve

MESSAGE_PATH = "/v3.0/oa/message/cs"
TOKEN_PATH = "/v4/oa/access_token"
TEXT_LIMIT = 2000


@dataclass
class MessageRequest:
    """One POST to the message endpoint, as the fake saw it."""

    user_id: str | None
    body: Any
    access_token: str | None
    outcome: str  # "ok", "http <status>", or "error <code>"


@dataclass
class SentMessage:
    """A message the fake accepted (answered with error 0)."""

    user_id: str
    body: dict[str, Any]
    access_token: str
    message_id: str

    @property
    def text(self) -> str | None:
        return self.body.get("message", {}).get("text")

    @property
    def attachment(self) -> dict[str, Any] | None:
        return self.body.get("message", {}).get("attachment")


@dataclass
class _Behaviour:
    failures: deque[int] = field(default_factory=deque)  # HTTP statuses to answer next
    errors: deque[tuple[int, str]] = field(default_factory=deque)  # Zalo codes to answer next
    rate_limited: int = 0
    delay: float = 0.0
    down: bool = False
    blocked: set[str] = field(default_factory=set)
    template_error: int | None = None


class FakeZalo:
    """The Zalo OA message API and OAuth v4 token endpoint, faked on a loopback port."""

    def __init__(
        self,
        access_token: str = "fake-access-0",
        refresh_token: str = "fake-refresh-0",
        app_id: str = "fake-app-id",
        app_secret: str = "fake-app-secret",
        host: str = "127.0.0.1",
    ) -> None:
        self.app_id = app_id
        self.app_secret = app_secret
        self.access_token = access_token
        self.refresh_token = refresh_token
        self.host = host
        self._valid_access: set[str] = {access_token}
        self._spent_refresh: set[str] = set()
        self._counter = itertools.count(1)
        self._behaviour = _Behaviour()
        self.requests: list[MessageRequest] = []
        self.messages: list[SentMessage] = []
        self.refresh_calls = 0
        self.refresh_forms: list[dict[str, str]] = []
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

    # ------------------------------------------------------------------ lifecycle

    @property
    def base_url(self) -> str:
        if self._port is None:
            raise RuntimeError("FakeZalo is not started")
        return f"http://{self.host}:{self._port}"

    async def start(self) -> FakeZalo:
        app = web.Application()
        app.router.add_post(MESSAGE_PATH, self._message)
        app.router.add_post(TOKEN_PATH, self._token)
        self._runner, self._port = await serve(app, self.host)
        return self

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeZalo:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ------------------------------------------------------------------ knobs

    def fail_next(self, n: int = 1, status: int = 500) -> None:
        """The next `n` message requests get HTTP `status` (no Zalo JSON)."""
        self._behaviour.failures.extend([status] * n)

    def error_next(self, n: int = 1, code: int = -201, message: str = "fake error") -> None:
        """The next `n` message requests get HTTP 200 with Zalo error `code`."""
        self._behaviour.errors.extend([(code, message)] * n)

    def rate_limit_next(self, n: int = 1) -> None:
        """The next `n` message requests get Zalo's rate-limit error (-32)."""
        self._behaviour.rate_limited += n

    def expire_token(self) -> None:
        """The current access token stops working (-216) until a refresh issues a new one."""
        self._valid_access.discard(self.access_token)

    def block_user(self, user_id: str) -> None:
        """Messages to `user_id` get -230 (no interaction in the last 7 days)."""
        self._behaviour.blocked.add(user_id)

    def reject_templates(self, code: int | None = -201) -> None:
        """Template (attachment) messages get `code`; None accepts them again."""
        self._behaviour.template_error = code

    def slow(self, seconds: float) -> None:
        """Message requests wait `seconds` before answering (0 to stop)."""
        self._behaviour.delay = seconds

    def down(self) -> None:
        """Both endpoints answer 503 until `up()`."""
        self._behaviour.down = True

    def up(self) -> None:
        self._behaviour.down = False

    def reset_records(self) -> None:
        self.requests.clear()
        self.messages.clear()
        self.refresh_calls = 0
        self.refresh_forms.clear()

    def messages_to(self, user_id: str) -> list[SentMessage]:
        return [m for m in self.messages if m.user_id == user_id]

    # ------------------------------------------------------------------ handlers

    async def _message(self, request: web.Request) -> web.Response:
        b = self._behaviour
        token = request.headers.get("access_token")
        try:
            body: Any = await request.json()
        except ValueError:
            body = None
        recipient = body.get("recipient") if isinstance(body, dict) else None
        user_id = recipient.get("user_id") if isinstance(recipient, dict) else None
        record = MessageRequest(user_id, body, token, "")
        self.requests.append(record)

        def http(status: int) -> web.Response:
            record.outcome = f"http {status}"
            return web.Response(status=status, text="fake failure")

        def error(code: int, message: str) -> web.Response:
            record.outcome = f"error {code}"
            return web.json_response({"error": code, "message": message})

        if b.down:
            return http(503)
        if b.delay:
            await asyncio.sleep(b.delay)
        if b.failures:
            return http(b.failures.popleft())
        if b.rate_limited:
            b.rate_limited -= 1
            return error(-32, "Your application reached limit call api")
        if not token or token not in self._valid_access:
            return error(-216, "Access token is invalid")
        if b.errors:
            return error(*b.errors.popleft())
        if not isinstance(user_id, str) or not user_id:
            return error(-201, "user_id is invalid")
        if user_id in b.blocked:
            return error(-230, "User has not interacted with the OA in the past 7 days")
        message = body.get("message")
        if not isinstance(message, dict) or not (message.get("text") or message.get("attachment")):
            return error(-201, "message is invalid")
        text = message.get("text")
        if text is not None and (not isinstance(text, str) or len(text) > TEXT_LIMIT):
            return error(-210, "Parameter exceeds allowable limit")
        if message.get("attachment") is not None and b.template_error is not None:
            return error(b.template_error, "template is invalid")

        message_id = f"fake-msg-{next(self._counter)}"
        self.messages.append(SentMessage(user_id, body, token, message_id))
        record.outcome = "ok"
        return web.json_response(
            {
                "error": 0,
                "message": "Success",
                "data": {"message_id": message_id, "user_id": user_id},
            }
        )

    async def _token(self, request: web.Request) -> web.Response:
        self.refresh_calls += 1
        form = {k: str(v) for k, v in (await request.post()).items()}
        self.refresh_forms.append(form)
        if self._behaviour.down:
            return web.Response(status=503, text="fake failure")

        def oauth_error(code: int, name: str, description: str) -> web.Response:
            return web.json_response(
                {"error": code, "error_name": name, "error_description": description}
            )

        if request.headers.get("secret_key") != self.app_secret:
            return oauth_error(-14002, "Invalid app secret", "secret_key is invalid")
        if form.get("app_id") != self.app_id or form.get("grant_type") != "refresh_token":
            return oauth_error(-14001, "Invalid parameter", "app_id or grant_type is invalid")
        given = form.get("refresh_token")
        if given != self.refresh_token:
            reason = "already used" if given in self._spent_refresh else "unknown"
            return oauth_error(-14014, "Invalid refresh token", f"refresh_token is {reason}")

        n = next(self._counter)
        self._spent_refresh.add(self.refresh_token)
        self._valid_access.discard(self.access_token)
        self.access_token = f"fake-access-r{n}"
        self.refresh_token = f"fake-refresh-r{n}"
        self._valid_access.add(self.access_token)
        return web.json_response(
            {
                "access_token": self.access_token,
                "refresh_token": self.refresh_token,
                "expires_in": "90000",
            }
        )

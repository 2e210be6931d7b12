"""Outbound client for the Zalo Official Account API (OA API v3): send messages, refresh tokens.

Zalo facts this module relies on (sources are third-party public material; the official pages on
developers.zalo.me were not among the stored sources, so treat the marked items as unverified):

* Customer-service ("tư vấn") message: ``POST {api_base}/v3.0/oa/message/cs`` with the header
  ``access_token: <OA access token>`` and the JSON body
  ``{"recipient": {"user_id": ...}, "message": {"text": ...}}``. The answer is HTTP 200 whether or
  not the send worked: ``{"error": 0, "message": "Success", "data": {"message_id": ...}}`` on
  success, ``{"error": <negative int>, "message": ...}`` otherwise. (Confirmed: the npm package
  ``zalo-api-service`` docs; ``@warriorteam/redai-zalo-sdk`` consultation types;
  hoangnd25/monorepo ``wip/zalo-platform-integration.md``.)
* Error codes (hoangnd25/monorepo, same file; doc.caresoft.vn "Bảng mã khi gửi tin nhắn theo
  Zalo ID"; subiz/subiz.com docs "Xử lý lỗi trên Zalo OA"):
  -216 "Access token is invalid", -220 "access_token is expired or removed" -> refresh;
  -230 "User has not interacted with OA in past 7 days", -232 "User has not interacted, or last
  interaction expired" -> permanent for this message; -32 "Your application reached limit call
  api" -> rate limit, back off. We also treat as permanent (resending the same body cannot
  succeed): -201 invalid parameter, -210 parameter exceeds limit, -213 user has not followed OA,
  -227 user banned/inactive, -233 message type invalid, -244 user restricted this message type.
  Any other non-zero code is a failure that is not retried here (the caller's outbox decides).
* Token refresh: ``POST {oauth_base}/v4/oa/access_token``, form fields ``refresh_token``,
  ``app_id``, ``grant_type=refresh_token``, header ``secret_key: <app secret>``; the answer is
  ``{"access_token", "refresh_token", "expires_in": "90000"}``. Refresh tokens are single-use:
  each refresh returns a new one and the old one stops working (confirmed: hoangnd25/monorepo
  notes; several public clients store the new refresh token after every refresh). The exact
  error JSON for a bad refresh token (an ``error`` code with ``error_description``) is NOT
  confirmed, so any answer without an ``access_token`` counts as a failed refresh.
* Button template: ``message.attachment = {"type": "template", "payload": {"template_type":
  "list", "elements": [...], "buttons": [{"title", "type": "oa.query.show", "payload"}]}}``.
  ``oa.query.show`` (the tapped button sends its payload back as a user text) is confirmed by
  many public clients and ``redai-zalo-sdk``'s ``TemplateAction`` type (title <= 100 chars,
  at most 5 elements); the exact list-template shape is NOT confirmed, which is why
  ``send_list`` returns Zalo's error code so the caller can fall back to
  ``split.buttons_as_text``.

Secrets never reach the logs: no access/refresh token, no message text; user ids are masked.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp

from bot.channels.zalo.split import TEXT_LIMIT

__all__ = [
    "TokenStore",
    "MemoryTokenStore",
    "SendResult",
    "ZaloAuthError",
    "ZaloClient",
    "mask_user_id",
    "TOKEN_ERRORS",
    "PERMANENT_ERRORS",
    "RATE_LIMIT_ERRORS",
    "MAX_LIST_BUTTONS",
]

log = logging.getLogger(__name__)

MESSAGE_PATH = "/v3.0/oa/message/cs"
TOKEN_PATH = "/v4/oa/access_token"

#: The access token is invalid (-216) or expired/removed (-220): refresh once, then resend.
TOKEN_ERRORS = frozenset({-216, -220})
#: The same message can never be delivered: do not retry (the outbox should drop it).
USER_UNREACHABLE_ERRORS = frozenset({-230, -232})
PERMANENT_ERRORS = USER_UNREACHABLE_ERRORS | frozenset({-201, -210, -213, -227, -233, -244})
#: "Your application reached limit call api": transient, back off and retry.
RATE_LIMIT_ERRORS = frozenset({-32})

# Our cap, not a confirmed Zalo limit (redai-zalo-sdk documents at most 5 *elements*).
MAX_LIST_BUTTONS = 5
MAX_TITLE_CHARS = 100
MAX_SUBTITLE_CHARS = 500
MAX_BACKOFF_SECONDS = 30.0


def mask_user_id(user_id: str) -> str:
    """First 4 characters and an ellipsis: enough to correlate log lines, not to identify."""
    return f"{str(user_id)[:4]}…"


class TokenStore(Protocol):
    """Where the OA token pair lives. The gateway provides a database-backed one.

    `save` must be durable before it returns: Zalo's refresh tokens are single-use, so a new
    pair that is used but not stored is lost on restart and the OA has to be re-authorised.
    """

    async def get(self) -> tuple[str, str]:
        """The current (access_token, refresh_token)."""
        ...

    async def save(self, access: str, refresh: str) -> None:
        """Replace the stored pair."""
        ...


class MemoryTokenStore:
    """A `TokenStore` in process memory: tests and single-process development only."""

    def __init__(self, access: str, refresh: str) -> None:
        self._pair = (access, refresh)
        self.saves = 0

    async def get(self) -> tuple[str, str]:
        return self._pair

    async def save(self, access: str, refresh: str) -> None:
        self._pair = (access, refresh)
        self.saves += 1

    def __repr__(self) -> str:  # never show the tokens, even in a debugger or a test failure
        return f"MemoryTokenStore(saves={self.saves})"


@dataclass
class SendResult:
    """The outcome of one send.

    ok: Zalo accepted the message (error 0). permanent: resending this message cannot help
    (user unreachable, body rejected) — the outbox should give up. code: Zalo's error code, or
    the HTTP status for a transport-level failure, or None (connection error, timeout).
    message: a short human-readable reason (Zalo's own message when there is one).
    """

    ok: bool
    permanent: bool
    code: int | None
    message: str
    message_id: str | None = None


class ZaloAuthError(Exception):
    """The token refresh failed: the refresh token is bad, rotated or expired, or the OAuth
    endpoint could not be reached. An operator may have to re-authorise the OA."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class _Transient(Exception):
    """Internal: one attempt failed in a way that may succeed later."""

    def __init__(self, code: int | None, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after = retry_after


class ZaloClient:
    """Send customer-service messages to Zalo users on behalf of one Official Account.

    The aiohttp session is the caller's (its timeout is the per-request timeout). Token refresh
    is single-flight: concurrent sends that all hit an expired token trigger one refresh and
    then reuse the new token, because a second refresh with the already-rotated refresh token
    would fail and lock the OA out.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        store: TokenStore,
        app_id: str,
        app_secret: str,
        api_base: str,
        oauth_base: str,
        max_attempts: int = 5,
        base_delay: float = 0.5,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self._session = session
        self._store = store
        self._app_id = app_id
        self._app_secret = app_secret
        self._api_base = api_base.rstrip("/")
        self._oauth_base = oauth_base.rstrip("/")
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self._lock = asyncio.Lock()
        # The access token in use and a counter bumped whenever it changes. Both are read
        # together without an await in between, so a sender knows which generation its token
        # belongs to and, after a token error, whether someone already replaced it.
        self._access: str | None = None
        self._generation = 0
        # A refresh token Zalo has rejected: senders do not try it again (one refresh attempt
        # per dead token, not one per waiting sender); a new pair in the store clears this.
        self._dead_refresh: str | None = None

    def __repr__(self) -> str:
        return f"ZaloClient(app_id={self._app_id!r}, api_base={self._api_base!r})"

    # ------------------------------------------------------------------ public sends

    async def send_text(self, user_id: str, text: str) -> SendResult:
        """Send one text message. `text` must already fit (see `split.split_text`)."""
        if not text or not text.strip():
            raise ValueError("empty text")
        if len(text) > TEXT_LIMIT:
            raise ValueError(f"text longer than {TEXT_LIMIT} characters; split it first")
        body = {"recipient": {"user_id": user_id}, "message": {"text": text}}
        return await self._post_message(body)

    async def send_list(self, user_id: str, title: str, buttons: list[dict]) -> SendResult:
        """Send `title` with up to 5 `oa.query.show` buttons as a list template.

        A tapped button makes Zalo send its payload back to us as if the user had typed it. If
        Zalo rejects the template (a failure that is not a token error), `code` tells the caller
        which error it was, and the caller may resend as text with `split.buttons_as_text`.
        """
        if not buttons:
            raise ValueError("send_list needs at least one button")
        if len(buttons) > MAX_LIST_BUTTONS:
            raise ValueError(f"at most {MAX_LIST_BUTTONS} buttons; use the text fallback")
        return await self._post_message(self.list_body(user_id, title, buttons))

    @staticmethod
    def list_body(user_id: str, title: str, buttons: list[dict]) -> dict[str, Any]:
        """The request body for `send_list` (public so tests and the fallback logic can see it)."""
        element: dict[str, Any] = {"title": _clip(title, MAX_TITLE_CHARS)}
        if len(title.strip()) > MAX_TITLE_CHARS:
            # The full question goes into the subtitle when the title had to be shortened.
            element["subtitle"] = _clip(title, MAX_SUBTITLE_CHARS)
        zalo_buttons = []
        for button in buttons:
            label = str(button.get("title") or button.get("payload") or "").strip()
            payload = str(button.get("payload") or label)
            zalo_buttons.append(
                {
                    "title": _clip(label, MAX_TITLE_CHARS),
                    "type": "oa.query.show",
                    "payload": payload,
                }
            )
        return {
            "recipient": {"user_id": user_id},
            "message": {
                "attachment": {
                    "type": "template",
                    "payload": {
                        "template_type": "list",
                        "elements": [element],
                        "buttons": zalo_buttons,
                    },
                }
            },
        }

    # ------------------------------------------------------------------ tokens

    async def refresh(self) -> str:
        """Exchange the stored refresh token for a new pair; store it; return the access token.

        Serialised with the send path's refresh so two refreshes never race with the same
        (single-use) refresh token. Raises `ZaloAuthError` on any failure; never retries, never
        loops — a rejected refresh token will not become valid by asking again.
        """
        async with self._lock:
            return await self._refresh_locked()

    async def _current_token(self) -> tuple[str, int]:
        if self._access is None:
            async with self._lock:
                if self._access is None:
                    access, _ = await self._store.get()
                    self._access = access
                    self._generation += 1
        assert self._access is not None
        return self._access, self._generation

    async def _renew_after_token_error(self, failed: str, generation: int) -> tuple[str, int]:
        """Get a usable token after `failed` (of `generation`) was rejected: single-flight."""
        async with self._lock:
            if self._generation == generation:
                stored, stored_refresh = await self._store.get()
                if stored and stored != failed:
                    # Another process (or an operator) already stored a newer pair.
                    self._access = stored
                    self._generation += 1
                elif stored_refresh == self._dead_refresh:
                    raise ZaloAuthError("refresh token already rejected; re-authorise the OA")
                else:
                    await self._refresh_locked()
            assert self._access is not None
            return self._access, self._generation

    async def _refresh_locked(self) -> str:
        # Read the refresh token from the store every time: another process may have rotated it.
        _, refresh_token = await self._store.get()
        form = {
            "refresh_token": refresh_token,
            "app_id": self._app_id,
            "grant_type": "refresh_token",
        }
        headers = {"secret_key": self._app_secret}
        url = self._oauth_base + TOKEN_PATH
        log.info("zalo: refreshing the OA access token")
        try:
            async with self._session.post(url, data=form, headers=headers) as resp:
                status = resp.status
                try:
                    payload = await resp.json(content_type=None)
                except ValueError:
                    payload = None
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            # If the request reached Zalo, the old refresh token may already be spent; nothing
            # we can do about that here, so say so in the log.
            log.error("zalo: token refresh request failed (%s)", type(exc).__name__)
            raise ZaloAuthError(f"token refresh request failed: {type(exc).__name__}") from None

        if not isinstance(payload, dict) or status != 200:
            log.error("zalo: token refresh answered HTTP %s", status)
            raise ZaloAuthError(f"token refresh answered HTTP {status}", code=status)
        access = payload.get("access_token")
        new_refresh = payload.get("refresh_token")
        if not isinstance(access, str) or not access or not isinstance(new_refresh, str):
            code = payload.get("error")
            code = code if isinstance(code, int) else None
            reason = payload.get("error_description") or payload.get("message") or "no token"
            log.error("zalo: token refresh rejected (error %s)", code)
            self._dead_refresh = refresh_token
            raise ZaloAuthError(f"token refresh rejected: {reason}", code=code)

        # Persist first: the old refresh token is already dead, so a crash between using the
        # new pair and saving it would lock the OA out.
        await self._store.save(access, new_refresh)
        self._access = access
        self._generation += 1
        log.info("zalo: OA access token refreshed (generation %d)", self._generation)
        return access

    # ------------------------------------------------------------------ the one send path

    async def _post_message(self, body: dict[str, Any]) -> SendResult:
        """POST `body` to the message endpoint with token refresh and transient retries.

        - error 0: success.
        - -216/-220: refresh the token once (single-flight) and resend; a second token error
          is returned as a (non-permanent) failure.
        - -230/-232 and other body/user errors in PERMANENT_ERRORS: permanent failure, no retry.
        - HTTP 5xx/429, timeouts, connection errors, non-JSON answers, Zalo rate-limit codes:
          retried with exponential backoff and jitter, at most `max_attempts` attempts; then a
          non-permanent failure so the caller's outbox can try again later. A timed-out request
          may still have been delivered: a retry can duplicate a message, which we accept over
          losing it.
        - any other Zalo error: returned at once as a non-permanent failure.
        """
        who = mask_user_id(str(body.get("recipient", {}).get("user_id", "")))
        token, generation = await self._current_token()
        refreshed = False
        attempt = 0
        while True:
            attempt += 1
            try:
                payload = await self._send_once(token, body)
            except _Transient as failure:
                if attempt >= self.max_attempts:
                    log.warning(
                        "zalo: send to %s failed after %d attempts (%s)",
                        who,
                        attempt,
                        failure.message,
                    )
                    return SendResult(False, False, failure.code, failure.message)
                delay = self._backoff(attempt, failure.retry_after)
                log.info(
                    "zalo: send to %s: %s; retry %d/%d in %.2fs",
                    who,
                    failure.message,
                    attempt + 1,
                    self.max_attempts,
                    delay,
                )
                await asyncio.sleep(delay)
                continue

            code = payload.get("error")
            message = str(payload.get("message") or "")
            if code == 0:
                data = payload.get("data") if isinstance(payload.get("data"), dict) else {}
                message_id = data.get("message_id")
                log.debug("zalo: sent to %s", who)
                return SendResult(
                    True, False, 0, message or "Success", str(message_id) if message_id else None
                )
            if not isinstance(code, int):
                return SendResult(False, False, None, "answer without an error code")
            if code in TOKEN_ERRORS:
                if refreshed:
                    log.error("zalo: send to %s: token rejected again after refresh", who)
                    return SendResult(False, False, code, message)
                refreshed = True
                try:
                    token, generation = await self._renew_after_token_error(token, generation)
                except ZaloAuthError as exc:
                    return SendResult(False, False, code, f"token refresh failed: {exc}")
                continue  # a resend after a refresh does not use up a retry attempt
            if code in RATE_LIMIT_ERRORS:
                if attempt >= self.max_attempts:
                    log.warning("zalo: send to %s rate-limited %d times", who, attempt)
                    return SendResult(False, False, code, message)
                delay = self._backoff(attempt, None)
                log.info("zalo: send to %s rate-limited (%d); retry in %.2fs", who, code, delay)
                await asyncio.sleep(delay)
                continue
            permanent = code in PERMANENT_ERRORS
            log.warning(
                "zalo: send to %s rejected (error %d%s)",
                who,
                code,
                ", permanent" if permanent else "",
            )
            return SendResult(False, permanent, code, message)

    async def _send_once(self, token: str, body: dict[str, Any]) -> dict[str, Any]:
        url = self._api_base + MESSAGE_PATH
        try:
            async with self._session.post(url, json=body, headers={"access_token": token}) as resp:
                status = resp.status
                if status == 429 or status >= 500:
                    raise _Transient(
                        status, f"HTTP {status}", _retry_after(resp.headers.get("Retry-After"))
                    )
                try:
                    payload = await resp.json(content_type=None)
                except ValueError:
                    payload = None
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            name = "timeout" if isinstance(exc, asyncio.TimeoutError) else type(exc).__name__
            raise _Transient(None, name) from None
        if status != 200:
            # 4xx other than 429: not something a retry fixes, but not Zalo's verdict on this
            # message either (a proxy, a wrong base URL) — let the outbox decide.
            if isinstance(payload, dict) and isinstance(payload.get("error"), int):
                return payload
            return {"error": status, "message": f"HTTP {status}"}
        if not isinstance(payload, dict):
            raise _Transient(status, "answer is not a JSON object")
        return payload

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        """Exponential backoff with jitter: base * 2^(attempt-1), scaled by 0.5-1.0."""
        ceiling = min(self.base_delay * (2 ** (attempt - 1)), MAX_BACKOFF_SECONDS)
        delay = random.uniform(ceiling / 2, ceiling)
        if retry_after is not None:
            delay = max(delay, min(retry_after, MAX_BACKOFF_SECONDS))
        return delay


def _clip(text: str, limit: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None

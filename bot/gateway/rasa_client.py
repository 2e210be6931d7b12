"""Thin client for the Rasa REST channel and the health endpoints of Rasa and the actions.

The gateway owns one `aiohttp.ClientSession` for its whole life (connection pooling, one
timeout policy); this wrapper keeps the URL layout and the reply clean-up in one place so
the handlers only deal with "a list of messages" or `RasaUnavailable`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, TypedDict

import aiohttp

log = logging.getLogger("bot.gateway")

HEALTH_TIMEOUT = 3.0  # seconds; a health probe must answer fast or count as down


class Button(TypedDict):
    title: str
    payload: str


class BotMessage(TypedDict):
    text: str
    buttons: list[Button]


class RasaUnavailable(Exception):
    """Rasa could not give a usable answer (down, timeout, 5xx, malformed reply).

    The reason is for the operator's log only; citizens get a fixed apology.
    """


def _clean_buttons(raw: Any) -> list[Button]:
    buttons: list[Button] = []
    if not isinstance(raw, list):
        return buttons
    for item in raw:
        if not isinstance(item, dict):
            continue
        title = item.get("title")
        payload = item.get("payload")
        if not isinstance(title, str) or not title.strip():
            continue
        # A button without payload would be dead in the UI; sending its title is what a
        # citizen typing it would do.
        buttons.append({"title": title, "payload": payload if isinstance(payload, str) else title})
    return buttons


def parse_rasa_messages(data: Any) -> list[BotMessage]:
    """Reduce the REST channel's reply to `{"text", "buttons"}` items.

    Rasa sends a list of dicts that may carry `text`, `buttons`, `image`, `custom`,
    `attachment`; the web client only renders text and buttons, so items with neither
    are dropped. Raises `RasaUnavailable` if the reply is not a list at all, since that
    means we are not talking to a working Rasa REST channel.
    """
    if not isinstance(data, list):
        raise RasaUnavailable(f"reply is {type(data).__name__}, expected a list")
    messages: list[BotMessage] = []
    for item in data:
        if not isinstance(item, dict):
            continue
        text = item.get("text")
        text = text if isinstance(text, str) else ""
        buttons = _clean_buttons(item.get("buttons"))
        if not text.strip() and not buttons:
            continue
        messages.append({"text": text, "buttons": buttons})
    return messages


class RasaClient:
    """Calls Rasa's REST webhook and probes Rasa and the action server for /healthz."""

    def __init__(self, session: aiohttp.ClientSession, rasa_url: str, actions_url: str) -> None:
        self.session = session
        self.rasa_url = rasa_url.rstrip("/")
        self.actions_url = actions_url.rstrip("/")

    @property
    def webhook_url(self) -> str:
        return f"{self.rasa_url}/webhooks/rest/webhook"

    async def send(
        self, sender: str, message: str, metadata: dict[str, Any]
    ) -> list[BotMessage]:
        """Send one user message; return the bot's replies or raise `RasaUnavailable`."""
        body = {"sender": sender, "message": message, "metadata": metadata}
        try:
            async with self.session.post(self.webhook_url, json=body) as resp:
                raw = await resp.read()
                if resp.status != 200:
                    raise RasaUnavailable(f"HTTP {resp.status} from {self.webhook_url}")
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            # TimeoutError's str() is empty; the class name is what tells the operator.
            raise RasaUnavailable(f"{type(exc).__name__}: {exc}") from exc
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise RasaUnavailable(f"invalid JSON from Rasa: {exc}") from exc
        return parse_rasa_messages(data)

    async def _probe(self, url: str) -> tuple[int, bytes]:
        timeout = aiohttp.ClientTimeout(total=HEALTH_TIMEOUT)
        async with self.session.get(url, timeout=timeout) as resp:
            return resp.status, await resp.content.read(4096)

    async def _probe_ok(self, url: str) -> tuple[bool, str, bytes]:
        """GET `url`; (ok, detail, body) where ok means it answered HTTP 200."""
        try:
            status, body = await self._probe(url)
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            return False, f"{url}: {type(exc).__name__} {exc}".strip(), b""
        if status != 200:
            return False, f"{url}: HTTP {status}", body
        return True, "HTTP 200", body

    async def check_rasa(self) -> tuple[bool, str]:
        """Rasa's root answers 200 "Hello from Rasa: <version>" once the server is up."""
        ok, detail, body = await self._probe_ok(f"{self.rasa_url}/")
        if not ok:
            return False, detail
        return True, body.decode("utf-8", "replace").strip()[:100] or detail

    async def check_actions(self) -> tuple[bool, str]:
        """The Rasa SDK action server answers `{"status": "ok"}` on /health."""
        url = f"{self.actions_url}/health"
        ok, detail, body = await self._probe_ok(url)
        if not ok:
            return False, detail
        try:
            data = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return False, f"{url}: reply is not JSON"
        if not isinstance(data, dict) or data.get("status") != "ok":
            return False, f"{url}: unexpected reply {str(data)[:100]}"
        return True, "status ok"

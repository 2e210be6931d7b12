"""Client for the Rasa REST channel of one or several Rasa replicas, and the health probes.

The gateway owns one `aiohttp.ClientSession` for its whole life (connection pooling, one
timeout policy); this wrapper keeps the URL layout, the routing between replicas and the
reply clean-up in one place so the handlers only deal with "a list of messages" or
`RasaUnavailable`.

Several replicas (README "Scaling out"): each conversation goes to the replica that
rendezvous hashing picks for its sender id, so a conversation stays on one replica (its
model and caches warm, no lock contention) and only the conversations of a replica that
goes away move. A replica that refuses connections is skipped for `DOWN_SECONDS` and the
conversation goes to its next replica in hash order. A replica that drops the connection
after taking the message may or may not have answered: the next replica is asked for the
conversation's tracker first (the shared tracker store) and, when the message is already
there, its stored answer is returned instead of answering it a second time.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
import uuid
from collections.abc import Sequence
from typing import Any, TypedDict
from urllib.parse import quote

import aiohttp

log = logging.getLogger("bot.gateway")

HEALTH_TIMEOUT = 3.0  # seconds; a health probe must answer fast or count as down
DOWN_SECONDS = 5.0  # a replica that refused a connection is skipped this long
MESSAGE_ID_KEY = "dvc_message_id"  # metadata key that finds a message again in a tracker


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


def replica_order(sender: str, urls: Sequence[str]) -> list[str]:
    """Replicas in the order a conversation tries them: rendezvous (highest random weight)
    hashing of (replica, sender). Adding or removing a replica moves only the conversations
    that hash to it; no ring or virtual nodes to tune for a handful of replicas."""
    def weight(url: str) -> bytes:
        return hashlib.blake2b(f"{url}\x00{sender}".encode(), digest_size=8).digest()

    return sorted(urls, key=weight, reverse=True)


class _NotDelivered(Exception):
    """The replica could not be reached: the message certainly did not arrive."""


class _Dropped(Exception):
    """The replica took the request and then went away: it may have answered."""


def answer_in_tracker(tracker: Any, message_id: str) -> list[dict[str, Any]] | None:
    """The bot's messages that followed the user message `message_id` in a tracker, in the
    REST channel's shape; None when that message is not in the tracker."""
    events = tracker.get("events") if isinstance(tracker, dict) else None
    if not isinstance(events, list):
        return None
    found, out = False, []
    for ev in events:
        if not isinstance(ev, dict):
            continue
        if ev.get("event") == "user":
            if found:
                break
            meta = ev.get("metadata")
            found = isinstance(meta, dict) and meta.get(MESSAGE_ID_KEY) == message_id
        elif found and ev.get("event") == "bot":
            data = ev.get("data") if isinstance(ev.get("data"), dict) else {}
            out.append({"text": ev.get("text") or "", "buttons": data.get("buttons") or []})
    return out if found else None


def _any_up(urls: Sequence[str], results: Sequence[tuple[bool, str]],
            noun: str) -> tuple[bool, str]:
    """One server's check as it is; several: ok while one is up, naming those that are not."""
    if len(results) == 1:
        return results[0]
    up = sum(ok for ok, _ in results)
    details = "; ".join(f"{u}: {'up' if ok else d}"
                        for u, (ok, d) in zip(urls, results, strict=True))
    return up > 0, f"{up}/{len(results)} {noun} up ({details})"


class RasaClient:
    """Sends user messages to Rasa's REST webhook (one replica per conversation, with
    failover) and probes Rasa and the action server for /healthz."""

    def __init__(self, session: aiohttp.ClientSession, rasa_urls: str | Sequence[str],
                 actions_url: str | Sequence[str], token: str = "") -> None:
        self.session = session
        # RASA_TOKEN, for Rasa's API (the tracker read); the REST webhook needs none.
        self._token = token
        urls = [rasa_urls] if isinstance(rasa_urls, str) else list(rasa_urls)
        self.rasa_urls = [u.rstrip("/") for u in urls if u.strip()]
        if not self.rasa_urls:
            raise ValueError("at least one Rasa URL is needed")
        actions = [actions_url] if isinstance(actions_url, str) else list(actions_url)
        self.actions_urls = [u.rstrip("/") for u in actions if u.strip()]
        self._down_until: dict[str, float] = {}

    @property
    def rasa_url(self) -> str:
        return self.rasa_urls[0]

    @property
    def actions_url(self) -> str:
        return self.actions_urls[0]

    @property
    def webhook_url(self) -> str:
        return f"{self.rasa_url}/webhooks/rest/webhook"

    def replicas_for(self, sender: str) -> list[str]:
        """The replicas to try for `sender`: its hash order, known-down ones last."""
        order = replica_order(sender, self.rasa_urls)
        now = time.monotonic()
        up = [u for u in order if self._down_until.get(u, 0.0) <= now]
        return up + [u for u in order if u not in up]

    async def send(
        self, sender: str, message: str, metadata: dict[str, Any]
    ) -> list[BotMessage]:
        """Send one user message; return the bot's replies or raise `RasaUnavailable`."""
        message_id = uuid.uuid4().hex
        body = {"sender": sender, "message": message,
                "metadata": {**metadata, MESSAGE_ID_KEY: message_id}}
        replicas = self.replicas_for(sender)
        reasons: list[str] = []
        for i, url in enumerate(replicas):
            try:
                data = await self._post(url, body)
            except _NotDelivered as exc:
                self._down_until[url] = time.monotonic() + DOWN_SECONDS
                reasons.append(str(exc))
                if len(replicas) > 1:
                    log.warning("rasa replica %s unreachable (%s); trying the next", url, exc)
                continue
            except _Dropped as exc:
                self._down_until[url] = time.monotonic() + DOWN_SECONDS
                reasons.append(str(exc))
                rest = replicas[i + 1:]
                if not rest:
                    break
                # Did the lost replica answer before it went away? Ask the shared tracker.
                stored = await self._stored_answer(rest[0], sender, message_id)
                if stored is not None:
                    log.warning("rasa replica %s went away after answering; stored answer "
                                "returned", url)
                    return parse_rasa_messages(stored)
                log.warning("rasa replica %s went away before answering (%s); trying the "
                            "next", url, exc)
                continue
            return parse_rasa_messages(data)
        raise RasaUnavailable("; ".join(reasons) or "no Rasa replica")

    async def _post(self, url: str, body: dict[str, Any]) -> Any:
        webhook = f"{url}/webhooks/rest/webhook"
        try:
            async with self.session.post(webhook, json=body) as resp:
                raw = await resp.read()
                if resp.status != 200:
                    raise RasaUnavailable(f"HTTP {resp.status} from {webhook}")
        except aiohttp.ClientConnectorError as exc:
            raise _NotDelivered(f"{webhook}: {type(exc).__name__}: {exc}") from exc
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError,
                aiohttp.ClientPayloadError) as exc:
            raise _Dropped(f"{webhook}: {type(exc).__name__}: {exc}") from exc
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            # A timeout is not failed over: the replica may still be answering, and a
            # second replica would answer the same message again. TimeoutError's str() is
            # empty; the class name is what tells the operator.
            raise RasaUnavailable(f"{type(exc).__name__}: {exc}") from exc
        try:
            return json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise RasaUnavailable(f"invalid JSON from Rasa: {exc}") from exc

    async def _stored_answer(self, url: str, sender: str, message_id: str
                             ) -> list[dict[str, Any]] | None:
        """The answer to `message_id` already in the shared tracker store (via `url`), or
        None when the message is not there or the tracker cannot be read."""
        tracker_url = f"{url}/conversations/{quote(sender, safe='')}/tracker"
        params = {"include_events": "ALL", **({"token": self._token} if self._token else {})}
        try:
            async with self.session.get(tracker_url, params=params) as resp:
                if resp.status != 200:
                    return None
                tracker = json.loads((await resp.read()).decode("utf-8"))
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError, ValueError,
                UnicodeDecodeError, RecursionError) as exc:
            log.warning("could not read tracker from %s: %s", url, type(exc).__name__)
            return None
        return answer_in_tracker(tracker, message_id)

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
        """Rasa's root answers 200 "Hello from Rasa: <version>" once a server is up; with
        several replicas, ok while at least one is (the others' conversations fail over),
        and the detail says which are down."""
        results = await asyncio.gather(*(self._check_one_rasa(u) for u in self.rasa_urls))
        return _any_up(self.rasa_urls, results, "replicas")

    async def _check_one_rasa(self, url: str) -> tuple[bool, str]:
        ok, detail, body = await self._probe_ok(f"{url}/")
        if not ok:
            return False, detail
        return True, body.decode("utf-8", "replace").strip()[:100] or detail

    async def check_actions(self) -> tuple[bool, str]:
        """The Rasa SDK action server answers `{"status": "ok"}` on /health; with several,
        ok while at least one is."""
        results = await asyncio.gather(*(self._check_one_actions(u)
                                         for u in self.actions_urls))
        return _any_up(self.actions_urls, results, "action servers")

    async def _check_one_actions(self, base: str) -> tuple[bool, str]:
        url = f"{base}/health"
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

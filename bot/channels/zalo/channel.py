"""The Zalo Official Account channel in the gateway: webhook in, answers out, nothing lost.

`POST /webhooks/zalo` checks the signature, stores the event (deduplicated by msg_id) and
answers 200 at once; a background worker asks Rasa and queues the replies in the database;
another sends them through the OA API and marks them sent. Both resume from the database
after a restart or an outage (see queue.py). Delivery is at-least-once: a crash in the
instant between Zalo accepting a reply and the database recording it would resend that one
reply; every other failure is retried without duplicates.

Every event and every reply is handled on its own: one that keeps failing (a bug on one
message, a reply Zalo keeps refusing) is retried with backoff and then set aside as a dead
letter (queue.py), while the others keep flowing; a failed answering round does not keep the
replies already queued from going out.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import time
import traceback
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from sqlalchemy.exc import OperationalError

from bot.channels.zalo import queue
from bot.channels.zalo.client import SendResult, ZaloClient, mask_user_id
from bot.channels.zalo.events import WELCOME, ZaloEvent, attachment_reply, dedup_key, parse_event
from bot.channels.zalo.signature import SIGNATURE_HEADER, SignatureError, verify
from bot.channels.zalo.split import buttons_as_text, choice_from_number, split_text
from bot.config import Settings
from bot.gateway.errors import error_response, json_response, read_body
from bot.gateway.rasa_client import RasaClient, RasaUnavailable
from bot.gateway.validation import too_long_message
from bot.handover import texts as handover_texts
from bot.handover.desk import HANDOVER_KEY, HandoverDesk
from bot.text import mask_pii

log = logging.getLogger("bot.gateway.zalo")

MAX_EVENT_BYTES = 64 * 1024
MARK_SENT_ATTEMPTS = 6  # about 15 s of retries before the round fails (and resends)
POLL_SECONDS = 1.0  # how often the workers look for retries that have come due
EVENTS_PER_ROUND = 50  # then the round delivers what it queued; the next one goes on
LIST_TITLE = "Bạn chọn một mục bên dưới nhé"


@dataclass
class ZaloChannel:
    """The running channel: settings, the OA client and the wake-up signal of the workers."""

    settings: Settings
    client: ZaloClient
    rasa: Callable[[], RasaClient]
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    handover: Callable[[], HandoverDesk | None] = lambda: None
    tasks: list[asyncio.Task] = field(default_factory=list)
    # This worker's name on the user leases (queue.claim): unique per process and channel.
    owner: str = field(default_factory=lambda: f"{socket.gethostname()[:40]}-{os.getpid()}-"
                       f"{uuid.uuid4().hex[:8]}")

    @property
    def url(self) -> str:
        return self.settings.database_url

    @property
    def limits(self) -> dict[str, Any]:
        """When a failing event or reply becomes a dead letter (queue.event_failed,
        queue.mark_failed): ZALO_MAX_ATTEMPTS tries, or ZALO_MAX_AGE_HOURS after it came."""
        return {"max_attempts": self.settings.zalo_max_attempts,
                "max_age": timedelta(hours=self.settings.zalo_max_age_hours)}


ZALO_KEY = web.AppKey("zalo", ZaloChannel)


def configured(settings: Settings) -> bool:
    return bool(settings.zalo_app_id and settings.zalo_oa_secret_key)


# --------------------------------------------------------------------------- webhook


async def webhook(request: web.Request) -> web.Response:
    """POST /webhooks/zalo: verify, store once, answer 200 quickly; the work happens later."""
    channel = request.app.get(ZALO_KEY)
    if channel is None:
        return error_response(404, "zalo_not_configured",
                              "Kênh Zalo chưa được cấu hình (ZALO_APP_ID, ZALO_OA_SECRET_KEY).")
    # 413 (connection closed: the rest is unread) via the error middleware.
    raw = await read_body(request, MAX_EVENT_BYTES, "Sự kiện quá lớn.")
    s = channel.settings
    try:
        verify(request.headers.get(SIGNATURE_HEADER), raw, s.zalo_app_id,
               s.zalo_oa_secret_key, int(time.time() * 1000),
               int(s.zalo_signature_window * 1000))
    except SignatureError as exc:  # the body is never logged
        log.warning("zalo webhook refused from %s: %s (%s)", request.remote, exc.reason, exc)
        return error_response(401, "bad_signature", "Chữ ký sự kiện không hợp lệ.")
    try:
        event = parse_event(json.loads(raw))
    except (ValueError, RecursionError):
        event = parse_event(None)
    key = dedup_key(event)
    if key is None:  # echoes of our own messages, delivery receipts, unknown events
        return json_response({"ok": True, "ignored": event.name})
    fresh = await asyncio.to_thread(queue.record_event, channel.url, key, event.user_id, raw)
    if fresh:
        channel.wake.set()
    return json_response({"ok": True, "duplicate": not fresh})


# --------------------------------------------------------------------------- workers


def merge_parts(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rasa's REST channel splits one answer at blank lines: join the parts back (a part
    with buttons ends an answer, its buttons go under it)."""
    merged: list[dict[str, Any]] = []
    for m in messages:
        prev = merged[-1] if merged else None
        if prev is not None and not prev["buttons"]:
            prev["text"] = f"{prev['text']}\n\n{m['text']}".strip()
            prev["buttons"] = m["buttons"]
        else:
            merged.append({"text": m["text"], "buttons": list(m["buttons"])})
    return merged


def replies_for(messages: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """The outbox rows of Rasa's answer: text parts under Zalo's limit, buttons as a list."""
    out: list[tuple[str, dict[str, Any]]] = []
    for m in merge_parts(messages):
        out.extend(("text", {"text": part}) for part in split_text(m["text"]) if part)
        if m["buttons"]:
            buttons = [{"title": b["title"][:100], "payload": b["payload"]}
                       for b in m["buttons"][:5]]
            out.append(("list", {"title": LIST_TITLE, "buttons": buttons,
                                 "fallback": buttons_as_text(buttons)}))
    return out


def too_long_reply(text: str, limit: int) -> str | None:
    """The chat API's refusal of a text over `limit` (MAX_MESSAGE_BYTES) UTF-8 bytes, or None.

    Zalo accepts long texts and the webhook stores them (nothing accepted is dropped), but,
    as in the chat API, neither the assistant nor a person on the handover gets more than
    the limit: the citizen is asked to shorten the question instead.
    """
    if len(text.encode("utf-8", "surrogatepass")) <= limit:
        return None
    return too_long_message(limit)


async def _answer(channel: ZaloChannel, event: ZaloEvent, inbox_id: int | None = None
                  ) -> list[tuple[str, dict[str, Any]]]:
    """What to send for one event (RasaUnavailable propagates: the event stays queued)."""
    if event.kind == "text" and event.user_id and event.text:
        refusal = too_long_reply(event.text, channel.settings.max_message_bytes)
        if refusal is not None:
            log.info("zalo: text of %d characters from %s refused as too long",
                     len(event.text), mask_user_id(event.user_id))
            return [("text", {"text": refusal})]
    desk = channel.handover()
    if desk is not None and event.user_id and event.kind in ("text", "attachment"):
        # A person handles this conversation: the message goes to them, the bot stays
        # silent (the handover's own notes are already in the outbox). The inbox id makes
        # an event processed twice after a crash a single message.
        text = event.text if event.kind == "text" else handover_texts.attachment(
            event.attachment)
        routed = await desk.route(f"zalo-{event.user_id}", text or "", with_pending=False,
                                  external_id=f"zalo-inbox:{inbox_id}" if inbox_id else None)
        if routed is not None:
            return []
    if event.kind == "attachment":
        return [("text", {"text": attachment_reply(event.attachment)})]
    if event.kind == "follow":
        return [("text", {"text": WELCOME})]
    if event.kind != "text" or not event.user_id or not event.text:
        return []  # unfollow is recorded in the inbox; nothing to answer
    text = event.text
    buttons = await asyncio.to_thread(queue.last_buttons, channel.url, event.user_id)
    chosen = choice_from_number(text, buttons) if buttons else None
    messages = await channel.rasa().send(f"zalo-{event.user_id}", chosen or text,
                                         {"channel": "zalo"})
    return replies_for(messages) or [("text", {"text": "Dạ, mình chưa có câu trả lời cho "
                                               "câu này. Bạn hỏi lại giúp mình nhé."})]


def describe(exc: BaseException) -> str:
    """A failure as the dead-letter list and the log show it: the exception's type, message
    and where it was raised (enough to find the bug), personal data masked (a message may
    quote the citizen)."""
    where = ""
    frames = traceback.extract_tb(exc.__traceback__)
    if frames:
        where = f" ({Path(frames[-1].filename).name}:{frames[-1].lineno})"
    return mask_pii(f"{type(exc).__name__}: {exc}{where}")[:queue.ERROR_CHARS]


async def process_inbox(channel: ZaloChannel) -> int:
    """Answer the stored events that are due; returns how many were done.

    Each event is handled on its own (`_process_event`): one that fails is recorded for a
    retry and the others go on; only the assistant being unavailable ends the round (every
    event would fail the same way). A user's events are answered in order: while one waits
    for a retry, the user's later ones wait too.
    """
    done = tried = 0
    held: list[str] = []
    skipped: set[str] = set()  # users another worker holds, or that must wait (order)
    try:
        for item in await asyncio.to_thread(queue.pending_events, channel.url):
            key = item.user_id or ""
            if key in skipped:
                continue
            if tried >= EVENTS_PER_ROUND:
                break
            if not item.due:
                skipped.add(key)
                continue
            # Several gateways may run this worker: a user's events are answered only by
            # the worker holding that user's lease, one at a time and in order.
            if not await asyncio.to_thread(queue.claim, channel.url, channel.owner, key):
                skipped.add(key)
                continue
            if key not in held:
                held.append(key)
            raw = await asyncio.to_thread(queue.event_to_process, channel.url, item.id)
            if raw is None:  # another worker answered it, or failed it, after our list
                skipped.add(key)
                continue
            tried += 1
            outcome = await _process_event(channel, item, raw)
            if outcome == "unavailable":
                break  # keep order; the next round retries
            if outcome == "done":
                done += 1
            elif outcome == "failed":
                skipped.add(key)  # retried later; a dead letter no longer holds the user
    finally:
        await asyncio.to_thread(queue.release, channel.url, channel.owner, held)
    return done


async def _process_event(channel: ZaloChannel, item: queue.PendingEvent, raw: str) -> str:
    """Answer one event and queue its replies: "done", "raced" (another worker did it),
    "failed" (recorded, retried later), "dead" (recorded, given up: a dead letter) or
    "unavailable" (the assistant is down: not the event's fault, so no attempt is counted;
    only the age limit applies)."""
    try:
        event = parse_event(json.loads(raw))
    except (ValueError, RecursionError):
        event = parse_event(None)
    who = mask_user_id(item.user_id or "")
    try:
        replies = await _answer(channel, event, item.id)
        if await asyncio.to_thread(queue.complete, channel.url, item.id, event.user_id,
                                   replies):
            return "done"
        return "raced"
    except RasaUnavailable as exc:
        log.warning("zalo: assistant unavailable, event %d stays queued: %s", item.id, exc)
        if queue.utcnow() - item.since >= channel.limits["max_age"]:
            await asyncio.to_thread(queue.event_failed, channel.url, item.id, describe(exc),
                                    count=False, **channel.limits)
            log.error("zalo: event %d of %s waited too long for the assistant: dead letter",
                      item.id, who)
        return "unavailable"
    except Exception as exc:  # noqa: BLE001 - one event's failure must not stop the others
        error = describe(exc)
        dead = await asyncio.to_thread(queue.event_failed, channel.url, item.id, error,
                                       **channel.limits)
        if dead:
            log.error("zalo: event %d of %s failed for good, now a dead letter: %s",
                      item.id, who, error)
            return "dead"
        log.warning("zalo: event %d of %s failed, retried later: %s", item.id, who, error)
        return "failed"


async def _send(channel: ZaloChannel, item: queue.Outgoing) -> SendResult:
    if item.kind == "list":
        result = await channel.client.send_list(item.user_id, item.body["title"],
                                                item.body["buttons"])
        # Transport failures and unreachable users are the outbox's business; any other
        # Zalo error means the template itself was refused.
        if result.ok or result.code is None or result.code >= 0 or result.code in (-230, -232):
            return result
        # Zalo refused the template itself: the numbered text list says the same.
        return await channel.client.send_text(item.user_id, item.body["fallback"])
    return await channel.client.send_text(item.user_id, item.body["text"])


async def _record_sent(url: str, outbox_id: int, message_id: str | None) -> None:
    """Mark a reply Zalo accepted as sent, retrying while the database is briefly
    unavailable (a lock held by another writer, PostgreSQL restarting): a reply left
    "pending" after Zalo took it would be sent to the citizen a second time."""
    for attempt in range(MARK_SENT_ATTEMPTS):
        try:
            await asyncio.to_thread(queue.mark_sent, url, outbox_id, message_id)
            return
        except OperationalError as exc:
            if attempt == MARK_SENT_ATTEMPTS - 1:
                raise
            log.warning("zalo: reply %d sent but not recorded yet (%s); retrying",
                        outbox_id, type(exc.orig).__name__ if exc.orig else exc)
            await asyncio.sleep(min(5.0, 0.5 * 2 ** attempt))


async def deliver(channel: ZaloChannel) -> int:
    """Send the replies that are due; returns how many Zalo accepted."""
    sent = 0
    held: list[str] = []
    try:
        for item in await asyncio.to_thread(queue.due, channel.url):
            # Only the worker holding the user's lease sends (once, in order).
            if not await asyncio.to_thread(queue.claim, channel.url, channel.owner,
                                           item.user_id):
                continue
            held.append(item.user_id)
            if not await asyncio.to_thread(queue.still_due, channel.url, item.id):
                continue  # another worker sent it after our list was read
            sent += await _deliver_one(channel, item)
    finally:
        await asyncio.to_thread(queue.release, channel.url, channel.owner, held)
    return sent


async def _deliver_one(channel: ZaloChannel, item: queue.Outgoing) -> int:
    """Send one due reply and record the outcome; 1 when Zalo accepted it.

    A reply that cannot even be sent (our own error) is a failed try like a refusal by
    Zalo: retried, then a dead letter, never a round that fails for every reply behind it.
    """
    try:
        result = await _send(channel, item)
    except Exception as exc:  # noqa: BLE001 - one reply's failure must not stop the others
        result = SendResult(False, False, None, describe(exc))
    if result.ok:
        await _record_sent(channel.url, item.id, result.message_id)
        return 1
    status = await asyncio.to_thread(
        queue.mark_failed, channel.url, item.id, result.permanent,
        f"{result.code}: {result.message}", queue.retry_delay(item.attempts + 1),
        **channel.limits)
    log.warning("zalo: reply %d to %s not sent (%s %s)%s", item.id,
                mask_user_id(item.user_id), result.code, result.message,
                {"undeliverable": ", given up", "dead": ", given up: dead letter"}.get(status, ""))
    return 0


async def run_round(channel: ZaloChannel) -> bool:
    """Answer, then deliver, each step on its own: a failed answering round (the database
    briefly away, a bug) must not keep the replies already queued from going out. False
    when a step failed (logged)."""
    ok = True
    for step in (process_inbox, deliver):
        try:
            await step(channel)
        except Exception:  # a bug or a database hiccup must not stop the channel
            log.exception("zalo worker: %s failed; retrying", step.__name__)
            ok = False
    return ok


async def _worker(channel: ZaloChannel) -> None:
    """Process and deliver whenever woken, and every POLL_SECONDS for retries."""
    while True:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(channel.wake.wait(), POLL_SECONDS)
        channel.wake.clear()
        if not await run_round(channel):
            await asyncio.sleep(POLL_SECONDS)


def zalo_ctx(settings: Settings, rasa_key: web.AppKey
             ) -> Callable[[web.Application], AsyncIterator[None]]:
    """Cleanup context: the OA client and the worker, only when Zalo is configured."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        if not configured(settings):
            yield
            return
        timeout = aiohttp.ClientTimeout(total=15)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            store = queue.DbTokenStore(settings.database_url, settings.zalo_access_token,
                                       settings.zalo_refresh_token)
            client = ZaloClient(session, store, settings.zalo_app_id, settings.zalo_app_secret,
                                settings.zalo_api_base, settings.zalo_oauth_base,
                                max_attempts=2, base_delay=0.2)
            channel = ZaloChannel(settings, client, lambda: app[rasa_key],
                                  handover=lambda: app.get(HANDOVER_KEY))
            app[ZALO_KEY] = channel
            channel.tasks.append(asyncio.create_task(_worker(channel), name="zalo-worker"))
            channel.wake.set()  # resume what a previous run left queued
            log.info("zalo channel on (webhook /webhooks/zalo)")
            try:
                yield
            finally:
                for task in channel.tasks:
                    task.cancel()
                await asyncio.gather(*channel.tasks, return_exceptions=True)

    return ctx

"""Application status questions: the receipt-code form and the lookup.

`status_form` asks for the code when the citizen has not given it (`action_ask_receipt_code`),
`validate_status_form` accepts a code in any tolerated spelling and re-asks once with an
example on something code-like that is not a code, then gives up with directions;
"thôi" / "không" cancel (`action_cancel_status`). `action_check_status` looks the code up
in the configured source, rate-limited per conversation so nobody enumerates codes, and
answers with the status, the due date in working days and the next step.

Enumeration (issue 18, item 5): the conversation's limit is bypassed by a new sender id per
request, so look-ups are also limited per client address and for all clients together, in
the database (bot/status/limits.py). The client is what the gateway saw, never what the
request body said: the gateway puts a pseudonymous key of the address in the message's
metadata; a Zalo conversation's client is its Zalo user. A look-up refused by those limits
gets exactly the answer of an unknown code (`miss_text`), so a walker cannot tell "no such
code" from "refused" and learns nothing from the codes it tries after the limit.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time
from typing import Any

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.catalog_client import get_client
from bot.client_address import CLIENT_METADATA_KEY, client_key
from bot.config import Settings
from bot.fees.service import vietnam_today
from bot.status.answer import render_status
from bot.status.codes import CodeMatcher, mask_code, matcher_for
from bot.status.limits import ADMITTED, LookupLimits, admit
from bot.status.record import StatusSource, StatusUnavailable
from bot.status.sources import make_source
from bot.status.workdays import calendar_for

log = logging.getLogger(__name__)

SLOT = "receipt_code"
ATTEMPTS = "receipt_code_attempts"
LOOKUPS = "status_lookups"
MAX_ATTEMPTS = 2  # the first wrong code is re-asked with an example; the second ends the form
MAX_CODES_PER_MESSAGE = 3  # "mã A và mã B": each answered, up to this many

WHERE_TO_FIND = ("Mã hồ sơ in trên giấy biên nhận (phiếu hẹn trả kết quả); nếu nộp trực tuyến, "
                 "mã có trong tin nhắn hoặc thư điện tử xác nhận và trong mục \u201cQuản lý hồ "
                 "sơ\u201d trên cổng dịch vụ công.")

_CLIENT_KEY_RE = re.compile(r"[0-9a-f]{32}")  # bot.client_address.client_key's shape

_SOURCES: dict[tuple[str, ...], StatusSource] = {}


def _source(settings: Settings) -> StatusSource:
    """One source per configuration for the life of the action server (HTTP keeps a pool)."""
    key = (settings.status_source, settings.database_url, settings.status_http_url,
           settings.status_http_token, str(settings.status_http_timeout),
           settings.status_http_fields, settings.status_http_statuses)
    if key not in _SOURCES:
        _SOURCES[key] = make_source(settings)
    return _SOURCES[key]


def _matcher(settings: Settings) -> CodeMatcher:
    return matcher_for(settings.receipt_code_patterns)


def _attempts(tracker: Tracker) -> int:
    try:
        return int(tracker.get_slot(ATTEMPTS) or 0)
    except (TypeError, ValueError):
        return 0


def lookup_client(tracker: Tracker) -> str:
    """Whose look-up this is, for the per-client limit: the key the gateway put in the
    message's metadata; for Zalo the user (the sender id is "zalo-<user id>", from a signed
    webhook); anything else (`rasa shell`, Rasa called without the gateway) shares one key.
    """
    metadata = (tracker.latest_message or {}).get("metadata")
    metadata = metadata if isinstance(metadata, dict) else {}
    key = metadata.get(CLIENT_METADATA_KEY)
    if isinstance(key, str) and _CLIENT_KEY_RE.fullmatch(key):
        return key
    if metadata.get("channel") == "zalo" and tracker.sender_id.startswith("zalo-"):
        return client_key(tracker.sender_id)
    return client_key(None)


def miss_text(code: str, settings: Settings) -> str:
    """The answer to an unknown code, and to a look-up the per-client or global limit
    refused: one text, so that the answer does not tell which (see the module docstring).
    It still tells a citizen with a real code what to do."""
    return (f"Hiện mình không tìm thấy hồ sơ có mã {code}. Bạn kiểm tra lại mã trên giấy biên "
            "nhận giúp mình (chú ý các dấu chấm, dấu gạch ngang). Nếu mã đã đúng, có thể hồ sơ "
            "vừa nộp chưa được cập nhật, hồ sơ nộp ở tỉnh, thành phố khác không có trong hệ "
            "thống này, hoặc việc tra cứu đang tạm giới hạn để bảo vệ thông tin hồ sơ: bạn vui "
            f"lòng thử lại sau, tra cứu tại {settings.portal_url} (mục Tra cứu hồ sơ) hoặc gọi "
            f"tổng đài {settings.support_hotline}.")


def _unavailable_text(code: str, settings: Settings) -> str:
    return ("Hệ thống tra cứu hồ sơ đang tạm thời không truy cập được, mình chưa xem "
            f"được tình trạng hồ sơ {code}. Bạn vui lòng thử lại sau ít phút, hoặc "
            f"tra cứu tại {settings.portal_url} (mục Tra cứu hồ sơ).")


def _code_key(code: str) -> str:
    """A lookup as remembered in the tracker: a short hash, not the code itself."""
    return hashlib.sha256(code.encode()).hexdigest()[:12]


def recent_lookups(entries: list[str] | None, now: float, window_s: float) -> dict[str, float]:
    """Code hash → last lookup time, for lookups within the window."""
    out: dict[str, float] = {}
    for entry in entries or []:
        stamp, _, key = str(entry).partition(":")
        try:
            t = float(stamp)
        except ValueError:
            continue
        if key and now - t < window_s:
            out[key] = max(t, out.get(key, 0.0))
    return out


def rate_limited(entries: list[str] | None, code: str, now: float, limit: int,
                 window_minutes: float) -> bool:
    """Whether looking up `code` now exceeds `limit` distinct codes per window.

    Asking again about a code already looked up in the window is free: only new codes
    count, because enumeration means trying many codes.
    """
    if limit <= 0 or window_minutes <= 0:
        return False
    recent = recent_lookups(entries, now, window_minutes * 60)
    return _code_key(code) not in recent and len(recent) >= limit


def remember_lookup(entries: list[str] | None, code: str, now: float,
                    window_minutes: float) -> list[str]:
    """The slot's new value: this lookup added, expired ones dropped (the slot stays small)."""
    window_s = max(window_minutes, 1) * 60
    recent = recent_lookups(entries, now, window_s)
    recent[_code_key(code)] = now
    return [f"{int(t)}:{k}" for k, t in sorted(recent.items(), key=lambda kv: kv[1])]


class ValidateStatusForm(FormValidationAction):
    """Accept a receipt code in any tolerated spelling; count what is not one."""

    def name(self) -> str:
        return "validate_status_form"

    def validate_receipt_code(self, slot_value: Any, dispatcher: CollectingDispatcher,
                              tracker: Tracker, domain: DomainDict) -> dict[str, Any]:
        settings = Settings.from_env()
        if isinstance(slot_value, list):  # several codes in one message: Rasa makes a list
            slot_value = " ".join(map(str, slot_value))
        code = _matcher(settings).first(str(slot_value or ""))
        if code:
            return {SLOT: code}
        attempts = _attempts(tracker) + 1
        log.info("status form: not a receipt code (attempt %d)", attempts)
        if attempts >= MAX_ATTEMPTS:
            # Ends the form (Rasa: a validation that sets requested_slot to None finishes
            # the loop); action_check_status then explains where to find the code.
            return {SLOT: None, ATTEMPTS: attempts, "requested_slot": None}
        return {SLOT: None, ATTEMPTS: attempts}


class AskReceiptCode(Action):
    """Ask for the code; after a wrong one, say so and show what a code looks like."""

    def name(self) -> str:
        return "action_ask_receipt_code"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
            domain: DomainDict) -> list[EventType]:
        settings = Settings.from_env()
        matcher = _matcher(settings)
        attempts = _attempts(tracker)
        text = (tracker.latest_message or {}).get("text") or ""
        wrong = matcher.looks_like_attempt(text) if attempts == 0 else None
        events: list[EventType] = []
        if wrong:  # "tra cứu hồ sơ 000.00.20-2503": the first message already held a bad code
            attempts = 1
            events.append(SlotSet(ATTEMPTS, attempts))
        if attempts >= 1:
            shown = wrong or matcher.looks_like_attempt(text)
            what = f"\u201c{shown}\u201d" if shown else "Nội dung bạn vừa gửi"
            dispatcher.utter_message(
                text=(f"{what} chưa đúng dạng mã hồ sơ. Mã hồ sơ có dạng như "
                      f"{matcher.example}. {WHERE_TO_FIND}\n\nBạn nhập lại mã giúp mình, "
                      "hoặc nhắn \u201cthôi\u201d để hủy tra cứu."))
        else:
            dispatcher.utter_message(
                text=(f"Bạn cho mình xin mã hồ sơ (ví dụ {matcher.example}) để mình tra cứu "
                      f"nhé. {WHERE_TO_FIND} Nhắn \u201cthôi\u201d nếu bạn không muốn tra "
                      "cứu nữa."))
        return events


class CancelStatus(Action):
    """The citizen cancelled the lookup ("thôi", "không có mã")."""

    def name(self) -> str:
        return "action_cancel_status"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
            domain: DomainDict) -> list[EventType]:
        dispatcher.utter_message(
            text=("Vâng, mình dừng tra cứu hồ sơ. Khi có mã hồ sơ, bạn chỉ cần nhắn mã cho "
                  f"mình là được. {WHERE_TO_FIND}"))
        return [SlotSet(SLOT, None), SlotSet(ATTEMPTS, 0)]


def _procedure_name(code: str | None) -> str | None:
    if not code:
        return None
    try:
        client = get_client()
        with client.session() as s:
            proc = client.get(s, code)
            return proc.display_name if proc is not None else None
    except Exception:  # noqa: BLE001 - a catalog problem must not hide the status
        log.exception("status: catalog lookup of procedure %s failed", code)
        return None


class CheckStatus(Action):
    """Look the code(s) up and answer; every outcome resets the form's slots."""

    def name(self) -> str:
        return "action_check_status"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: DomainDict) -> list[EventType]:
        settings = Settings.from_env()
        events: list[EventType] = [SlotSet(SLOT, None), SlotSet(ATTEMPTS, 0)]
        codes = self.codes(tracker, settings)
        if not codes:
            dispatcher.utter_message(
                text=("Mình vẫn chưa nhận được mã hồ sơ đúng dạng (ví dụ "
                      f"{_matcher(settings).example}), nên tạm dừng tra cứu. {WHERE_TO_FIND} "
                      f"Bạn cũng có thể tra cứu tại {settings.portal_url} (mục Tra cứu hồ sơ) "
                      "hoặc nhắn “gặp cán bộ” để được hỗ trợ."))
            return events
        entries = tracker.get_slot(LOOKUPS)
        remembered = False
        for code in codes:
            now = time.time()
            if rate_limited(entries, code, now, settings.status_lookup_limit,
                            settings.status_lookup_window):
                log.warning("status: lookup limit reached in a conversation (code %s)",
                            mask_code(code))
                dispatcher.utter_message(text=(
                    f"Bạn đã tra cứu {settings.status_lookup_limit} mã hồ sơ khác nhau trong "
                    "thời gian ngắn. Để bảo vệ thông tin hồ sơ của người dân, mình tạm dừng tra "
                    f"cứu mã mới trong khoảng {settings.status_lookup_window:g} phút. Bạn có "
                    f"thể tra cứu tại {settings.portal_url} (mục Tra cứu hồ sơ) hoặc nhắn "
                    "“gặp cán bộ”."))
                break
            entries = remember_lookup(entries, code, now, settings.status_lookup_window)
            remembered = True
            events += await self.answer(dispatcher, settings, code, lookup_client(tracker))
        if remembered:
            events.append(SlotSet(LOOKUPS, entries))
        return events

    @staticmethod
    def codes(tracker: Tracker, settings: Settings) -> list[str]:
        """The code of the form, or every code of the message when it named several.

        "000.00.20.H26-250312-0045 và G22.15-250301-0007": each is answered (at most
        MAX_CODES_PER_MESSAGE, each counted by the rate limit).
        """
        code = tracker.get_slot(SLOT)
        if isinstance(code, list):  # several entities in one message: Rasa makes a list
            code = code[0] if code else None
        text = (tracker.latest_message or {}).get("text") or ""
        found = list(dict.fromkeys(c for c, _, _ in _matcher(settings).find(text)))
        if code and code in found and len(found) > 1:
            return found[:MAX_CODES_PER_MESSAGE]
        return [code] if code else []

    @staticmethod
    async def admitted(settings: Settings, code: str, client: str) -> bool:
        """The per-client and global limits (bot/status/limits.py); a database that cannot
        count raises StatusUnavailable: refusing then is safer than an unlimited source."""
        try:
            verdict = await asyncio.to_thread(admit, settings.database_url, client, code,
                                              LookupLimits.from_settings(settings))
        except Exception as exc:  # noqa: BLE001 - any database trouble: "try later"
            raise StatusUnavailable(f"look-up limits: {type(exc).__name__}") from exc
        if verdict != ADMITTED:
            # For operators only: the citizen's answer is the unknown code's.
            log.warning("status: %s look-up limit reached (code %s)", verdict, mask_code(code))
        return verdict == ADMITTED

    @classmethod
    async def answer(cls, dispatcher: CollectingDispatcher, settings: Settings,
                     code: str, client: str) -> list[EventType]:
        try:
            app = (await _source(settings).lookup(code)
                   if await cls.admitted(settings, code, client) else None)
        except StatusUnavailable as exc:
            log.warning("status: source unavailable for %s: %s", mask_code(code), exc)
            dispatcher.utter_message(text=_unavailable_text(code, settings))
            return []
        if app is None:
            log.info("status: %s not found or refused", mask_code(code))
            dispatcher.utter_message(text=miss_text(code, settings))
            return []
        log.info("status: %s → %s", mask_code(code), app.status)
        name = _procedure_name(app.procedure_code)
        dispatcher.utter_message(text=render_status(
            app, name, vietnam_today(), calendar_for(settings.work_calendar)))
        # Follow-ups ("lệ phí bao nhiêu?") are about this application's procedure.
        return [SlotSet("procedure_code", app.procedure_code)] if name else []

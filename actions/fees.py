"""Fee answers: the resolver's amounts per channel, their basis, reductions and exemptions.

The province comes from the conversation ("tôi ở Đà Nẵng") or else the deployment's
PROVINCE; the citizen's situation ("tôi thuộc hộ nghèo") from the conversation. Both are
slots, so a follow-up fee question keeps them, and declaring one re-answers the fee of the
procedure being discussed. Wording is here so every answer says a fee the same way.
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass
from datetime import date
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.catalog_client import get_client
from actions.formatting import heading, link, money
from bot.catalog.models import Procedure
from bot.config import Settings
from bot.fees.provinces import Province, find_province, province_in_text
from bot.fees.rules import Decision
from bot.fees.service import FeeBook, FeeInputError, LiveFeeBook, parse_day, vietnam_today
from bot.fees.situations import SITUATIONS, situations_in_text
from bot.text import fold

log = logging.getLogger(__name__)

CHANNEL_NAMES = {"online": "Nộp trực tuyến", "in_person": "Nộp trực tiếp",
                 "post": "Nộp qua bưu chính"}
# Words that name a submission channel in a citizen's message (folded).
CHANNEL_WORDS = {
    "online": ("truc tuyen", "online", "onl", "qua mang", "tren mang", "cong dich vu cong",
               "dvc", "vneid"),
    "in_person": ("truc tiep", "tai quay", "mot cua", "den nop", "toi nop", "nop tai"),
    "post": ("buu chinh", "buu dien"),
}

_BOOK: LiveFeeBook | None = None
_BOOK_LOCK = threading.Lock()


def get_book() -> FeeBook:
    """The override rules, re-read when an operator edits them (`bot run` refuses invalid
    files at start; otherwise invalid files mean national rules until they are fixed)."""
    global _BOOK
    with _BOOK_LOCK:
        if _BOOK is None:
            settings = Settings.from_env()
            _BOOK = LiveFeeBook(settings.fee_overrides_dir, settings.catalog_refresh,
                                strict=False, database_url=settings.database_url)
        return _BOOK.get()


_CLAUSES = re.compile(r"[.,;!?\n]|\bnhung\b|\bma\b")
_NEGATION = re.compile(r"\b(?:khong|ko|k|chua|cha)\b")
_QUESTION_END = re.compile(r"\s(?:khong|ko|k|chua)\s*(?:a|vay|nhi|nhe)?\s*$")


def declared_situations(text: str) -> list[str]:
    """Exempt groups a citizen says they belong to; a negated clause declares nothing.

    "tôi không thuộc hộ nghèo" must not exempt anyone, so clauses (split at punctuation,
    "nhưng", "mà") with a negation are skipped. The legal texts use the same tagger without
    this filter ("không thu lệ phí đối với hộ nghèo" names a group). A question's final
    "không" is not a negation: "hộ nghèo có được miễn không" is answered for that group.
    """
    tags: list[str] = []
    for clause in _CLAUSES.split(fold(text)):
        # "hộ nghèo có phải nộp không?" asks about the group: the final "không" asks.
        if _NEGATION.search(_QUESTION_END.sub("", clause)):
            continue
        tags.extend(t for t in situations_in_text(clause) if t not in tags)
    return tags


def channel_in_text(text: str) -> str | None:
    """The one channel a message names ("nộp online thì sao"), None for none or several."""
    words = f" {' '.join(fold(text).split())} "
    named = [ch for ch, keys in CHANNEL_WORDS.items() if any(f" {k} " in words for k in keys)]
    return named[0] if len(named) == 1 else None


@dataclass
class FeeContext:
    """Everything besides the procedure that decides a fee."""

    day: date
    province: Province | None
    situation: tuple[str, ...]
    channel: str | None = None
    named: bool = False  # the province was named in this message (then it is remembered)


def fee_context(tracker: Tracker, settings: Settings, text: str) -> FeeContext:
    """Province and situation from this message, else the slots, else the configuration."""
    named = province_in_text(text)
    slot = tracker.get_slot("province")
    province = named or (find_province(slot) if slot else None) or (
        find_province(settings.province) if settings.province else None)
    declared = list(tracker.get_slot("situation") or [])
    for tag in declared_situations(text):
        if tag not in declared:
            declared.append(tag)
    try:
        day = parse_day(settings.fee_date)
    except FeeInputError:  # `bot run` refuses a bad FEE_DATE; a bare action server says today
        day = vietnam_today()
    return FeeContext(day, province, tuple(t for t in declared if t in SITUATIONS),
                      channel_in_text(text), named=named is not None)


def context_events(ctx: FeeContext, tracker: Tracker) -> list[EventType]:
    """Slot events that remember what this message declared."""
    events: list[EventType] = []
    if ctx.named and ctx.province and ctx.province.code != tracker.get_slot("province"):
        events.append(SlotSet("province", ctx.province.code))
    if list(ctx.situation) != list(tracker.get_slot("situation") or []):
        events.append(SlotSet("situation", list(ctx.situation)))
    return events


# For answers rendered outside a conversation (tests, previews): no slots, no message.
EMPTY_TRACKER = Tracker(sender_id="", slots={}, latest_message={}, events=[], paused=False,
                        followup_action=None, active_loop={}, latest_action_name=None)


def online_fee(p: Procedure, ctx: FeeContext, book: FeeBook | None = None) -> str:
    """The online fee in words, with the reason when a local rule or reduction decided it."""
    book = book or get_book()
    d = book.decide(p, "online", ctx.day, ctx.province.code if ctx.province else None,
                    ctx.situation)
    return money(d.amount) + _why(d, ctx)


def _why(d: Decision, ctx: FeeContext) -> str:
    """Why the amount differs from the catalog's standard one (nothing for the standard)."""
    r = d.rule
    if r is None:
        return ""
    if r.kind == "exemption":
        groups = ", ".join(SITUATIONS[t] for t in r.exempt_tags if t in ctx.situation)
        return f" — được miễn vì bạn thuộc diện {groups}"
    if r.kind == "local":
        where = ctx.province.short if ctx.province else "địa phương"
        return f" — theo quy định riêng của {where}"
    if r.kind == "reduction":
        until = f" đến hết ngày {r.valid_to:%d/%m/%Y}" if r.valid_to else ""
        share = f" (bằng {r.percent:g}% mức thu)" if r.percent is not None else ""
        return f" — mức giảm tạm thời{share}" + (f", áp dụng{until}" if until else "")
    return ""


def fee_lines(p: Procedure, ctx: FeeContext,
              book: FeeBook | None = None) -> tuple[list[str], list[str], list[int | None]]:
    """The fee lines (title + one per channel), the notes, and the amounts decided."""
    book = book or get_book()
    code = ctx.province.code if ctx.province else None
    channels = [ctx.channel] if ctx.channel else None
    decisions = book.decide_channels(p, ctx.day, code, ctx.situation, channels)
    where = f" tại {ctx.province.short}" if ctx.province else ""
    lines = [f"Phí, lệ phí{where} (áp dụng ngày {ctx.day:%d/%m/%Y}):"]
    for d in decisions:
        lines.append(f"• {CHANNEL_NAMES[d.channel]}: {money(d.amount)}{_why(d, ctx)}.")
    notes: list[str] = []
    # Which channels each basis is for; an unknown amount cites nothing (it has no basis).
    bases: dict[str, list[str]] = {}
    for d in decisions:
        if d.legal_basis and d.amount is not None:
            bases.setdefault(d.legal_basis, []).append(CHANNEL_NAMES[d.channel].lower())
    if len(bases) == 1 and len(decisions) == len(next(iter(bases.values()))):
        notes.append(f"Căn cứ: {next(iter(bases))}.")
    elif bases:
        notes.append("Căn cứ: " + "; ".join(f"{', '.join(chs)} — {basis}"
                                            for basis, chs in bases.items()) + ".")
    if any(d.amount is None for d in decisions):
        if p.fee_set_by:
            notes.append("Mức thu cụ thể do Hội đồng nhân dân cấp tỉnh quyết định; bạn xem "
                         "thêm tại bộ phận một cửa hoặc cổng dịch vụ công của tỉnh, thành phố.")
        else:
            notes.append("Khoản nào chưa có số tiền thì danh mục chưa ghi rõ; bạn xem thêm "
                         "tại đường dẫn dưới.")
    exemptions = [e for d in decisions for e in d.exemptions]
    used = any(d.rule is not None and d.rule.kind == "exemption" for d in decisions)
    if exemptions and not used:
        tags = list(dict.fromkeys(t for e in exemptions for t in e.exempt_tags))
        if tags:
            groups = ", ".join(SITUATIONS[t] for t in tags if t in SITUATIONS)
            notes.append(f"Được miễn lệ phí: {groups}. Bạn có thuộc một trong các trường hợp "
                         "này không? Nếu có, bạn nhắn cho mình (ví dụ \u201ctôi thuộc hộ "
                         "nghèo\u201d) để mình tính lại nhé.")
        else:
            text = exemptions[0].exempt_text or ""
            notes.append(f"Có trường hợp được miễn lệ phí theo quy định: {text}")
    return lines, notes, [d.amount for d in decisions]


def render_fee(p: Procedure, ctx: FeeContext, settings: Settings,
               book: FeeBook | None = None) -> str:
    """The fee answer: one line per channel (or the one asked), basis, end dates, exemptions."""
    lines, notes, _ = fee_lines(p, ctx, book)
    body = "\n".join(lines)
    if notes:
        body += "\n\n" + "\n".join(notes)
    return f"Thủ tục {heading(p)}.\n\n{body}\n\n{link(p, settings.portal_url)}"


class SetFeeContext(Action):
    """The citizen says where they live or which exempt group they belong to.

    The slots are updated; when a procedure is being discussed its fee is answered again
    with the new context, otherwise the bot confirms and asks which procedure.
    """

    def name(self) -> str:
        return "action_set_fee_context"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
            domain: dict[str, Any]) -> list[EventType]:
        settings = Settings.from_env()
        text = (tracker.latest_message or {}).get("text") or ""
        province = province_in_text(text)
        tags = declared_situations(text)
        if province is None and not tags:
            dispatcher.utter_message(
                text="Bạn cho mình biết bạn làm thủ tục ở tỉnh, thành phố nào (ví dụ "
                     "\u201ctôi ở Hà Nội\u201d), hoặc bạn thuộc diện nào (hộ nghèo, người có "
                     "công, người khuyết tật…) để mình tính đúng lệ phí nhé.")
            return []
        ctx = fee_context(tracker, settings, text)
        events = context_events(ctx, tracker)
        code = tracker.get_slot("procedure_code")
        client = get_client()
        with client.session() as s:
            p = client.get(s, code) if code else None
            if p is not None:
                ctx.channel = None  # declaring a context re-answers every channel
                dispatcher.utter_message(text=render_fee(p, ctx, settings))
                return events
        said = []
        if province:
            said.append(f"mình sẽ tính lệ phí theo quy định áp dụng tại {province.short}")
        if tags:
            said.append("mình đã ghi nhận bạn thuộc diện "
                        + ", ".join(SITUATIONS[t] for t in tags))
        dispatcher.utter_message(text="Dạ, " + "; ".join(said) + ". Bạn cần hỏi lệ phí thủ "
                                 "tục nào ạ?")
        return events

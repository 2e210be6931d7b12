"""Actions that answer procedure questions (papers, fee, time, place, online, how-to).

All six share one flow (work out the procedure, then word one kind of fact), so they are
subclasses of `ProcedureAnswer` that only differ in `render`. Every answer names the
procedure and its code and links to the portal; a fact the catalog lacks is said to be
missing, never invented.
"""

from __future__ import annotations

import json
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.catalog_client import Resolution, get_client
from actions.fees import (
    EMPTY_TRACKER,
    FeeContext,
    context_events,
    fee_context,
    online_fee,
    render_fee,
)
from actions.formatting import UNKNOWN, bullet_lines, channel_label, duration, heading, link
from bot.catalog.models import Channel, Procedure
from bot.config import Settings
from bot.text import mask_pii

log = logging.getLogger(__name__)
ONLINE_WHERE = ("Bạn nộp trực tuyến trên Cổng Dịch vụ công quốc gia ({portal}) hoặc cổng dịch "
                "vụ công của tỉnh, thành phố nơi bạn làm thủ tục.")

# Offered after the candidate buttons, so a citizen whose procedure is not among them has a
# way out that forgets the wrong guess (the payload's intent has a rule to NoneOfThese).
NONE_OF_THESE_INTENT = "none_of_these"
NONE_OF_THESE_BUTTON = {"title": "Không phải thủ tục nào ở trên",
                        "payload": f"/{NONE_OF_THESE_INTENT}"}
# The hand-over (rule: request_human → action_request_human), offered when search failed.
HANDOFF_BUTTON = {"title": "Gặp cán bộ", "payload": "/request_human"}
REPHRASE = ("Dạ, vậy là mình chưa tìm đúng thủ tục bạn cần, xin lỗi bạn. Bạn mô tả lại giúp "
            "mình bằng cách khác nhé: bạn muốn làm việc gì và muốn nhận được giấy tờ gì, ví dụ "
            "\u201cđăng ký xe máy mới mua để được cấp biển số\u201d hay \u201ccon mới sinh, "
            "cần làm giấy khai sinh\u201d.\n\nBạn cũng có thể tự tìm thủ tục trên Cổng Dịch vụ "
            "công quốc gia ({portal}), hoặc chọn \u201cGặp cán bộ\u201d để được người hỗ trợ "
            "trực tiếp.")


class ProcedureAnswer(Action, ABC):
    """Resolve the procedure from entities, the message or the conversation, then answer."""

    intent = "ask_procedure"
    action_name = "action_answer_procedure"

    def name(self) -> str:
        return self.action_name

    @abstractmethod
    def render(self, p: Procedure, settings: Settings) -> str:
        """The answer text for this kind of question about procedure `p`."""

    def answer(self, p: Procedure, settings: Settings, tracker: Tracker,
               text: str) -> tuple[str, list[EventType]]:
        """The answer and any slot events; answers that depend on context override this."""
        return self.render(p, settings), []

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
            domain: dict[str, Any]) -> list[EventType]:
        settings = Settings.from_env()
        message = tracker.latest_message or {}
        text = message.get("text") or ""
        entities = message.get("entities") or []
        client = get_client()
        with client.session() as s:
            res = client.resolve(s, entities, text, tracker.get_slot("procedure_code"))
            if res.procedure is not None:
                log.info("%s: %s → %s", self.action_name, mask_pii(text[:200]), res.procedure.code)
                buttons = self._buttons(res.alternatives)
                reply, extra = self.answer(res.procedure, settings, tracker, text)
                if buttons:
                    reply += "\n\nNếu bạn hỏi về thủ tục khác, bạn chọn bên dưới nhé."
                dispatcher.utter_message(text=reply, buttons=buttons)
                return [SlotSet("procedure_code", res.procedure.code), *extra]
            self._clarify(dispatcher, res)
        return []

    def _buttons(self, results: list) -> list[dict[str, str]]:
        """Buttons that ask this same question about another procedure."""
        return [
            {"title": c.name,
             "payload": f"/{self.intent}" + json.dumps({"procedure": c.code}, ensure_ascii=False)}
            for c in results[:3]
        ]

    def _clarify(self, dispatcher: CollectingDispatcher, res: Resolution) -> None:
        """Offer up to 3 likely procedures as buttons, or say that nothing matched."""
        if res.candidates:
            # The way out comes last, after the (at most 3) procedures it refers to.
            buttons = [*self._buttons(res.candidates), dict(NONE_OF_THESE_BUTTON)]
            dispatcher.utter_message(
                text="Bạn đang hỏi về thủ tục nào dưới đây? Bạn chọn giúp mình nhé.",
                buttons=buttons,
            )
            return
        if res.mentioned:
            dispatcher.utter_message(
                text=(f"Mình chưa tìm thấy thủ tục \u201c{res.mentioned}\u201d trong danh mục "
                      "của mình. Bạn thử gọi tên thủ tục theo cách khác (ví dụ: \u201cđăng ký "
                      "khai sinh\u201d, \u201ccấp đổi căn cước\u201d), hoặc nhắn \u201cgặp cán "
                      "bộ\u201d để được hỗ trợ trực tiếp nhé."))
            return
        dispatcher.utter_message(
            text=("Bạn muốn hỏi về thủ tục nào ạ? Bạn cho mình biết tên thủ tục (ví dụ: "
                  "\u201cđăng ký khai sinh\u201d, \u201clàm hộ chiếu\u201d, \u201ccấp lại căn "
                  "cước\u201d) để mình tra cứu giúp nhé."))


class AnswerProcedure(ProcedureAnswer):
    """How the procedure works: what it is, its steps, what the citizen receives."""

    intent = "ask_procedure"
    action_name = "action_answer_procedure"

    def render(self, p: Procedure, settings: Settings) -> str:
        parts = [f"Thủ tục {heading(p)}."]
        if p.summary:
            parts.append(p.summary)
        if p.steps:
            parts.append("Các bước thực hiện:\n" + "\n".join(
                f"{i}. {s.text}" for i, s in enumerate(p.steps, 1)))
        else:
            parts.append(f"Các bước thực hiện: {UNKNOWN}.")
        if p.result:
            parts.append(f"Kết quả nhận được: {p.result}.")
        parts.append("Bạn có thể hỏi thêm: cần giấy tờ gì, lệ phí bao nhiêu, bao lâu có kết "
                     "quả, nộp ở đâu, làm online được không.")
        parts.append(link(p, settings.portal_url))
        return "\n\n".join(parts)


class AnswerDocuments(ProcedureAnswer):
    """The papers of the application file, one per line with copies."""

    intent = "ask_documents"
    action_name = "action_answer_documents"

    def render(self, p: Procedure, settings: Settings) -> str:
        if not p.documents:
            body = f"Thành phần hồ sơ: {UNKNOWN}. Bạn vui lòng xem chi tiết tại đường dẫn dưới."
        else:
            items = []
            for d in p.documents:
                item = d.name
                if d.copies:
                    item += f" ({d.copies})"
                if d.case:
                    item += f" — {d.case}"
                items.append(item)
            body = "Hồ sơ cần chuẩn bị:\n" + bullet_lines(items)
        return f"Thủ tục {heading(p)}.\n\n{body}\n\n{link(p, settings.portal_url)}"


def per_channel(p: Procedure, title: str, fact: Callable[[Channel], str]) -> str:
    """One line per submission channel with `fact` of it, or "unknown" with no channel."""
    if not p.channels:
        return f"{title}: {UNKNOWN}."
    return f"{title}:\n" + bullet_lines([f"{channel_label(ch)}: {fact(ch)}" for ch in p.channels])


class AnswerFee(ProcedureAnswer):
    """The fee per submission channel from the fee resolver (province, date, exemptions)."""

    intent = "ask_fee"
    action_name = "action_answer_fee"

    def render(self, p: Procedure, settings: Settings) -> str:
        return render_fee(p, fee_context(EMPTY_TRACKER, settings, ""), settings)

    def answer(self, p: Procedure, settings: Settings, tracker: Tracker,
               text: str) -> tuple[str, list[EventType]]:
        ctx = fee_context(tracker, settings, text)
        return render_fee(p, ctx, settings), context_events(ctx, tracker)


class AnswerProcessingTime(ProcedureAnswer):
    """How long each channel takes."""

    intent = "ask_processing_time"
    action_name = "action_answer_processing_time"

    def render(self, p: Procedure, settings: Settings) -> str:
        body = per_channel(p, "Thời hạn giải quyết", duration)
        return f"Thủ tục {heading(p)}.\n\n{body}\n\n{link(p, settings.portal_url)}"


class AnswerWhere(ProcedureAnswer):
    """Which office handles it, at which level, and through which channels."""

    intent = "ask_where"
    action_name = "action_answer_where"

    def render(self, p: Procedure, settings: Settings) -> str:
        lines = [f"Cơ quan thực hiện: {p.agency or UNKNOWN}."]
        if p.level:
            lines.append(f"Cấp thực hiện: {p.level}.")
        if p.authority and p.authority != p.agency:
            lines.append(f"Cơ quan có thẩm quyền: {p.authority}.")
        if p.channels:
            lines.append("Cách nộp hồ sơ: " + ", ".join(
                channel_label(ch).lower() for ch in p.channels) + ".")
            if any(ch.channel == "online" for ch in p.channels):
                lines.append(ONLINE_WHERE.format(portal=settings.portal_url))
        body = "\n".join(lines)
        return f"Thủ tục {heading(p)}.\n\n{body}\n\n{link(p, settings.portal_url)}"


class AnswerOnline(ProcedureAnswer):
    """Whether it can be done online and how."""

    intent = "ask_online"
    action_name = "action_answer_online"

    def render(self, p: Procedure, settings: Settings) -> str:
        return self.render_in(p, settings, fee_context(EMPTY_TRACKER, settings, ""))

    def answer(self, p: Procedure, settings: Settings, tracker: Tracker,
               text: str) -> tuple[str, list[EventType]]:
        ctx = fee_context(tracker, settings, text)
        return self.render_in(p, settings, ctx), context_events(ctx, tracker)

    def render_in(self, p: Procedure, settings: Settings, ctx: FeeContext) -> str:
        online = [ch for ch in p.channels if ch.channel == "online"]
        if online:
            ch = online[0]
            body = ("Có, thủ tục này nộp trực tuyến được. "
                    + (p.online_howto or ONLINE_WHERE.format(portal=settings.portal_url))
                    + "\nLệ phí khi nộp trực tuyến: " + online_fee(p, ctx) + "."
                    + f"\nThời hạn giải quyết: {duration(ch)}.")
        elif p.channels:
            body = ("Theo danh mục, thủ tục này hiện chưa có kênh nộp trực tuyến; bạn nộp "
                    + ", ".join(channel_label(c).lower() for c in p.channels) + ".")
        else:
            body = f"Cách thức nộp hồ sơ: {UNKNOWN}."
        return f"Thủ tục {heading(p)}.\n\n{body}\n\n{link(p, settings.portal_url)}"


class NoneOfThese(Action):
    """The citizen said none of the offered procedures is theirs.

    The `procedure_code` slot is cleared so that a follow-up such as "phí bao nhiêu?" is not
    answered about a procedure the citizen has just rejected (or an older one); instead the
    bot asks for a description that searches better, and offers the portal and a person.
    """

    def name(self) -> str:
        return "action_none_of_these"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
            domain: dict[str, Any]) -> list[EventType]:
        settings = Settings.from_env()
        dispatcher.utter_message(text=REPHRASE.format(portal=settings.portal_url),
                                 buttons=[dict(HANDOFF_BUTTON)])
        return [SlotSet("procedure_code", None)]


def offered_candidates(tracker: Tracker) -> bool:
    """Whether the bot's last message offered candidate procedures ("none of these" button)."""
    for event in reversed(tracker.events or []):
        if event.get("event") == "bot":
            buttons = (event.get("data") or {}).get("buttons") or []
            return any(b.get("payload") == NONE_OF_THESE_BUTTON["payload"] for b in buttons)
    return False


class HandleDeny(Action):
    """A plain "không phải" / "sai rồi".

    Right after candidate buttons it rejects them, exactly like the "Không phải thủ tục nào
    ở trên" button (the slot is cleared, a rephrasing is asked for); anywhere else it gets
    the usual short reply. Deciding from the last bot message keeps this out of the dialogue
    policy, which would need many stories to learn it.
    """

    def name(self) -> str:
        return "action_handle_deny"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
            domain: dict[str, Any]) -> list[EventType]:
        if offered_candidates(tracker):
            return NoneOfThese().run(dispatcher, tracker, domain)
        dispatcher.utter_message(response="utter_deny")
        return []

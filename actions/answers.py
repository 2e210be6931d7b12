"""Actions that answer procedure questions: every point asked, in one reply.

The six actions (one per procedure intent, so the rules stay readable) share one flow: work
out the procedure, then answer each aspect the message asks (bot/aspects.py) from its own
field (actions/aspect_answers.py); the intent only says which aspect to answer when the
message names none. Every answer names the procedure and its code and links to the portal;
a fact the catalog lacks is said to be missing, never invented. A general-knowledge entry or
an official Q&A that matches closely is answered or quoted with its source.
"""

from __future__ import annotations

import json
import logging
from abc import ABC
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy.orm import Session

from actions.aspect_answers import render_body
from actions.catalog_client import (
    ALTERNATIVES,
    CANDIDATES,
    CONFIDENT,
    MARGIN,
    PLAUSIBLE,
    CatalogClient,
    Resolution,
    get_client,
)
from actions.fees import EMPTY_TRACKER, FeeContext, context_events, fee_context
from actions.formatting import heading, link
from actions.sources import (
    chosen_code,
    confident_hit,
    quote_faq,
    ranked_hits,
    related_faq,
    render_knowledge,
)
from bot.aspects import INTENT_ASPECT, AskedAspects, detect
from bot.catalog.models import Procedure
from bot.catalog.search import SearchResult
from bot.config import Settings
from bot.retrieval_result import RETRIEVAL
from bot.text import mask_pii

log = logging.getLogger(__name__)
# Candidates offered with buttons, and what was asked with them (a typed follow-up keeps them).
CANDIDATES_SLOT = "candidates"


def compose(p: Procedure, asked: AskedAspects, settings: Settings, ctx: FeeContext,
            shared: list[Procedure] | None = None) -> str:
    """The whole answer: the procedure, each asked aspect, where variants differ, the link."""
    parts = [f"Thủ tục {heading(p)}.", render_body(p, asked, settings, ctx)]
    if shared:
        lines = [f"• {q.display_name} (mã {q.code})"
                 + (f" — {q.level}" if q.level and q.level != p.level else "")
                 + (f", {q.agency}" if q.agency and q.agency != p.agency else "")
                 for q in shared]
        parts.append("Nội dung trên giống nhau ở các thủ tục cùng loại sau; chúng chỉ khác nơi "
                     "thực hiện (cấp, cơ quan):\n" + "\n".join(lines))
    if asked.aspects == ("steps",) and not asked.from_cues:
        if p.result:
            parts.append(f"Kết quả nhận được: {p.result}.")
        parts.append("Bạn có thể hỏi thêm: cần giấy tờ gì, lệ phí bao nhiêu, bao lâu có kết "
                     "quả, nộp ở đâu, làm online được không.")
    parts.append(link(p, settings.portal_url))
    return "\n\n".join(parts)


# A procedure answered beside a general-knowledge answer must be this sure (names_its_procedure)
KNOWLEDGE_WITH_PROCEDURE = 0.85
# Offered after the candidate buttons, so a citizen whose procedure is not among them has a
# way out that forgets the wrong guess (the payload's intent has a rule to NoneOfThese).
NONE_OF_THESE_INTENT = "none_of_these"
NONE_OF_THESE_BUTTON = {"title": "Không phải thủ tục nào ở trên",
                        "payload": f"/{NONE_OF_THESE_INTENT}"}
# Put before an answer given for the likeliest of close candidates (Resolution.clear).
UNSURE = ("Có vài thủ tục gần giống nhau; mình trả lời theo thủ tục khớp nhất với câu hỏi "
          "của bạn. Nếu không đúng, bạn chọn thủ tục khác ở cuối tin nhắn nhé.")
# The hand-over (rule: request_human → action_request_human), offered when search failed.
HANDOFF_BUTTON = {"title": "Gặp cán bộ", "payload": "/request_human"}
REPHRASE = ("Dạ, vậy là mình chưa tìm đúng thủ tục bạn cần, xin lỗi bạn. Bạn mô tả lại giúp "
            "mình bằng cách khác nhé: bạn muốn làm việc gì và muốn nhận được giấy tờ gì, ví dụ "
            "\u201cđăng ký xe máy mới mua để được cấp biển số\u201d hay \u201ccon mới sinh, "
            "cần làm giấy khai sinh\u201d.\n\nBạn cũng có thể tự tìm thủ tục trên Cổng Dịch vụ "
            "công quốc gia ({portal}), hoặc chọn \u201cGặp cán bộ\u201d để được người hỗ trợ "
            "trực tiếp.")


def names_its_procedure(hits: list[SearchResult], asked: AskedAspects) -> bool:
    """Whether a message a general-knowledge entry answers also asks a point of one
    procedure, so that procedure's answer follows the general one.

    "nộp hồ sơ đăng ký kết hôn online ở Hà Nội có mất phí không" matches the 0-đồng entry,
    but the citizen asked the fee of one procedure the message names. That takes a point
    the record holds, asked in the message's own words (not the how-to that a bare "làm
    sao" asks: "mất sổ hộ khẩu giờ làm sao" is the household-book entry's question), and
    a procedure the search is sure of (KNOWLEDGE_WITH_PROCEDURE and a clear lead), since a
    near match beside a general answer would mislead ("Xóa đăng ký thường trú" for a lost
    household book).
    """
    if not hits or not asked.from_cues or not set(asked.aspects) - {"steps"}:
        return False
    top = hits[0].score
    return top >= KNOWLEDGE_WITH_PROCEDURE and (len(hits) == 1 or top - hits[1].score >= MARGIN)


class ProcedureAnswer(Action, ABC):
    """Resolve the procedure from the retrieval, the buttons or the conversation, then answer.

    The NLU searched the message already (bot/nlu/retrieval.py: `latest_message["retrieval"]`
    holds the ranked procedures, the aspects asked, the official Q&A and knowledge matches);
    the action adds what only the conversation knows: a button the citizen pressed, the
    candidates offered last turn, the procedure being discussed.
    """

    intent = "ask_procedure"
    action_name = "action_answer_procedure"

    def name(self) -> str:
        return self.action_name

    def render(self, p: Procedure, settings: Settings) -> str:
        """This kind of answer about `p` outside a conversation (previews, tests)."""
        asked = AskedAspects((INTENT_ASPECT[self.intent],), False, False)
        return compose(p, asked, settings, fee_context(EMPTY_TRACKER, settings, ""))

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
            domain: dict[str, Any]) -> list[EventType]:
        settings = Settings.from_env()
        message = tracker.latest_message or {}
        text = message.get("text") or ""
        entities = message.get("entities") or []
        found = message.get(RETRIEVAL) or {}
        pending = tracker.get_slot(CANDIDATES_SLOT) or {}
        chosen = chosen_code(entities)
        asked = self._asked(text, found, pending, chosen)
        ctx = fee_context(tracker, settings, text)
        events = context_events(ctx, tracker)
        knowledge = confident_hit(found.get("knowledge"))
        general = None  # a general answer that goes before the procedure's
        if knowledge is not None and chosen is None:
            if not names_its_procedure(ranked_hits(found) or [], asked):
                self._knowledge_only(dispatcher, knowledge, found)
                return events
            general = render_knowledge(knowledge)
        faq = confident_hit(found.get("faq"))
        client = get_client()
        with client.session() as s:
            ranked = ranked_hits(found)
            if ranked is None and not text.startswith("/"):
                ranked = client.rank(s, text)
            res = None
            if chosen is None:
                res = client.follow_up(s, list(pending.get("codes") or []), ranked or [])
            kept = res is not None
            if res is None:
                res = client.resolve(s, entities, text, tracker.get_slot("procedure_code"),
                                     ranked)
            if (not kept and not res.clear) or (res.procedure is None and len(res.candidates) > 1):
                res = self._same_answer(s, client, res, asked, settings, ctx)
            related = related_faq(found.get("faq"), faq)
            if res.procedure is not None:
                log.info("%s: %s → %s %s", self.action_name, mask_pii(text[:200]),
                         res.procedure.code, ",".join(asked.aspects))
                reply = compose(res.procedure, asked, settings, ctx, res.shared)
                if not res.clear:
                    reply = UNSURE + "\n\n" + reply
                if general is not None:
                    reply = general + "\n\n" + reply
                if faq is not None:
                    reply += "\n\n" + quote_faq(faq)
                if related:
                    reply += "\n\n" + related
                buttons = self._buttons(res.alternatives)
                if buttons:
                    reply += "\n\nNếu bạn hỏi về thủ tục khác, bạn chọn bên dưới nhé."
                    if not res.clear:
                        buttons.append(dict(NONE_OF_THESE_BUTTON))
                dispatcher.utter_message(text=reply, buttons=buttons)
                keep = ({"codes": [res.procedure.code, *[a.code for a in res.alternatives]],
                         "aspects": list(asked.aspects), "yes_no": asked.yes_no}
                        if (kept or not res.clear) and res.alternatives else None)
                return [*events, SlotSet("procedure_code", res.procedure.code),
                        SlotSet(CANDIDATES_SLOT, keep)]
            if general is not None:  # the search changed its mind: the general answer alone
                self._knowledge_only(dispatcher, knowledge, found)
                return events
            if faq is not None:
                buttons = self._buttons(res.candidates, CANDIDATES)
                dispatcher.utter_message(
                    text=quote_faq(faq) + ("\n\n" + related if related else ""),
                    buttons=buttons)
                return [*events, *self._pending(res.candidates, asked)]
            self._clarify(dispatcher, res, related)
            return [*events, *self._pending(res.candidates, asked)]

    def _knowledge_only(self, dispatcher: CollectingDispatcher, knowledge: dict[str, Any],
                        found: dict[str, Any]) -> None:
        """The general answer is the answer; the procedures the search is sure of follow as
        buttons, so the citizen can go on to the papers, fee or place of one."""
        related = [h for h in ranked_hits(found) or [] if h.score >= CONFIDENT]
        reply = render_knowledge(knowledge)
        if related:
            reply += "\n\nThủ tục liên quan: bạn chọn bên dưới để xem chi tiết."
        dispatcher.utter_message(text=reply, buttons=self._buttons(related))

    @staticmethod
    def _pending(candidates: list[SearchResult], asked: AskedAspects) -> list[EventType]:
        """Remember offered candidates (and what was asked) for a typed follow-up."""
        if not candidates:
            return []
        return [SlotSet(CANDIDATES_SLOT, {"codes": [c.code for c in candidates],
                                          "aspects": list(asked.aspects),
                                          "yes_no": asked.yes_no})]

    def _asked(self, text: str, found: dict[str, Any], pending: dict[str, Any],
               chosen: str | None) -> AskedAspects:
        """The aspects to answer: the message's own, else those asked with the buttons."""
        if chosen is not None and chosen in (pending.get("codes") or []) and pending.get(
                "aspects"):
            return AskedAspects(tuple(pending["aspects"]), bool(pending.get("yes_no")), True)
        if found.get("aspects"):
            asked = AskedAspects(tuple(found["aspects"]), bool(found.get("yes_no")),
                                 bool(found.get("aspects_from_cues")))
            if asked.from_cues:
                return asked
        if text.startswith("/"):
            return AskedAspects((INTENT_ASPECT[self.intent],), False, False)
        asked = detect(text, self.intent)
        if not asked.from_cues and pending.get("aspects"):
            return AskedAspects(tuple(pending["aspects"]), bool(pending.get("yes_no")), True)
        return asked

    def _same_answer(self, s: Session, client: CatalogClient, res: Resolution,
                     asked: AskedAspects, settings: Settings, ctx: FeeContext) -> Resolution:
        """Close variants that answer the asked point alike are answered once.

        "Close" is within MARGIN of the best hit: the variants the search cannot tell
        apart (central and provincial, or the same procedure under two agencies). When
        their answers differ, `res` is returned as it is: the likeliest is answered as
        such with the others as buttons, or, below CONFIDENT, the citizen chooses.
        """
        hits = res.ranked or res.candidates
        if len(hits) < 2:
            return res
        top = hits[0].score
        close = [p for c in hits if top - c.score < MARGIN
                 and (p := client.get(s, c.code)) is not None]
        if len(close) < 2:
            return res
        bodies = {render_body(p, asked, settings, ctx) for p in close}
        if len(bodies) != 1:
            return res
        kept = {p.code for p in close}
        others = [c for c in hits if c.code not in kept and c.score >= PLAUSIBLE]
        return Resolution(procedure=close[0], alternatives=others[:ALTERNATIVES],
                          shared=close[1:], ranked=hits)

    def _buttons(self, results: list, limit: int = ALTERNATIVES) -> list[dict[str, str]]:
        """Buttons that ask this same question about another procedure."""
        return [
            {"title": c.name,
             "payload": f"/{self.intent}" + json.dumps({"procedure": c.code}, ensure_ascii=False)}
            for c in results[:limit]
        ]

    def _clarify(self, dispatcher: CollectingDispatcher, res: Resolution,
                 related: str = "") -> None:
        """Offer up to 4 possible procedures as buttons, or say that nothing matched; the
        official questions that may be related follow either way."""
        if res.candidates:
            # The way out comes last, after the (at most 4) procedures it refers to.
            buttons = [*self._buttons(res.candidates, CANDIDATES), dict(NONE_OF_THESE_BUTTON)]
            text = "Bạn đang hỏi về thủ tục nào dưới đây? Bạn chọn giúp mình nhé."
            dispatcher.utter_message(text=text + ("\n\n" + related if related else ""),
                                     buttons=buttons)
            return
        if res.mentioned:
            text = (f"Mình chưa tìm thấy thủ tục \u201c{res.mentioned}\u201d trong danh mục "
                    "của mình. Bạn thử gọi tên thủ tục theo cách khác (ví dụ: \u201cđăng ký "
                    "khai sinh\u201d, \u201ccấp đổi căn cước\u201d), hoặc nhắn \u201cgặp cán "
                    "bộ\u201d để được hỗ trợ trực tiếp nhé.")
        else:
            text = ("Bạn muốn hỏi về thủ tục nào ạ? Bạn cho mình biết tên thủ tục (ví dụ: "
                    "\u201cđăng ký khai sinh\u201d, \u201clàm hộ chiếu\u201d, \u201ccấp lại "
                    "căn cước\u201d) để mình tra cứu giúp nhé.")
        dispatcher.utter_message(text=text + ("\n\n" + related if related else ""))


class AnswerProcedure(ProcedureAnswer):
    """How the procedure works: what it is, its steps, what the citizen receives."""

    intent = "ask_procedure"
    action_name = "action_answer_procedure"


class AnswerDocuments(ProcedureAnswer):
    """The papers of the application file, one per line with copies."""

    intent = "ask_documents"
    action_name = "action_answer_documents"


class AnswerFee(ProcedureAnswer):
    """The fee per submission channel from the fee resolver (province, date, exemptions)."""

    intent = "ask_fee"
    action_name = "action_answer_fee"


class AnswerProcessingTime(ProcedureAnswer):
    """How long each channel takes."""

    intent = "ask_processing_time"
    action_name = "action_answer_processing_time"


class AnswerWhere(ProcedureAnswer):
    """Which office handles it, at which level, and through which channels."""

    intent = "ask_where"
    action_name = "action_answer_where"


class AnswerOnline(ProcedureAnswer):
    """Whether it can be done online and how."""

    intent = "ask_online"
    action_name = "action_answer_online"


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
        return [SlotSet("procedure_code", None), SlotSet(CANDIDATES_SLOT, None)]


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

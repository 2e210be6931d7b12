"""Console pages over the conversations: the dashboard, the conversation list and reader,
and the NLU inbox where a trainer fixes what the bot misunderstood.

The queries live in bot.console.conversations / inbox / stats; the training data is
written by bot.console.corrections. Here: forms, validation messages, audit entries.
An operator marks entities by editing the example in Rasa's own markup
("làm [khai sinh](procedure) cho con"), prefilled with what the NLU found; the words must
stay the citizen's own — only brackets may be added.
"""

from __future__ import annotations

import re
from datetime import date, timedelta

from aiohttp import web
from sqlalchemy.orm import Session

from bot.console import charts, corrections, inbox, stats
from bot.console.accounts import audit
from bot.console.conversations import CHANNELS, VIETNAM, list_conversations, read_conversation
from bot.console.corrections import CorrectionError, EntitySpan
from bot.console.inbox import InboxError
from bot.console.web import (
    PREFIX,
    SETTINGS_KEY,
    USER_KEY,
    NavItem,
    add_nav,
    address,
    db,
    form,
    guarded,
    redirect,
    render,
)
from bot.handover.desk import HANDOVER_KEY

PAGE = 50
_MARK_RE = re.compile(r"\[([^\[\]]+)\]\(([A-Za-z_][A-Za-z0-9_]*)\)")
REASON_LABELS = {inbox.REASON_FALLBACK: "bot không hiểu",
                 inbox.REASON_LOW_CONFIDENCE: "độ tin cậy thấp",
                 inbox.REASON_THUMBS_DOWN: "người dân chê câu trả lời"}
CHANNEL_LABELS = {"web": "Trang chat", "widget": "Widget", "zalo": "Zalo", "unknown": "?"}


class MarkupError(ValueError):
    """The marked example is not the citizen's text with entity brackets."""


def parse_markup(marked: str) -> tuple[str, list[EntitySpan]]:
    """"làm [khai sinh](procedure)" → ("làm khai sinh", [EntitySpan(4, 13, "procedure")])."""
    plain, spans, pos = [], [], 0
    length = 0
    for m in _MARK_RE.finditer(marked):
        before = marked[pos:m.start()]
        plain.append(before)
        length += len(before)
        plain.append(m.group(1))
        spans.append(EntitySpan(length, length + len(m.group(1)), m.group(2)))
        length += len(m.group(1))
        pos = m.end()
    plain.append(marked[pos:])
    text = "".join(plain)
    if "[" in text or "](" in text:
        raise MarkupError("dấu ngoặc đánh dấu thực thể chưa đúng dạng [chữ](tên_thực_thể)")
    return text, spans


def to_marked(text: str, spans: list[EntitySpan]) -> str:
    out, pos = [], 0
    for s in sorted(spans, key=lambda s: s.start):
        out += [text[pos:s.start], f"[{text[s.start:s.end]}]({s.entity})"]
        pos = s.end
    out.append(text[pos:])
    return "".join(out)


def _day(value: str | None, default: date) -> date:
    return _maybe_day(value) or default


def _maybe_day(value: str | None) -> date | None:
    """A YYYY-MM-DD filter; anything else is no filter (a hand-edited URL, not an error)."""
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


def _today() -> date:
    from datetime import datetime

    return datetime.now(VIETNAM).date()


@guarded("dashboard")
async def dashboard_page(request: web.Request) -> web.StreamResponse:
    end = _day(request.query.get("until"), _today())
    start = _day(request.query.get("since"), end - timedelta(days=29))
    if start > end:
        start, end = end, start
    if (end - start).days > 366:
        start = end - timedelta(days=366)
    data = await db(request, lambda s: stats.dashboard(s, start, end))
    pct = lambda v: "—" if v is None else f"{v * 100:.0f}%"  # noqa: E731
    svg = {
        "per_day": charts.line_chart(data.per_day, title="Số cuộc trò chuyện mỗi ngày",
                                     unit="cuộc", chart_id="per-day"),
        "intents": charts.bar_chart(data.top_intents, title="Ý định hay gặp nhất",
                                    unit="tin", chart_id="intents"),
        "procedures": charts.bar_chart([(f"{name} ({code})", n) for code, name, n
                                        in data.top_procedures],
                                       title="Thủ tục được hỏi nhiều nhất", unit="cuộc",
                                       chart_id="procedures"),
    }
    return render(request, "dashboard.html", stats=data, svg=svg, pct=pct,
                  since=start.isoformat(), until=end.isoformat())


@guarded("conversations.read")
async def conversations_page(request: web.Request) -> web.StreamResponse:
    q = request.query
    try:
        page = max(1, int(q.get("page", "1")))
    except ValueError:
        page = 1
    filters = {
        "since": q.get("since", ""), "until": q.get("until", ""),
        "channel": q.get("channel", "") if q.get("channel", "") in CHANNELS else "",
        "intent": q.get("intent", "").strip()[:64], "q": q.get("q", "").strip()[:200],
        "fallback": q.get("fallback") == "1", "down": q.get("down") == "1",
    }

    def work(s: Session):  # noqa: ANN202
        return list_conversations(
            s, since=_maybe_day(filters["since"]), until=_maybe_day(filters["until"]),
            channel=filters["channel"] or None, intent=filters["intent"] or None,
            fallback_only=filters["fallback"], thumbs_down_only=filters["down"],
            text_query=filters["q"] or None, limit=PAGE, offset=(page - 1) * PAGE)

    rows, total = await db(request, work)
    intents = sorted(corrections.domain_names()[0])
    return render(request, "conversations.html", rows=rows, total=total, page=page,
                  pages=max(1, -(-total // PAGE)), f=filters, channels=CHANNELS,
                  channel_labels=CHANNEL_LABELS, intents=intents,
                  query_without_page=request.query_string.replace(f"page={page}", "")
                  .strip("&"))


@guarded("conversations.read")
async def conversation_page(request: web.Request) -> web.StreamResponse:
    sender = request.match_info["sender"]
    turns = await db(request, lambda s: read_conversation(s, sender))
    # Messages exchanged with staff never reach Rasa: they are in the handover threads.
    threads = await request.app[HANDOVER_KEY].threads_of(sender)
    if not turns and not threads:
        return render(request, "error.html", status=404,
                      message="Không có cuộc trò chuyện này.")
    return render(request, "conversation.html", sender=sender, turns=turns,
                  channel_labels=CHANNEL_LABELS, threads=threads)


@guarded("nlu.correct")
async def inbox_page(request: web.Request) -> web.StreamResponse:
    items, total = await db(request, lambda s: inbox.inbox(s, limit=PAGE))
    rows = []
    for item in items:
        sug = inbox.suggest(item)
        rows.append({"item": item, "suggestion": sug,
                     "marked": to_marked(item.text, sug.entities)})
    return render(request, "inbox.html", rows=rows, total=total, reasons=REASON_LABELS,
                  channel_labels=CHANNEL_LABELS)


@guarded("nlu.correct")
async def inbox_item_page(request: web.Request) -> web.StreamResponse:
    return await _item_view(request, int(request.match_info["id"]))


async def _item_view(request: web.Request, item_id: int, error: str | None = None,
                     marked: str | None = None, intent: str | None = None,
                     status: int = 200) -> web.StreamResponse:
    try:
        item = await db(request, lambda s: inbox.get_item(s, item_id))
    except InboxError as exc:
        return render(request, "error.html", status=404, message=str(exc))
    sug = inbox.suggest(item)
    intents = sorted(corrections.domain_names()[0])
    entities = sorted(corrections.domain_names()[1])
    return render(request, "inbox_item.html", status=status, item=item, suggestion=sug,
                  marked=marked if marked is not None else to_marked(item.text, sug.entities),
                  chosen=intent or sug.intent or "", intents=intents, entities=entities,
                  reasons=REASON_LABELS, error=error, channel_labels=CHANNEL_LABELS)


@guarded("nlu.correct")
async def inbox_item_submit(request: web.Request) -> web.StreamResponse:
    item_id = int(request.match_info["id"])
    data = await form(request)
    action = data.get("action", "")
    user = request[USER_KEY].username
    target = request.app[SETTINGS_KEY].nlu_corrections_file  # this app's, not the process's
    try:
        if action == "correct":
            intent = data.get("intent", "").strip()
            plain, spans = parse_markup(data.get("marked", ""))

            def work(s: Session) -> str:
                item = inbox.get_item(s, item_id)
                if plain != item.text:
                    raise MarkupError("chỉ được thêm dấu [ ](thực thể); câu chữ phải giữ "
                                      "nguyên như người dân đã gõ")
                review = inbox.correct(s, item_id, intent, spans, by=user,
                                        corrections_file=target)
                audit(s, user, "nlu.correct", str(item_id),
                      {"intent": intent, "example": review.example}, address(request))
                return review.example or ""

            await db(request, work)
        elif action in ("out_of_scope", "ignore"):
            def work2(s: Session) -> None:
                if action == "ignore":
                    inbox.ignore(s, item_id, user)
                else:
                    inbox.mark_out_of_scope(s, item_id, user, corrections_file=target)
                audit(s, user, f"nlu.{action}", str(item_id), None, address(request))

            await db(request, work2)
        else:
            raise InboxError("thao tác không hợp lệ")
    except (InboxError, CorrectionError, MarkupError) as exc:
        return await _item_view(request, item_id, error=str(exc), marked=data.get("marked"),
                                intent=data.get("intent"), status=400)
    raise redirect(f"{PREFIX}/inbox", ok="saved")


def add_nlu_pages(app: web.Application) -> None:
    r = app.router
    r.add_get(f"{PREFIX}/conversations", conversations_page)
    r.add_get(f"{PREFIX}/conversations/{{sender}}", conversation_page)
    r.add_get(f"{PREFIX}/inbox", inbox_page)
    r.add_get(f"{PREFIX}/inbox/{{id:\\d+}}", inbox_item_page)
    r.add_post(f"{PREFIX}/inbox/{{id:\\d+}}", inbox_item_submit)
    add_nav(NavItem("conversations.read", f"{PREFIX}/conversations", "Cuộc trò chuyện",
                    "Tìm và đọc các cuộc trò chuyện, với ý định bot nhận ra ở từng tin."))
    add_nav(NavItem("nlu.correct", f"{PREFIX}/inbox", "Hộp cần xem",
                    "Tin nhắn bot chưa hiểu, hiểu chưa chắc hoặc bị chê: gán đúng ý định, "
                    "đưa vào dữ liệu huấn luyện."))

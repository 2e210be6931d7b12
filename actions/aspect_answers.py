"""One section per point asked, each from its own field of the procedure record.

"Sang tên xe máy thì mấy ngày có giấy đăng ký mới, lệ phí hết bao nhiêu?" gets the time and
the fee in one reply; "hạn chót là bao lâu sau khi mất" gets the deadline the record states
(or is told plainly that the record does not state one), never the processing time dressed
as the answer. Every section starts with its title from `bot.aspects.HEADINGS`, so a reply
says which point each part answers (and `bot eval dialogue` can check it).
"""

from __future__ import annotations

import json
from collections.abc import Callable

from actions.fees import FeeContext, fee_lines, online_fee
from actions.formatting import UNKNOWN, bullet_lines, channel_label, duration
from bot.aspects import HEADINGS, AskedAspects
from bot.catalog.models import Procedure
from bot.config import Settings
from bot.text import fold

ONLINE_WHERE = ("Bạn nộp trực tuyến trên Cổng Dịch vụ công quốc gia ({portal}) hoặc cổng dịch "
                "vụ công của tỉnh, thành phố nơi bạn làm thủ tục.")
NOT_IN_RECORD = ("Danh mục thủ tục không ghi rõ {what}. Bạn xem văn bản đầy đủ tại đường dẫn "
                 "dưới, hoặc nhắn \u201cgặp cán bộ\u201d để được hỗ trợ.")
# Sentences of the record that state a validity or a deadline (folded cue words).
_PASSAGE_CUES = {
    "validity": ("gia tri", "hieu luc", "thoi han su dung", "han su dung"),
    "deadline": ("trong thoi han", "ke tu ngay", "cham nhat", "trong vong", "thoi han dang ky",
                 "qua thoi han", "truoc ngay"),
}
MAX_PASSAGE = 320


def _section(aspect: str, body: str) -> str:
    return f"{HEADINGS[aspect]}: {body}" if "\n" not in body else f"{HEADINGS[aspect]}:\n{body}"


def steps(p: Procedure, settings: Settings, ctx: FeeContext, yes_no: bool) -> str:
    parts = []
    if p.summary:
        parts.append(p.summary)
    if p.steps:
        parts.append(f"{HEADINGS['steps']}:\n" + "\n".join(
            f"{i}. {s.text}" for i, s in enumerate(p.steps, 1)))
    else:
        parts.append(f"{HEADINGS['steps']}: {UNKNOWN}.")
    return "\n\n".join(parts)


def documents(p: Procedure, settings: Settings, ctx: FeeContext, yes_no: bool) -> str:
    if not p.documents:
        return f"{HEADINGS['documents']}: {UNKNOWN}. Bạn vui lòng xem chi tiết tại đường dẫn dưới."
    items = []
    for d in p.documents:
        item = d.name
        if d.copies:
            item += f" ({d.copies})"
        if d.case:
            item += f" — {d.case}"
        items.append(item)
    return f"{HEADINGS['documents']}:\n" + bullet_lines(items)


def forms(p: Procedure, settings: Settings, ctx: FeeContext, yes_no: bool) -> str:
    named = [d.name for d in p.documents
             if any(w in fold(d.name) for w in ("mau", "to khai", "don de nghi", "don xin"))]
    if not named:
        return _section("forms", NOT_IN_RECORD.format(what="mẫu đơn, tờ khai của thủ tục này"))
    return _section("forms", bullet_lines(named) + "\nMẫu đơn, tờ khai tải tại đường dẫn dưới "
                    "(mục thành phần hồ sơ).")


def fee(p: Procedure, settings: Settings, ctx: FeeContext, yes_no: bool) -> str:
    head, notes, amounts = fee_lines(p, ctx)
    body = "\n".join(head)
    if yes_no and amounts and None not in amounts:
        first = ("Không, thủ tục này không mất phí." if all(a == 0 for a in amounts)
                 else "Có thu phí, lệ phí.")
        body = f"{first}\n{body}"
    return body + ("\n\n" + "\n".join(notes) if notes else "")


def time(p: Procedure, settings: Settings, ctx: FeeContext, yes_no: bool) -> str:
    if not p.channels:
        return f"{HEADINGS['time']}: {UNKNOWN}."
    return f"{HEADINGS['time']}:\n" + bullet_lines(
        [f"{channel_label(ch)}: {duration(ch)}" for ch in p.channels])


def where(p: Procedure, settings: Settings, ctx: FeeContext, yes_no: bool) -> str:
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
    return f"{HEADINGS['where']}:\n" + "\n".join(lines)


def online(p: Procedure, settings: Settings, ctx: FeeContext, yes_no: bool) -> str:
    chans = [ch for ch in p.channels if ch.channel == "online"]
    if chans:
        body = ("Có, thủ tục này nộp trực tuyến được. "
                + (p.online_howto or ONLINE_WHERE.format(portal=settings.portal_url))
                + "\nLệ phí khi nộp trực tuyến: " + online_fee(p, ctx) + "."
                + f"\nThời hạn giải quyết khi nộp trực tuyến: {duration(chans[0])}.")
    elif p.channels:
        body = ("Không. Theo danh mục, thủ tục này hiện chưa có kênh nộp trực tuyến; bạn nộp "
                + ", ".join(channel_label(c).lower() for c in p.channels) + ".")
    else:
        body = f"Cách thức nộp hồ sơ: {UNKNOWN}."
    return _section("online", body)


def _field(aspect: str, value: str | None, what: str) -> str:
    if value and value.strip() and fold(value).strip(" .") not in {"khong", "khong co"}:
        return _section(aspect, value.strip())
    return _section(aspect, NOT_IN_RECORD.format(what=what))


def conditions(p: Procedure, settings: Settings, ctx: FeeContext, yes_no: bool) -> str:
    return _field("conditions", p.conditions, "yêu cầu, điều kiện riêng của thủ tục này")


def audience(p: Procedure, settings: Settings, ctx: FeeContext, yes_no: bool) -> str:
    return _field("audience", p.audience, "đối tượng thực hiện thủ tục này")


def result(p: Procedure, settings: Settings, ctx: FeeContext, yes_no: bool) -> str:
    return _field("result", p.result, "kết quả của thủ tục này")


def legal_basis(p: Procedure, settings: Settings, ctx: FeeContext, yes_no: bool) -> str:
    if not p.legal_basis:
        return _section("legal_basis", NOT_IN_RECORD.format(what="căn cứ pháp lý"))
    return f"{HEADINGS['legal_basis']}:\n" + bullet_lines(
        [" ".join(x for x in (lb.number, lb.title) if x) for lb in p.legal_basis])


def _record_texts(p: Procedure) -> list[str]:
    """Every free text of the record, the parsed fields first, then the source's own."""
    texts = [p.conditions or "", p.summary or "", p.result or "",
             *[s.text for s in p.steps], *[d.case or "" for d in p.documents]]
    if p.raw:
        try:
            raw = json.loads(p.raw)
        except ValueError:
            raw = {}
        texts += [v for v in raw.values() if isinstance(v, str)]
    return [t for t in texts if t]


def record_passages(p: Procedure, aspect: str, limit: int = 2) -> list[str]:
    """Sentences of the record that state `aspect` (validity, deadline), in record order."""
    cues = _PASSAGE_CUES[aspect]
    found: list[str] = []
    for text in _record_texts(p):
        for sentence in text.replace("\n", ". ").split(". "):
            s = sentence.strip(" .;")
            if 12 <= len(s) and any(c in f" {fold(s)} " for c in cues) and s not in found:
                found.append(s if len(s) <= MAX_PASSAGE else s[:MAX_PASSAGE].rsplit(" ", 1)[0]
                             + "…")
                if len(found) >= limit:
                    return found
    return found


def _passages(aspect: str, what: str) -> Callable[..., str]:
    def render(p: Procedure, settings: Settings, ctx: FeeContext, yes_no: bool) -> str:
        found = record_passages(p, aspect)
        if not found:
            return _section(aspect, NOT_IN_RECORD.format(what=what))
        return _section(aspect, "Theo danh mục thủ tục:\n" + bullet_lines(found))
    return render


RENDERERS: dict[str, Callable[[Procedure, Settings, FeeContext, bool], str]] = {
    "steps": steps, "documents": documents, "forms": forms, "fee": fee, "time": time,
    "where": where, "online": online, "conditions": conditions, "audience": audience,
    "result": result, "legal_basis": legal_basis,
    "validity": _passages("validity", "thời hạn giá trị của giấy tờ được cấp"),
    "deadline": _passages("deadline", "thời hạn phải làm thủ tục"),
}


def render_body(p: Procedure, asked: AskedAspects, settings: Settings, ctx: FeeContext) -> str:
    """The sections answering every aspect asked, in reply order."""
    return "\n\n".join(RENDERERS[a](p, settings, ctx, asked.yes_no) for a in asked.aspects)

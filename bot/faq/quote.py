"""An official answer, shortened for a chat and attributed to the ministry that gave it.

Official answers run from one line to several pages (median about 570 characters, the
longest 9,000): a chat bubble holds a few sentences. Reading the shipped answers shaped
these rules:

* answers often start with boilerplate — "Trả lời:", a greeting, or a "- Căn cứ pháp
  lý: … - Trả lời: …" block whose real answer follows "Trả lời:" — which is cut;
* sentences and list items are often glued ("cụ thể:Theo quy định", "…;b) Hồ sơ"): a
  space is put back so they can be split;
* many first sentences are a long legal reference ("Theo quy định tại điểm a khoản 2 Điều
  28 Nghị định 44/2016/NĐ-CP ngày … của Chính phủ được sửa đổi … thì …"): the reference is
  kept up to its first document number and the rest of it elided with "…";
* whole sentences (or list items) are kept up to `LIMIT` characters; a first sentence
  longer than that is cut at a clause boundary. Every cut is marked "…", and the link to
  the full answer always follows.
"""

from __future__ import annotations

import re

from bot.faq.matcher import FaqHit
from bot.text import nfc

LIMIT = 700  # characters of quoted answer
PORTAL = "Cổng Dịch vụ công quốc gia"
LONG_REFERENCE = 160  # a legal preamble longer than this is elided
SHORT_LABEL = 40  # "- Cách thức thực hiện:" stays on the line of what follows
MIN_TAIL = 120  # room worth filling with part of the sentence a colon announces
RELATED_QUESTION = 160  # characters of a linked question shown

_OPENINGS = re.compile(
    r"^\s*(?:[-–•*]\s*)?(?:"
    r"trả lời\s*[:.\-–]"
    r"|(?:xin\s+)?chào\s+(?:bạn|anh|chị|ông|bà|anh/chị|ông/bà|quý\s+\w+)[^.!:\n]{0,40}[.!,:]"
    r"|(?:xin\s+)?c[ảá]m\s+ơn\s+[^.!\n]{0,120}[.!]"
    r"|(?:về|đối với)\s+(?:vấn đề|câu hỏi|nội dung)[^:\n]{0,160}(?:như sau|trả lời)\s*:"
    r"|vấn đề\s[^:\n]{0,160}(?:như sau|trả lời)\s*:"
    r")\s*",
    re.IGNORECASE)
# "- Căn cứ pháp lý: …\n- Trả lời: …": the answer proper starts after "Trả lời:".
_ANSWER_MARK = re.compile(r"[-–]?\s*Trả lời\s*:\s*")  # capital T: "trả lời bằng văn bản" is text
_MARKERS = "+-–•*"
_LIST_ITEM = re.compile(r"(?:[a-zđ]\)|\d{1,2}[.)])\s")  # "b) ", "2. ", "3) "
_BOUNDARY = re.compile(r"([.;:!?])(\s*)")
_DOC_NUMBER = re.compile(r"\d+/\d{4}/[\wĐđ\-]+")
_REFERENCE_START = re.compile(r"(?:^|(?<=[.!?:;]\s)|(?<=\n))(?:Theo quy định|Căn cứ|Theo)\b")
_REPEAT = re.compile(r"\b((?:\w+\s+){1,5}?\w+)\s+\1\b", re.IGNORECASE)  # "tại Theo quy định tại"


def _starts_unit(text: str, at: int) -> bool:
    """Whether a new sentence or list item starts at `at` (capital, digit, list mark)."""
    if at >= len(text):
        return False
    ch = text[at]
    if ch in "\"“'(":
        at += 1
        ch = text[at] if at < len(text) else ""
    return bool(ch) and (ch.isupper() or ch in _MARKERS or ch.isdigit()
                         or bool(_LIST_ITEM.match(text, at)))


def _unglue(text: str) -> str:
    """"cụ thể:Theo" → "cụ thể: Theo", "hợp lệ.+Trường" → "hợp lệ. +Trường"."""
    def fix(m: re.Match[str]) -> str:
        at = m.end()
        if m.group(2) or not _starts_unit(text, at):
            return m.group(0)
        if text[at].isdigit() and not (m.group(1) in ":;" and _LIST_ITEM.match(text, at)):
            return m.group(0)  # "1.000.000 đồng", "15.5.2016"
        return m.group(1) + " "
    return _BOUNDARY.sub(fix, text)


def _units(text: str) -> list[str]:
    """Sentences and list items, in order: split at line breaks and at punctuation that
    ends a sentence or clause (. ! ? ; :) followed by a new sentence or list item."""
    out: list[str] = []
    for line in text.split("\n"):
        start = 0
        for m in re.finditer(r"(?<=[.!?;:])\s+", line):
            if _starts_unit(line, m.end()):
                out.append(line[start:m.start()])
                start = m.end()
        out.append(line[start:])
    return [u.strip() for u in out if u.strip()]


def clean(answer: str) -> str:
    """The answer without boilerplate openings, glued boundaries fixed, spaces tidied."""
    text = nfc(answer or "").replace("\r", "")
    mark = _ANSWER_MARK.search(text[: max(len(text) // 2, 200)])
    if mark:
        text = text[mark.end():]
    previous = None
    while previous != text:  # "Trả lời: Xin chào bạn. …" has two openings
        previous = text
        text = _OPENINGS.sub("", text, count=1)
    text = _unglue(text)
    text = _REPEAT.sub(r"\1", text)
    text = re.sub(r"[ \t]+", " ", text)
    text = re.sub(r" *\n *", "\n", text).strip()
    if re.match(r"[a-zđ]\)", text):  # "a) Thành phần hồ sơ" stays a list item
        return text
    return text[:1].upper() + text[1:]


def _shorten_references(text: str) -> str:
    """"Theo quy định tại Điều 5 Nghị định 1/2020/NĐ-CP ngày … của … thì X" → "… thì X".

    A citizen needs the rule and where to read it, not the full title of every decree:
    a preamble longer than LONG_REFERENCE keeps its first document number.
    """
    out: list[str] = []
    pos = 0
    for m in _REFERENCE_START.finditer(text):
        if m.start() < pos:
            continue
        then = text.find(" thì ", m.end(), m.end() + 1500)
        if then < 0 or then - m.start() < LONG_REFERENCE:
            continue
        if re.search(r"[.!?]\s+\S", text[m.start():then]):  # another sentence first
            continue
        number = _DOC_NUMBER.search(text, m.start(), then)
        if not number or number.end() > then - 10:
            continue
        out.append(text[pos:number.end()])
        out.append(" …")
        pos = then
    out.append(text[pos:])
    return "".join(out)


def _clause_cut(sentence: str, limit: int) -> str:
    """The longest prefix of `sentence` ending at a clause boundary, with " …" at most
    `limit` long."""
    window = sentence[:max(limit - 2, 1)]
    for mark in (";", ":", ","):
        at = window.rfind(mark)
        if at >= limit // 3:
            return window[:at].rstrip() + " …"
    at = window.rfind(" ")
    return (window[:at] if at > 0 else window).rstrip() + " …"


def shorten(answer: str, limit: int = LIMIT) -> str:
    """Whole sentences of the cleaned answer up to `limit` characters, "…" where cut."""
    text = clean(answer)
    if len(text) <= limit:
        return _join(_units(text))
    text = _shorten_references(text)
    if len(text) <= limit:
        return text
    units = _units(text)
    out: list[str] = []
    size = 0
    for unit in units:
        sep = 1 if out else 0
        if size + sep + len(unit) > limit:
            break
        out.append(unit)
        size += sep + len(unit)
    if not out:  # the first sentence alone is too long
        return _clause_cut(units[0] if units else text, limit)
    if len(out) == len(units):
        return _join(out)
    room = limit - size - 1
    if out[-1].endswith(":") and room >= MIN_TAIL:  # "… bao gồm:" needs what it announces
        out.append(_clause_cut(units[len(out)], room))
        return _join(out)
    joined = _join(out)
    return f"{joined} …" if len(joined) + 2 <= limit else _clause_cut(joined, limit)


def _join(units: list[str]) -> str:
    """List items go on their own line, sentences follow each other."""
    units = [re.sub(r"^([-–+•*])(?=\S)", r"\1 ", u) for u in units]  # "+Trong" → "+ Trong"
    out = re.sub(r"^[-–+•*]\s+", "", units[0])  # a lone first bullet is just the answer
    for prev, unit in zip(units, units[1:], strict=False):
        item = re.match(r"^(?:[-–+•*]|[a-zđ]\)|\d+[.)])\s", unit)
        announces = prev.endswith(":") and len(prev) > SHORT_LABEL  # not "- Thành phần:"
        out += ("\n" if item or announces else " ") + unit
    return out


def ministry_name(ministry: str) -> str:
    """The portal's label, tidied: "Bộ Khoa học và Công nghệ ( Bộ TTTT cũ)" → "(Bộ TTTT cũ)"."""
    name = re.sub(r"\(\s+", "(", re.sub(r"\s+\)", ")", nfc(ministry or "").strip()))
    return re.sub(r"\s+", " ", name) or "cơ quan có thẩm quyền"


def quote(hit: FaqHit, limit: int = LIMIT) -> str:
    """The chat reply quoting an official answer: who said it, the words, the link."""
    return (f"Theo trả lời chính thức của {ministry_name(hit.ministry)} trên {PORTAL}:\n"
            f"«{shorten(hit.answer, limit)}»\n"
            f"Xem đầy đủ: {hit.url}")


def related_line(hit: FaqHit) -> str:
    """One "possibly related" official question as a list line: its words, who answered
    it, the link (the answer itself is not quoted: the match is not sure enough)."""
    question = re.sub(r"\s+", " ", nfc(hit.question)).strip()
    if len(question) > RELATED_QUESTION:  # some official questions are whole letters
        question = question[:RELATED_QUESTION].rsplit(" ", 1)[0] + " …"
    return f"• {question} ({ministry_name(hit.ministry)}): {hit.url}"

"""Records of the national portal crawl (`procedures_2026-06.jsonl.gz`, one JSON per line).

The crawler flattened each HTML table of a procedure page into one string, so a table's
cells are glued together without separators: "Trực tuyến5 Ngày làm việc10,000 Việt Nam
Đồng(…)" or "…theo Mẫu số 181 bản chính" (form "Mẫu số 18", quantity "1 bản chính"). The
parsers below re-split those strings using what each column can contain, and leave a value
empty (None) when the split is not certain. The unparsed strings are kept in `raw`.
"""

from __future__ import annotations

import re
from typing import Any

from bot.catalog.importers.cells import (
    canonical,
    channel_kind,
    clean,
    code_and_name,
    conditions_text,
    iter_numbers,
    parse_fee,
    parse_time,
)
from bot.catalog.seed import CatalogError

SOURCE = "dvcqg-crawl"
RAW_KEYS = ("cach_thuc_thuc_hien", "thanh_phan_ho_so", "trinh_tu_thuc_hien", "can_cu_phap_ly")


def looks_like(raw: Any) -> bool:
    """A decoded JSON object of the crawl: it has "ma_thu_tuc" and "ten_thu_tuc"."""
    return isinstance(raw, dict) and "ma_thu_tuc" in raw and "ten_thu_tuc" in raw


def parse_record(raw: Any) -> dict[str, Any]:
    """One crawl record → the canonical catalog record (see bot.catalog.seed)."""
    if not isinstance(raw, dict):
        raise CatalogError(f"bản ghi phải là một đối tượng JSON, nhận {type(raw).__name__}")
    code, name = code_and_name(raw.get("ma_thu_tuc"), raw.get("ten_thu_tuc"), "ma_thu_tuc",
                               "ten_thu_tuc")
    return canonical(
        code, name,
        url=clean(raw.get("detail_url")),
        field=clean(raw.get("linh_vuc")),
        level=clean(raw.get("cap_thuc_hien")),
        agency=clean(raw.get("co_quan_thuc_hien")),
        authority=clean(raw.get("co_quan_co_tham_quyen")),
        result=parse_result(raw.get("ket_qua_xu_ly")),
        audience=clean(raw.get("doi_tuong_thuc_hien")),
        conditions=conditions_text(raw.get("yeu_cau_dieu_kien")),
        decision=clean(raw.get("so_quyet_dinh")),
        channels=parse_channels(raw.get("cach_thuc_thuc_hien")),
        documents=parse_documents(raw.get("thanh_phan_ho_so")),
        steps=parse_steps(raw.get("trinh_tu_thuc_hien")),
        legal_basis=parse_legal_basis(raw.get("can_cu_phap_ly")),
        raw={k: t for k in RAW_KEYS if (t := clean(raw.get(k))) is not None},
    )


# --- result -------------------------------------------------------------------------------

# The result cell is followed by the page's UI: "Mã: KQ…", "Từ khóa", "Chọn cơ quan…".
_RESULT_CODE = re.compile(r"Mã\s*:\s*[A-Z0-9][A-Z0-9.\-]*")
_RESULT_END = re.compile(r"Từ khóa|Mô tả|Chọn cơ quan thực hiện|Nộp hồ sơ$")


def parse_result(text: Any) -> str | None:
    """The result name(s) without the portal UI junk, several joined with "; "."""
    t = clean(text)
    if t is None:
        return None
    end = _RESULT_END.search(t)
    t = t[:end.start()] if end else t
    names = [n for p in _RESULT_CODE.split(t) if (n := clean(p.strip(" ;,"))) is not None]
    return "; ".join(dict.fromkeys(names)) or None


# --- channels -----------------------------------------------------------------------------

_TABLE_HEADER = re.compile(r"Hình thức nộp\s*Thời gian\s*Phí, lệ phí\s*Mô tả")
# A row starts with the channel label glued to the time cell; the same words inside a
# description are followed by a space or ":" ("Trực tuyến: nộp hồ sơ qua…").
_ROW = re.compile(r"(Trực tuyến|Trực tiếp|Dịch vụ bưu chính|Qua bưu chính)(?=[^\s:;,.)\-])")
_TIME_UNIT = re.compile(r"(\d+(?:[.,]\d+)?)\s*(Ngày làm việc|Ngày|Giờ|Tháng)", re.IGNORECASE)
_CURRENCY = r"(?:Việt Nam Đồng|VNĐ|VND|USD|EUR|Đồng|đồng)"
_FEE_START = re.compile(rf"Miễn phí|Không có thông tin|(\d[\d.,]*)\s*{_CURRENCY}")
_NO_INFO = "Không có thông tin"


def parse_channels(text: Any) -> list[dict[str, Any]]:
    """Rows of the "Cách thức thực hiện" table, in source order, repeats kept."""
    t = clean(text)
    if t is None:
        return []
    t = _TABLE_HEADER.sub("", t)
    starts = list(_ROW.finditer(t))
    rows = []
    for i, m in enumerate(starts):
        end = starts[i + 1].start() if i + 1 < len(starts) else len(t)
        rows.append(_channel_row(m.group(1), t[m.end():end]))
    return rows


def _channel_row(label: str, body: str) -> dict[str, Any]:
    """One row: time cell, fee cell (main text plus its bracket), then the description."""
    time_text, value, unit, rest = _split_time(body)
    fee_text, note = _split_fee(rest)
    if value is None:
        value, unit, time_text = _time_from_note(note, value, unit, time_text)
    return {
        "channel": channel_kind(label),
        "time_value": value,
        "time_unit": unit,
        "time_text": clean(time_text),
        "fee": parse_fee(fee_text),
        "fee_text": clean(fee_text),
        "note": clean(note),
    }


_NOTE_TIME = re.compile(r"(\d+)\s*(ngày làm việc|ngày|giờ|tháng)\s+kể từ", re.IGNORECASE)


def _time_from_note(note: str | None, value: float | None, unit: str | None,
                    time_text: str) -> tuple[float | None, str | None, str]:
    """The time from the row's description when the time cell has none.

    Some rows leave the time cell "Không có thông tin" and write "05 ngày làm việc kể từ
    ngày nhận đủ hồ sơ" in the description. Only one distinct time is taken: a description
    listing several ("03 ngày …; 07 ngày …") is case-specific and stays unparsed.
    """
    found = {(float(m.group(1)), m.group(2).lower()) for m in _NOTE_TIME.finditer(note or "")}
    found = {(v, u) for v, u in found if v > 0}
    if len(found) != 1:
        return value, unit, time_text
    (v, u), = found
    return v, u, f"{time_text} (mô tả: {v:g} {u})"


def _split_time(body: str) -> tuple[str, float | None, str | None, str]:
    """(time text, value, unit, rest of the row) — the time cell is the row's first cell."""
    m = _TIME_UNIT.match(body)
    if m:
        value, unit = parse_time(m.group(0))
        return m.group(0), value, unit, body[m.end():]
    if body.startswith(_NO_INFO) and _FEE_START.match(body, len(_NO_INFO)):
        return _NO_INFO, None, None, body[len(_NO_INFO):]
    fee = _FEE_START.search(body)
    if fee is None:
        return body, None, None, ""
    if fee.start() == 0 and fee.group(1):
        return _split_glued(body, fee)
    time_text = body[:fee.start()]
    value, unit = parse_time(time_text)
    return time_text, value, unit, body[fee.start():]


def _split_glued(body: str, fee: re.Match[str]) -> tuple[str, float | None, str | None, str]:
    """A unit-less time glued to an amount: "1100 VNĐ" = time "1" + fee "100 VNĐ".

    The shortest time prefix that leaves a well-formed amount wins (no leading zero, thousands
    groups of three): every such row in the crawl has a one-digit time, and the amount is
    the longer, better-formed part ("140,000" = "1" + "40,000"; "14" + "0,000" is no amount).
    """
    digits = fee.group(1)
    for cut in range(1, len(digits)):
        amount = digits[cut:]
        if amount[0] == "0" or not re.fullmatch(r"\d+|\d{1,3}(?:,\d{3})+|\d{1,3}(?:\.\d{3})+",
                                                amount):
            continue
        value, unit = parse_time(digits[:cut])
        return digits[:cut], value, unit, body[cut:]
    return "", None, None, body


def _split_fee(rest: str) -> tuple[str, str]:
    """(fee cell, description): the fee's main text plus a bracket right after it."""
    m = _FEE_START.match(rest)
    if m is None:
        return "", rest
    end = m.end()
    if rest[end:end + 1] == "(":
        end = _closing_bracket(rest, end)
    return rest[:end], rest[end:]


def _closing_bracket(text: str, start: int) -> int:
    """Index just past the bracket opened at `start`; the end of text when unbalanced."""
    depth = 0
    for i in range(start, len(text)):
        depth += {"(": 1, ")": -1}.get(text[i], 0)
        if depth == 0:
            return i + 1
    return len(text)


# --- documents ----------------------------------------------------------------------------

_DOC_HEADER = re.compile(r"Tên giấy tờ\s*Mẫu đơn, tờ khai\s*Số lượng")
# The quantity cell ends a row: "1 bản chính" or "0 bản chính,1 bản sao", glued to the next
# row (no space). Inside a name it is followed by a space ("nộp 02 bản chính tờ khai").
_QUANTITY = re.compile(r"(\d+) bản chính(?:\s*,\s*(\d+) bản sao)?(?=$|[^\s.,;:)])")
_FILE_EXT = re.compile(r"\.(?:docx?|pdf|xlsx?|rar|zip|odt|rtf|jpe?g|png)$", re.IGNORECASE)
_BULLET = re.compile(r"^(?:[-+*•–]\s*)+")


def parse_documents(text: Any) -> list[dict[str, str | None]]:
    """Papers of the "Thành phần hồ sơ" table(s), each with its quantity and case heading."""
    t = clean(text)
    if t is None:
        return []
    headers = list(_DOC_HEADER.finditer(t))
    docs: list[dict[str, str | None]] = []
    heading = t[:headers[0].start()] if headers else ""
    for i, h in enumerate(headers):
        end = headers[i + 1].start() if i + 1 < len(headers) else len(t)
        body = t[h.end():end]
        case = _clean_case(heading)
        pos = 0
        for q in _QUANTITY.finditer(body):
            digits = q.group(1)
            keep = 1 if len(digits) == 1 or (len(digits) == 2 and digits[0] == "0") else 0
            cut = q.start() + len(digits) - (len(digits) if keep else 1)
            name = clean_document_name(body[pos:cut])
            originals = int(digits if keep else digits[-1])
            if name:
                docs.append({"name": name, "copies": _copies(originals, q.group(2)),
                             "case": case})
            pos = q.end()
        heading = body[pos:]  # text after the last row introduces the next group
    return docs


def _clean_case(text: str) -> str | None:
    """A group heading ("Trường hợp …:"); "--" is the portal's "no heading"."""
    t = _BULLET.sub("", text.strip().strip("-").strip())
    return clean(t.rstrip(" :;,"))


def _copies(originals: int, copies: str | None) -> str | None:
    """"1 bản chính", "1 bản chính, 1 bản sao", "1 bản sao"; zero parts left out."""
    parts = []
    if originals:
        parts.append(f"{originals} bản chính")
    if copies and int(copies):
        parts.append(f"{int(copies)} bản sao")
    return ", ".join(parts) or None


def clean_document_name(text: str) -> str | None:
    """A paper's name without bullets and without the form file name glued to its end."""
    name = text.strip()
    while _FILE_EXT.search(name):
        name = _strip_file_name(name)
    name = _BULLET.sub("", re.sub(r"\s+", " ", name)).strip().rstrip(" ;,:")
    return clean(name)


def _strip_file_name(text: str) -> str:
    """Drop a trailing "Mẫu 03.TT41.doc" / "Mus08.docx" glued onto the name.

    The file name starts where two cells were glued without a space: after ".;:)" or at a
    lower→upper, digit→capitalised word or "CPMẫu"-style case change. The earliest such
    point in the last 60 characters whose tail has no ", " or "; " (file names do not) is
    taken; without one, only the extension goes.
    """
    stem = _FILE_EXT.sub("", text)
    window = max(0, len(stem) - 60)
    for p in range(max(window, 1), len(stem)):
        if _glue_point(stem, p) and ", " not in stem[p:] and "; " not in stem[p:]:
            return stem[:p]
    return stem


def _glue_point(s: str, p: int) -> bool:
    """Two cells meet at `p` (no space between the name's end and the file name)."""
    a, b = s[p - 1], s[p]
    if a.isspace() or b.isspace() or not b.isalnum():
        return False
    if a in ".;:)]" and not (a == "." and s[p - 2:p - 1].isdigit() and b.isdigit()):
        return True
    if b.isupper() and a.islower():
        return True
    if b.isupper() and a.isdigit() and s[p + 1:p + 2].islower():  # "…/2021Mus08.docx"
        return True
    return a.isupper() and b.isupper() and s[p + 1:p + 2].islower()


# --- steps --------------------------------------------------------------------------------

# "Bước 1:", "- Bước 2.", "a) Bước 1 Nộp…"; not "tại Bước 2, …" inside a sentence.
_STEP = re.compile(
    r"Bước\s*\d+\s*:"
    r"|(?<![A-Za-zÀ-ỹĐđ,] )(?<![A-Za-zÀ-ỹĐđ])Bước\s*\d+\s*(?:[.)\-–]|\s+(?=[A-ZĐÀ-Ỹ]))"
)
_TRAILING_BULLET = re.compile(r"(?:\s*(?:[-+*•–]|[a-zđ]\)|\d+\.))+\s*$")


def parse_steps(text: Any) -> list[str]:
    """Steps split on "Bước N" markers (markers kept); without markers, one per line."""
    t = clean(text)
    if t is None:
        return []
    marks = list(_STEP.finditer(t))
    if not marks:
        return [line for raw in t.splitlines()
                if (line := clean(raw)) and re.search(r"\w", line)]
    steps = []
    preamble = clean(_TRAILING_BULLET.sub("", t[:marks[0].start()]))
    if preamble and re.search(r"\w", preamble):
        steps.append(preamble)
    for i, m in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(t)
        step = clean(_TRAILING_BULLET.sub("", t[m.start():end]))
        if step and re.search(r"\w", step[m.end() - m.start():]):  # not a bare "Bước 1:"
            steps.append(step)
    return steps


# --- legal basis --------------------------------------------------------------------------

_LAW_HEADER = re.compile(r"^\s*Tên văn bản pháp lý\s*Mã văn bản")


def parse_legal_basis(text: Any) -> list[dict[str, str | None]]:
    """(title, number) rows of the "Căn cứ pháp lý" table, title glued to its number.

    A number ends a row when the next title is glued to it (no space), or at a line break,
    a double space or the end; a number followed by " ngày…", " về…" is part of a title.
    Two numbers with nothing between them mean the title itself ended with a number
    ("… bởi Nghị định số 07/2025/NĐ-CP" + "280/2025/NĐ-CP"): the first joins the title when
    it reads as part of it (after a space); glued to a word it was that row's number, and
    the second is a row without title.
    """
    t = clean(text)
    if t is None:
        return []
    t = _LAW_HEADER.sub("", t)
    spans: list[list[Any]] = []  # [title start, title end, number]
    pos = 0
    for start, end, number in iter_numbers(t):
        if start < pos or not _ends_row(t, end):
            continue
        if spans and not t[pos:start].strip() and _reads_as_title(t, spans[-1][1]):
            spans[-1][1:] = [start, number]  # the previous number belongs to the title
        else:
            spans.append([pos, start, number])
        pos = end
    rows = [{"number": n, "title": _title(t[a:b])} for a, b, n in spans]
    tail = _title(t[pos:])
    if tail:
        rows.append({"number": None, "title": tail})
    return rows


def _title(text: str) -> str | None:
    """A legal title with its whitespace runs (tabs, line breaks) made single spaces."""
    return clean(re.sub(r"\s+", " ", text).strip(" ;,"))


def _reads_as_title(text: str, start: int) -> bool:
    """A number starting at `start` is part of its title ("Nghị định số 07/2025/NĐ-CP"):
    it opens the table or follows a space; glued to a word ("doanh nghiệp168/2025/NĐ-CP")
    it is the title's own number cell."""
    return start == 0 or text[start - 1].isspace()


def _ends_row(text: str, end: int) -> bool:
    """Whether a number ending at `end` is the last cell of a row."""
    after = text[end:end + 3]
    if not after or after[0] == "\n" or after.startswith("  "):
        return True
    if after[0].isspace():
        return bool(re.match(r"\s+[A-ZĐÀ-Ỹ]", after))
    return after[0] not in ",.;:)"

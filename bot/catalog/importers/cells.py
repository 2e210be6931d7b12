"""Parsers for single table cells shared by the portal crawl and the Ministry of Defence export.

Both sources flatten the portal's tables into text, so a fee, a processing time or a channel
label arrives as a string. These functions turn one such cell into a typed value, and say
"unknown" (None) rather than guess: the assistant quotes these values to citizens, and a
wrong "free" or a wrong amount is worse than "see the portal".
"""

from __future__ import annotations

import re
from typing import Any

from bot.catalog.seed import CatalogError
from bot.text import nfc

# Must stay equal to bot.catalog.seed.TIME_UNITS: the seed loader rejects any other unit.
# Both exports only use these four; anything else keeps its text in time_text, unit None.
TIME_UNITS = ("ngày làm việc", "ngày", "giờ", "tháng")

# What the sources write for "nothing here".
NO_INFO = frozenset({"không có thông tin", "-", "--", "không có thông tin."})

# Channel label (lower-case) → canonical channel kind.
CHANNEL_LABELS = {
    "trực tuyến": "online",
    "trực tiếp": "in_person",
    "dịch vụ bưu chính": "post",
    "qua bưu chính": "post",
    "qua dịch vụ bưu chính": "post",
    "bưu chính": "post",
}

MIN_PLAUSIBLE_FEE = 1000  # đồng; the portal's "20 VNĐ" cells mean 20.000 đ (see parse_fee)


def clean(value: Any) -> str | None:
    """A source value as clean text, or None when it is empty or says "no information".

    NFC, non-breaking spaces turned into spaces, surrounding whitespace stripped. Numbers
    are accepted (some exports store codes as numbers); anything else is not text → None.
    """
    if value is None or isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return None
    text = nfc(str(value)).replace("\xa0", " ").replace("\u200b", "").strip()
    if not text or text.lower() in NO_INFO:
        return None
    return text


def channel_kind(label: str | None) -> str | None:
    """"Trực tuyến" → online, "Trực tiếp" → in_person, "(Qua) dịch vụ bưu chính" → post."""
    text = clean(label)
    if text is None:
        return None
    return CHANNEL_LABELS.get(re.sub(r"\s+", " ", text).lower())


# --- processing time -----------------------------------------------------------------------

_TIME = re.compile(r"^(\d+(?:[.,]\d+)?)\s*([^\d\s].*)?$")


def parse_time(text: str | None) -> tuple[float | None, str | None]:
    """(value, unit) of a time cell: "5 Ngày làm việc" → (5.0, "ngày làm việc").

    A bare number ("1", "5" in hộ tịch records) gives (value, None): the unit is genuinely
    missing at the source and must not be guessed. Free text ("Không quy định", "Chậm nhất
    là ngay trước khi tàu rời cảng") and units outside TIME_UNITS give (None, None); the
    caller keeps the text in time_text. A zero ("0 Giờ" in the defence export) is a
    placeholder, not an instant service, so it also gives (None, None).
    """
    t = clean(text)
    if t is None:
        return None, None
    m = _TIME.match(t)
    if not m:
        return None, None
    value = float(m.group(1).replace(",", "."))
    if value == 0:
        return None, None  # "0 Giờ": a placeholder, not an instant service
    unit = re.sub(r"\s+", " ", m.group(2) or "").strip().lower() or None
    if unit is None:
        return value, None
    if unit in TIME_UNITS:
        return value, unit
    return None, None


# --- fees ----------------------------------------------------------------------------------

_NUM = r"\d{1,3}(?:[.,]\d{3})+(?![\d])|\d+(?:[.,]\d+)?"
_VND = r"(?:Việt\s*Nam\s*Đồng|VNĐ|VND|đồng|Đồng|ĐỒNG|đ|Đ)(?![A-Za-zÀ-ỹđĐ])"
_FOREIGN = r"(?:USD|EUR|Euro|đô\s*la|\$)"
# an amount, optionally "per unit" before the currency ("15000000/lần Đồng")
_MONEY = re.compile(
    rf"(?<![\d/.,])({_NUM})\s*(triệu|nghìn|ngàn)?\s*(?:/\s*[^\s\d()/]+\s*)?({_VND}|{_FOREIGN})|"
    rf"(?<![\d/.,])(\d{{1,3}}(?:\.\d{{3}})+)(?![\d/.,]*\d)",  # bare "8.000.000/lần"
)
_WORD_ZERO = re.compile(rf"(?<![\w])(?:0|không)\s*{_VND}", re.IGNORECASE)
_FREE = re.compile(
    r"miễn\s+phí|miễn\s+lệ\s+phí|không\s+thu(?:\s+lệ)?\s+phí|không\s+mất\s+phí|"
    r"không\s+phải\s+nộp\s+(?:lệ\s+)?phí",
    re.IGNORECASE,
)
# Restating brackets that add nothing to a "Miễn phí" cell: "(Không có)", "(Không quy định)".
_HARMLESS_NOTE = re.compile(
    r"^[\s\-–.,;:()]*(?:không(?:\s+có)?|không\s+quy\s+định|không\s+thu(?:\s+lệ)?\s+phí|"
    r"miễn\s+phí|miễn\s+lệ\s+phí|miễn(?:\s+thu)?)?[\s\-–.,;:()]*$",
    re.IGNORECASE,
)
# Text saying the real amount depends on something the cell does not state.
_AMBIGUOUS = re.compile(r"%|hội\s+đồng\s+nhân\s+dân|hđnd|chưa\s+quy\s+định", re.IGNORECASE)
_COMPONENT = re.compile(r"(?m)^\s*(Lệ phí|Phí)\s*:")


def money_amounts(text: str) -> list[tuple[float, str]]:
    """Every amount in `text` as (value, "VND" | "FOREIGN"), in order of appearance.

    Thousands separators may be "." or "," ("10,000", "50.000"); a single separator
    followed by fewer than three digits is a decimal ("1.5 USD"). Bare numbers count as
    đồng only when written with thousands separators ("8.000.000/lần"): plain numbers in
    these cells are usually years, article numbers or counts.
    """
    found: list[tuple[float, str]] = []
    for m in _MONEY.finditer(text):
        if m.group(1) is not None:
            num, scale, cur = m.group(1), m.group(2), m.group(3)
            kind = "FOREIGN" if re.fullmatch(_FOREIGN, cur) else "VND"
            value = _number(num) * _SCALE.get(scale or "", 1)
        else:
            value, kind = _number(m.group(4)), "VND"
        found.append((value, kind))
    return found


_SCALE = {"triệu": 1_000_000, "nghìn": 1000, "ngàn": 1000}


def _number(num: str) -> float:
    """'10,000' → 10000, '2.000.000' → 2000000, '1.5' / '1,5' → 1.5."""
    if re.fullmatch(r"\d{1,3}(?:[.,]\d{3})+", num):
        return float(re.sub(r"[.,]", "", num))
    return float(num.replace(",", "."))


def split_fee(text: str) -> tuple[str, str]:
    """(head, note) of one fee component: "Miễn phí(Không có)" → ("Miễn phí", "Không có")."""
    i = text.find("(")
    if i < 0:
        return text.strip(), ""
    note = text[i + 1:].strip()
    if note.endswith(")"):
        note = note[:-1]
    return text[:i].strip(), note.strip()


def _components(text: str) -> list[tuple[str | None, str]]:
    """Split a cell into its "Phí : …" / "Lệ phí : …" lines (bqp); else one component."""
    marks = list(_COMPONENT.finditer(text))
    if not marks:
        return [(None, text)]
    parts = []
    for i, m in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(text)
        body = re.sub(r"(?m)^\s*File đính kèm:.*$", "", text[m.end():end])
        parts.append((m.group(1).lower(), body.strip()))
    return parts


def _is_free(head: str) -> bool:
    """The component's main text says explicitly that nothing is paid."""
    h = head.strip()
    return bool(_FREE.fullmatch(h) or _WORD_ZERO.fullmatch(h) or re.fullmatch(r"0", h))


def parse_fee(text: str | None) -> int | None:
    """The fee of one cell in whole đồng, or None when unknown or ambiguous.

    Rules, in order (the product must never invent "free" nor an amount):

    1. Empty / "Không có thông tin" → None.
    2. Any foreign-currency amount ("10 USD", "1.5 USD") → None: we store đồng only and the
       exchange rate is not ours to choose.
    3. Anything saying the amount depends on something unstated → None: a percentage
       ("50% mức thu"), "Hội đồng nhân dân"/"HĐND" sets it, "Chưa quy định".
    4. Free (0) only when every component's main text says so ("Miễn phí", "Không thu
       phí", "0 Đồng", "Phí : 0 Đồng", "Phí : Không Đồng"), no positive amount appears
       anywhere in the cell, and every bracketed note merely restates it ("(Không có)",
       "(Không quy định)"). "Miễn phí (Theo quy định của Luật phí và lệ phí…)" or
       "Miễn phí (8.000.000/lần…)" → None.
    5. Otherwise the distinct positive đồng amounts of the whole cell (main text and
       brackets) decide: exactly one → that amount ("2,000,000 Việt Nam Đồng (…2.000.000
       đồng/01 đơn hàng)" → 2000000). Several → None, except when the cell has exactly one
       "Phí :" and one "Lệ phí :" component each stating one amount and nothing else, which
       are two separate charges → their sum.
    6. An amount below 1.000 đ → None: the portal writes "20 VNĐ" / "100 VNĐ" where the
       text says 20.000 / 100.000 đ, and no real fee is that small.
    """
    t = clean(text)
    if t is None:
        return None
    amounts = money_amounts(t)
    if any(kind == "FOREIGN" for _, kind in amounts) or _AMBIGUOUS.search(t):
        return None
    positive = sorted({v for v, _ in amounts if v > 0})
    components = [(label, *split_fee(body)) for label, body in _components(t)]
    if all(_is_free(head) for _, head, _ in components):
        if positive or not all(_HARMLESS_NOTE.match(note) for _, _, note in components):
            return None
        return 0
    if len(positive) == 1:
        return _plausible(positive[0])
    return _sum_of_fee_and_charge(components)


def _sum_of_fee_and_charge(components: list[tuple[str | None, str, str]]) -> int | None:
    """Phí + lệ phí stated as two separate one-amount components → their sum, else None."""
    if sorted(label or "" for label, _, _ in components) != ["lệ phí", "phí"]:
        return None
    total = 0
    for _, head, note in components:
        values = {v for v, _ in money_amounts(f"{head} ({note})") if v > 0}
        if len(values) != 1:
            return None
        value = _plausible(values.pop())
        if value is None:
            return None
        total += value
    return total


def _plausible(value: float) -> int | None:
    """Whole đồng, or None for fractions and amounts too small to be a real fee."""
    if value != int(value) or value < MIN_PLAUSIBLE_FEE:
        return None
    return int(value)


# --- legal document numbers ----------------------------------------------------------------

# "51/2019/QH14", "82/2015/NĐ-CP", "5568/QĐ-BCA", "12/2021/QĐ-TTg", "02/2020/UBTVQH14",
# "191/2005/TTLT/BQP-BLĐTBXH-BTC", "105/2025/NĐ- CP". Code letters are upper case ("TTg" is
# the one exception); only the QH family carries digits (the legislature).
_SEG = r"(?:TTg|[A-ZĐ]*QH\d{0,2}|[A-ZĐ]+)"
DOC_NUMBER = re.compile(
    rf"(?:(?<![\d/])|(?<=QH\d\d))(?P<digits>\d+)(?P<year>/(?:19|20)\d\d)?/(?P<code>{_SEG}(?:(?:-\s?|/){_SEG})*)"
)
# Issuer codes seen in the exports. Flattened tables glue the next title onto a number
# ("NĐ-CPNghị định", "TT-BCAQUY ĐỊNH"); the longest known code that starts the last segment
# tells where the number ends.
KNOWN_CODES = frozenset("""
    TT NĐ CP QĐ NQ TTg TTLT NQLT QD ND PL L CTN CTNN VBHN BTC BTP BCA BQP BNG BNV BYT BCT BXD
    BGTVT BNNMT BNNPTNT BTNMT BLĐTBXH BKHĐT BKHCN BVHTTDL BGDĐT BTTTT BHXH BNN NHNN VPCP VPQH
    UBND HĐND TANDTC VKSNDTC CSXH TTCP UBDT BDT KTNN TLĐ UBTVQH BQP
""".split())


def _split_code(code: str, following: str) -> tuple[str, int]:
    """(code without the glued start of the next text, number of characters given back)."""
    parts = re.split(r"(-\s?|/)", code)
    last = parts[-1]
    if last in KNOWN_CODES or re.fullmatch(r"[A-ZĐ]*QH\d\d?", last):
        return code, 0
    known = [k for k in KNOWN_CODES if last.startswith(k)]
    if known:
        keep = max(known, key=len)
    elif following[:1].islower():
        keep = last[:-1]  # an unknown code glued to a capitalised word: give its initial back
    else:
        return code, 0
    if not keep and len(parts) > 2:  # the whole segment was the next word: drop its "-" too
        return "".join(parts[:-2]), len(last) + len(parts[-2])
    return "".join(parts[:-1]) + keep, len(last) - len(keep)


def iter_numbers(text: str) -> list[tuple[int, int, str]]:
    """(start, end, normalised number) of every document number in `text`, in order.

    `end` excludes the start of a next title glued onto the number. A year glued in front
    of a number ("sửa đổi 2023" + "23/2023/QH15" → "202323/2023/QH15") is left out of the
    number: a run of five or more digits that begins with a year, in a number that has a
    year of its own, starts after those four digits.
    """
    found = []
    for m in DOC_NUMBER.finditer(text):
        start = m.start()
        digits = m.group("digits")
        if m.group("year") and len(digits) >= 5 and re.match(r"(?:19|20)\d\d", digits):
            start += 4
        code, back = _split_code(m.group("code"), text[m.end():])
        end = m.end() - back
        number = text[start:m.start("code")] + code
        found.append((start, end, normalize_number(number)))
    return found


def normalize_number(number: str) -> str:
    """"105/2025/NĐ- CP" → "105/2025/NĐ-CP": spaces inside a number are typos."""
    return re.sub(r"\s+", "", nfc(number))


def find_number(text: str | None) -> str | None:
    """The first full document number in a text ("Quyết định số 12/2021/QĐ-TTg…" → it)."""
    t = clean(text)
    if t is None:
        return None
    found = iter_numbers(t)
    return found[0][2] if found else None


# --- whole records ---------------------------------------------------------------------------


def code_and_name(code_value: Any, name_value: Any, code_field: str,
                  name_field: str) -> tuple[str, str]:
    """The record's code (spaces removed) and name, or CatalogError naming the field."""
    code = clean(code_value)
    if code is None:
        raise CatalogError(f"bản ghi thiếu mã thủ tục ({code_field})")
    code = code.replace(" ", "")
    name = clean(name_value)
    if name is None:
        raise CatalogError(f"thủ tục {code}: thiếu tên thủ tục ({name_field})")
    return code, name


def conditions_text(value: Any) -> str | None:
    """The conditions cell; "Không" / "Không có" mean there are none."""
    text = clean(value)
    if text is not None and re.fullmatch(r"(?i)không(?: có)?\.?", text):
        return None
    return text


def canonical(code: str, name: str, **fields: Any) -> dict[str, Any]:
    """A canonical record: exports have no short names, summaries, how-tos or aliases."""
    return {"code": code, "name": name, "short_name": None, "summary": None,
            "online_howto": None, "aliases": [], **fields}

"""What a national fee cell says beyond its amount: dated reductions, exemptions, council.

`bot.catalog.importers.cells.parse_fee` turns a fee cell into one amount or "unknown", and
rightly gives up on "bằng 50% mức thu", "Miễn lệ phí cho người thuộc hộ nghèo" or "Mức lệ
phí cụ thể do Hội đồng nhân dân tỉnh quyết định". The fee rules need exactly those parts:
a temporary national reduction with its first and last day, the groups that pay nothing,
and whether the provincial council sets the fee (only then may a province's override
apply). The functions here read them from one cell (the store passes the portal's fee
text and the channel's description joined) and, like `parse_fee`, say nothing rather
than guess: a reduction needs a stated date and a stated percent or amount, an
exemption needs a stated beneficiary, and the standard amount is still `parse_fee`'s.

Survey of the crawl (2026-06, 7 565 channels, 733 distinct fee cells) behind the
patterns: dates are "01/7/2025", "01/07/2025" or "01 tháng 7 năm 2025"; windows are
"(Kể) từ ngày A đến (hết) (ngày) B", "áp dụng đến hết ngày B", "từ kể từ ngày A";
changes are "bằng 50% mức thu", "chỉ thu 50%", "giảm 20%", "Miễn (lệ) phí từ ngày…" and
an amount stated with the window ("áp dụng mức phí 400.000 đồng/hồ sơ kể từ ngày…",
"40.000đ/giấy thông hành (áp dụng đến hết ngày 31/12/2024…)"). The date a document was
signed ("Thông tư số 64/2025/TT-BTC ngày 30/6/2025") is never a window: only a date after
"từ" or "đến" is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from bot.catalog.importers.cells import clean, iter_numbers, money_amounts, parse_fee
from bot.fees.situations import situations_in_text
from bot.text import fold, nfc

__all__ = ["Exemption", "Reduction", "council_sets_fee", "exemptions", "reductions",
           "standard_amount"]


@dataclass(frozen=True)
class Reduction:
    """A temporary change of the standard fee stated in the fee text.

    The resolver applies it instead of the standard amount on the days it is valid, so it
    exists only when the text states both when (`valid_from` or `valid_to`) and how much
    (`percent` or `amount`); "Mức phí kể từ ngày 01/7/2025 đến hết ngày 31/12/2026 theo
    Thông tư số 64/2025/TT-BTC" without a figure is no Reduction.
    """

    channel: str  # "online" when the clause is about online submission, else "any"
    percent: float | None  # share of the standard amount that is paid: 50.0, 0.0 ("Miễn")
    amount: int | None  # the amount in đồng paid while it applies, when stated
    valid_from: date | None  # first day it applies, None when not stated
    valid_to: date | None  # last day it applies (inclusive), None when not stated
    legal_basis: str | None  # document number named in or right after the clause
    text: str  # the clause itself, cleaned, for the legal trace


@dataclass(frozen=True)
class Exemption:
    """Who pays nothing (or less) according to the fee text.

    `tags` are `bot.fees.situations` tags the sentence names; they may be empty when the
    groups are only referenced ("thuộc diện được miễn phí theo quy định tại Điều 4 Thông
    tư số 75/2022/TT-BTC") or are not citizens' situations ("tổ hợp tác"): the bot can
    still cite `text`.
    """

    tags: tuple[str, ...]
    text: str  # the sentence stating it, cleaned
    legal_basis: str | None  # first document number in that sentence, if any


# --- text helpers ------------------------------------------------------------------------


# The unit left of the portal's head ("20,000,000 VNĐ(đồng/lần (Miễn phí từ …)").
_LEADING_UNIT = re.compile(r"^(?:Việt Nam Đồng|VNĐ|VND|Đồng|đồng|đông|đ)(?:/[^\s(/]+)*(?=[\s(]|$)")


def _tidy(text: str) -> str:
    """A clause for people: NFC, one space, no bullet, unit or dangling bracket at the ends."""
    t = re.sub(r"\s+", " ", nfc(text)).strip()
    before = None
    while t != before:
        before = t
        t = re.sub(r"^[\s\-–+*•.,;:]+|[\s,;]+$", "", t)
        if t.startswith("(") and t.count("(") > t.count(")"):
            t = t[1:]
        if t.endswith(")") and t.count(")") > t.count("("):
            t = t[:-1]
        if t.startswith("(") and t.endswith(")") and _closes_at_end(t):
            t = t[1:-1]
        t = _LEADING_UNIT.sub("", t)
    return t


def _closes_at_end(t: str) -> bool:
    """Whether the bracket opened at t[0] is the one closed at t[-1]."""
    depth = 0
    for i, ch in enumerate(t):
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if depth == 0:
            return i == len(t) - 1
    return False


# The portal's fee cell is "<amount or Miễn phí>(<explanation>)": the head is the portal's
# own field, not part of any clause of the explanation.
_HEAD = re.compile(
    r"^\s*(?:\d[\d.,]*\s*(?:Việt\s*Nam\s*Đồng|VNĐ|VND|Đồng|đồng)|Miễn\s+phí|Không\s+có\s+thông\s+tin)"
    r"\s*(?=\()", re.IGNORECASE)
# A bullet: "- ", "+ ", "* ", "• " at the start or after a space or an opening bracket.
_BULLET = re.compile(r"(?:^|(?<=[\s(]))[-–+*•](?=\s)")


def _is_upper_letter(ch: str) -> bool:
    return ch.isalpha() and ch.isupper()


def _boundaries(t: str, semicolons: bool) -> list[int]:
    """Offsets where a clause starts: after the head, a sentence end, a bullet, a newline.

    A "." ends a sentence when followed by a space, ")" or a capital ("đăng ký.Miễn"),
    never inside a number ("70.000"). `semicolons`: ";" ends a clause too (reductions:
    "50.000 đồng/lần (…);25.000 đồng/lần (áp dụng…)"); exemptions keep ";" because their
    lists of groups are written with it.
    """
    cuts = {0, len(t)}
    head = _HEAD.match(t)
    if head:
        cuts.add(head.end())
    for i, ch in enumerate(t):
        nxt = t[i + 1] if i + 1 < len(t) else ""
        if ch in ".!?" and (nxt == "" or nxt.isspace() or nxt == ")" or _is_upper_letter(nxt)):
            cuts.add(i + 1)
        elif ch == ";" and semicolons:
            cuts.add(i + 1)
        elif ch == "\n":
            cuts.add(i + 1)
    for m in _BULLET.finditer(t):
        cuts.add(m.start())
    return sorted(cuts)


def _segments(t: str, semicolons: bool) -> list[tuple[int, int]]:
    """(start, end) of the clauses of `t` that hold more than punctuation."""
    cuts = _boundaries(t, semicolons)
    return [(a, b) for a, b in zip(cuts, cuts[1:], strict=False) if re.search(r"\w", t[a:b])]


def _newest_number(text: str) -> str | None:
    """The most recent document number in a clause (ties: the first).

    A temporary change is issued after the tariff it changes, so "bằng 50% mức thu … Thông
    tư số 61/2023/TT-BTC … (khoản 1 Điều 1 Thông tư số 64/2025/TT-BTC)" is 64/2025.
    """
    best: tuple[int, str] | None = None
    for _, _, number in iter_numbers(text):
        year = re.search(r"/((?:19|20)\d\d)/", number)
        key = int(year.group(1)) if year else 0
        if best is None or key > best[0]:
            best = (key, number)
    return best[1] if best else None


# --- reductions --------------------------------------------------------------------------


def _date_pattern(name: str) -> str:
    return (rf"(?:(?P<{name}d>\d{{1,2}})\s*[/.\-]\s*(?P<{name}m>\d{{1,2}})\s*[/.\-]\s*"
            rf"(?P<{name}y>(?:19|20)\d\d)|(?P<{name}wd>\d{{1,2}})\s+tháng\s+"
            rf"(?P<{name}wm>\d{{1,2}})\s+năm\s+(?P<{name}wy>(?:19|20)\d\d))")


_FROM = rf"(?:kể\s+)?từ\s+(?:kể\s+từ\s+)?(?:ngày\s+)*{_date_pattern('f')}"


def _to(name: str) -> str:
    return rf"đến\s+(?:hết\s+)?(?:ngày\s+)*{_date_pattern(name)}"


# Group names: f = first day, t = last day after a first day, u = a last day alone.
_WINDOW = re.compile(rf"{_FROM}(?:\s*,?\s*{_to('t')})?|(?:áp\s+dụng\s+)?{_to('u')}",
                     re.IGNORECASE)

# "bằng 50% mức thu", "chỉ thu 50%", "mức lệ phí là 50%", "50% mức thu": the share paid.
_PAID = re.compile(r"(?:\b(?:bằng|thu|là)\s+(\d{1,3}(?:[.,]\d+)?)\s*%)|"
                   r"(?:(?<![\d.,])(\d{1,3}(?:[.,]\d+)?)\s*%\s+mức\s+(?:thu|phí|lệ\s+phí))",
                   re.IGNORECASE)
# "giảm 20%": the share taken off.
_CUT = re.compile(r"\bgiảm\s+(\d{1,3}(?:[.,]\d+)?)\s*%", re.IGNORECASE)
# "Miễn phí từ ngày", "Miễn lệ phí từ", "(Miễn kể từ", and the portal's "Miễnphí", "Miễ phí":
# a waiver right before the window. "quy định mức thu, miễn một số khoản phí" (the title
# of Thông tư 64/2025/TT-BTC) is not next to a window and does not count.
_WAIVED = re.compile(r"\bmiễ\w*\s*(?:thu\s*)?(?:lệ\s*)?(?:phí\s*)?$", re.IGNORECASE)
# "áp dụng mức phí 400.000 đồng", "mức thu lệ phí là 115.000 đồng", "giảm 20%: 1.600.000".
_AMOUNT_INTRO = re.compile(
    r"(?:\bmức\s+(?:thu\s+)?(?:lệ\s+)?phí(?:\s+là)?|\bgiảm\s+\d{1,3}\s*%)\s*:?\s*"
    r"(?=\d)", re.IGNORECASE)
_AMOUNT_AT = re.compile(
    r"\d[\d.,]*(?:\s*(?:triệu|nghìn|ngàn))?(?:\s*(?:Việt\s*Nam\s*Đồng|VNĐ|VND|đồng|đ)"
    r"(?![A-Za-zÀ-ỹ]))?", re.IGNORECASE)
# On folded text: "trực tuyến" and the portal's typo "trực tuyển" both fold to "truc tuyen".
_ONLINE = re.compile(r"\btruc\s+tuyen\b|\bqua\s+cong\s+dich\s+vu\s+cong\b|"
                     r"\bqua\s+mang\s+dien\s+tu\b")


def _date(m: re.Match[str], name: str) -> date | None:
    g = m.groupdict()
    for d, mo, y in ((f"{name}d", f"{name}m", f"{name}y"), (f"{name}wd", f"{name}wm", f"{name}wy")):
        if g.get(d):
            try:
                return date(int(g[y]), int(g[mo]), int(g[d]))
            except ValueError:
                return None
    return None


def _percent(clause: str, window_start: int) -> float | None:
    """The share paid that the clause states, when it states exactly one."""
    found = set()
    for m in _PAID.finditer(clause):
        found.add(float((m.group(1) or m.group(2)).replace(",", ".")))
    for m in _CUT.finditer(clause):
        found.add(100.0 - float(m.group(1).replace(",", ".")))
    if _WAIVED.search(clause[:window_start]):
        found.add(0.0)
    found = {p for p in found if 0.0 <= p <= 100.0}
    return found.pop() if len(found) == 1 else None


def _amount(clause: str, windows: list[re.Match[str]]) -> int | None:
    """The amount paid while the change applies, when the clause states one and only one.

    An amount introduced as the applicable rate ("áp dụng mức phí 400.000 đồng", "giảm
    20%: 1.600.000") wins; otherwise the clause's amounts outside its dates must be one
    distinct value ("- 25.000đ/tem “AB” (áp dụng đến hết ngày 31/12/2026 …)").
    """
    intro = {v for m in _AMOUNT_INTRO.finditer(clause)
             if (a := _AMOUNT_AT.match(clause, m.end()))
             for v, kind in money_amounts(a.group(0)) if kind == "VND"}
    if len(intro) == 1:
        return _whole(intro.pop())
    if intro:
        return None
    rest = clause
    for w in reversed(windows):
        rest = rest[:w.start()] + " " + rest[w.end():]
    for start, end, _ in reversed(iter_numbers(rest)):
        rest = rest[:start] + " " + rest[end:]
    amounts = money_amounts(rest)
    if any(kind != "VND" for _, kind in amounts):
        return None
    values = {v for v, _ in amounts}
    return _whole(values.pop()) if len(values) == 1 else None


def _whole(value: float) -> int | None:
    return int(value) if value == int(value) and value >= 1000 else None


def _reduction(t: str, start: int, end: int) -> tuple[int, Reduction] | None:
    """(end of the clause as quoted, its Reduction), or None without a date or a figure."""
    clause = t[start:end]
    windows = list(_WINDOW.finditer(clause))
    if not windows:
        return None
    w = windows[0]
    valid_from, valid_to = _date(w, "f"), _date(w, "t") or _date(w, "u")
    if len(windows) > 1 or (valid_from is None and valid_to is None):
        return None  # two windows in one clause: which figure goes with which is unclear
    percent = _percent(clause, w.start())
    amount = _amount(clause, windows) if percent is None else _stated_after(clause)
    if percent is None and amount is None:
        return None
    if percent is None and valid_to is None:
        return None  # "Tối đa 700.000 đồng … (thực hiện từ ngày 15/01/2019)": a tariff's start
    stop = _bracket_stop(clause, w.start())
    if stop is not None and not _has_figure(clause[stop:]):
        clause, end = clause[:stop], start + stop
    channel = "online" if _ONLINE.search(fold(clause)) else "any"
    basis = _newest_number(clause) or _number_right_after(t, end)
    return end, Reduction(channel, percent, amount, valid_from, valid_to, basis,
                          _tidy(clause))


def _bracket_stop(clause: str, at: int) -> int | None:
    """Just past the bracket around `at` (and brackets closing right after it), or None.

    The flattened table glues the next cell onto a bracketed clause ("(Miễn phí từ ngày
    07/4/2026 đến 30/6/2026 theo … 40/2026/TT-BTC)15 ngày, kể từ ngày nhận…"): the
    clause ends with its bracket.
    """
    opened = _open_brackets(clause, at)
    close = _closing_bracket(clause, at) if opened else None
    if close is None:
        return None
    stop = close + 1
    still_open = len(opened) - 1
    while still_open and clause[stop:].lstrip().startswith(")"):
        stop = len(clause) - len(clause[stop:].lstrip()) + 1
        still_open -= 1
    return stop


def _open_brackets(text: str, at: int) -> list[int]:
    """Positions of the "(" still open at `at`, outermost first."""
    opened: list[int] = []
    for i, ch in enumerate(text[:at]):
        if ch == "(":
            opened.append(i)
        elif ch == ")" and opened:
            opened.pop()
    return opened


def _closing_bracket(text: str, at: int) -> int | None:
    """Position of the ")" closing the innermost bracket open at `at`, or None."""
    depth = 1
    for i in range(at, len(text)):
        depth += {"(": 1, ")": -1}.get(text[i], 0)
        if depth == 0:
            return i
    return None


def _has_figure(text: str) -> bool:
    return "%" in text or bool(money_amounts(text))


def _stated_after(clause: str) -> int | None:
    """With a percent, only an amount stated as the result ("giảm 20%: 1.600.000") counts."""
    m = re.search(r"\bgiảm\s+\d{1,3}\s*%\s*:?\s*(?=\d)", clause, re.IGNORECASE)
    a = _AMOUNT_AT.match(clause, m.end()) if m else None
    values = {v for v, kind in money_amounts(a.group(0)) if kind == "VND"} if a else set()
    return _whole(values.pop()) if len(values) == 1 else None


def _number_right_after(t: str, end: int) -> str | None:
    """A document number in a bracket or "theo …" that directly follows the clause."""
    m = re.match(r"[\s.;,]*(?:\(|theo\b)([^()]{0,120})", t[end:], re.IGNORECASE)
    if not m:
        return None
    found = iter_numbers(m.group(1))
    return found[0][2] if found else None


def _reduction_spans(t: str) -> list[tuple[tuple[int, int], Reduction]]:
    """Every clause of `t` that states a plausible Reduction, with its span.

    A clause holding only a window ("* Theo quy định tại Thông tư 64/2025/TT-BTC (kể từ
    ngày 01/7/2025 đến hết ngày 31/12/2026).") takes its figure from the "+ …" item right
    after it ("+ 03 triệu đồng/Giấy chứng nhận."), as the portal lists them.

    A reduced amount above every other amount of the text is a typo, not a reduction
    ("50,000 Việt Nam Đồng(25.000.000đ/giấy thông hành (áp dụng đến hết ngày 31/12/2026
    …))" for 25.000đ) and is dropped; the portal's "25 VNĐ" head counts as 25.000 đ here,
    as `parse_fee` explains.
    """
    segments = _segments(t, semicolons=True)
    found: list[tuple[tuple[int, int], Reduction]] = []
    i = 0
    while i < len(segments):
        start, end = segments[i]
        got = _reduction(t, start, end)
        if got is None and i + 1 < len(segments) and _WINDOW.search(t[start:end]):
            n_start, n_end = segments[i + 1]
            if t[n_start:n_end].lstrip().startswith("+") and not _WINDOW.search(
                    t[n_start:n_end]):
                got = _reduction(t, start, n_end)
                if got is not None:
                    i += 1
        if got is not None:
            found.append(((start, got[0]), got[1]))
        i += 1
    amounts = [v for v, kind in money_amounts(t) if kind == "VND" and v > 0]
    return [(span, r) for span, r in found if _plausible(r.amount, amounts)]


def _without(t: str, spans: list[tuple[int, int]]) -> str:
    for start, end in sorted(spans, reverse=True):
        t = t[:start] + " " + t[end:]
    return t


def _plausible(amount: int | None, amounts: list[float]) -> bool:
    """A reduced amount is not above every other amount of the cell ("25 VNĐ" = 25.000)."""
    others = [v if v >= 1000 else v * 1000 for v in amounts if v != amount]
    return amount is None or not others or amount <= max(others)


def reductions(text: str | None) -> list[Reduction]:
    """Every dated temporary change the text states, in order, each once.

    A clause (sentence, ";"-item or bullet) counts when it has a window ("Kể từ ngày
    01/7/2025 đến hết ngày 31/12/2026", "áp dụng đến hết ngày 31/12/2024", "từ ngày … đến
    ngày …") and a figure: a share paid ("bằng 50% mức thu" → 50, "giảm 20%" → 80, "Miễn
    phí từ ngày …" → 0) or an amount ("áp dụng mức phí 400.000 đồng/hồ sơ kể từ…"). An
    amount alone also needs a last day: an amount with only a first day is a tariff's
    entry into force, not a temporary change. Clauses with two windows, with several
    candidate amounts ("160.000/hộ chiếu, … 320.000đ/hộ chiếu (áp dụng đến hết …)") or
    with a percentage of a named tariff but no window ("Bằng 50% mức thu lệ phí quy định
    tại điểm 1 Biểu phí … Thông tư số 64/2025/TT-BTC ngày 30 tháng 6 năm 2025") are left
    out: the figure or the period is not stated, and guessing would mislead.

    The channel is "online" when the clause is about online submission ("theo hình thức
    trực tuyến", the portal's "trực tuyển", "qua cổng dịch vụ công"), else "any". The
    same change stated twice (portal text and description) is returned once, keeping
    the more complete statement.
    """
    t = clean(text)
    if t is None:
        return []
    out: list[Reduction] = []
    for _, r in _reduction_spans(t):
        if any(_covers(o, r) for o in out):
            continue
        out = [o for o in out if not _covers(r, o)]
        out.append(r)
    return out


def _covers(a: Reduction, b: Reduction) -> bool:
    """`a` states everything `b` states (b adds no date, figure or basis of its own)."""
    if (a.channel, a.percent, a.amount) != (b.channel, b.percent, b.amount):
        return False
    return all(y is None or x == y for x, y in ((a.valid_from, b.valid_from),
                                                (a.valid_to, b.valid_to),
                                                (a.legal_basis, b.legal_basis)))


def standard_amount(text: str | None) -> int | None:
    """The standard amount of a cell whose only ambiguity is a recognised reduction.

    "70,000 Việt Nam Đồng(… 70.000 đồng/thẻ căn cước. Kể từ ngày 01/01/2025 … bằng 50% mức
    thu …)" → 70000, where `parse_fee` says None because of the "%". The clauses that
    `reductions` recognises are cut out and `parse_fee` reads the rest, so every one of its
    rules still holds (None when it says None). Three more refusals: a cut clause that
    states an amount of its own, other than the reduced one, would hide a component
    ("400,000 VNĐ(… Phí: 1700000 Đồng (Sát hạch thực hành) (Miễn phí từ ngày …))"); an
    amount equal to a reduction's amount is the reduced one, not the standard ("40,000 Việt
    Nam Đồng(40.000đ/giấy thông hành (áp dụng đến hết ngày 31/12/2024 …))"); and "free"
    left over once a reduction is cut out is the portal's "Miễn phí" placeholder.
    """
    t = clean(text)
    if t is None:
        return None
    spans = _reduction_spans(t)
    rest = _without(t, [span for span, _ in spans])
    stated = {v for v, _ in money_amounts(rest)}
    for (start, end), r in spans:
        inside = money_amounts(t[start:end])
        if any(kind != "VND" or (v > 0 and v not in stated and v != r.amount)
               for v, kind in inside):
            return None  # the cut would hide a component ("Phí: 1700000 Đồng (…) Miễn phí từ…")
    amount = parse_fee(rest)
    if spans and (amount == 0 or amount in {r.amount for _, r in spans}):
        return None
    return amount


# --- exemptions --------------------------------------------------------------------------

# "Miễn lệ phí", "miễn phí", "miễn chi phí", "miễn thu lệ phí", "Không thu lệ phí",
# "không phải nộp phí"; "được miễn cho …"; "được giảm 50% mức lệ phí". Not "miễn thuế",
# "miễn thị thực", "miễn nhiệm", nor the title "quy định mức thu, miễn một số khoản phí".
_EXEMPT = re.compile(
    r"(?P<by>\bđược\s+)?(?:"
    r"\bmiễn\s+(?:thu\s+|nộp\s+)?(?:lệ\s+phí|chi\s+phí|phí)\b|"
    r"\bkhông\s+(?:thu|phải\s+nộp|phải\s+trả)\s+(?:lệ\s+)?phí\b|"
    r"(?<=được\s)miễn\b(?=\s+(?:cho|đối\s+với|khi)\b)|"
    r"(?<=được\s)giảm\s+(?:\d{1,3}\s*%\s+)?(?:mức\s+)?(?:lệ\s+)?phí\b)",
    re.IGNORECASE)
# Who it is for: stated after the trigger ("Miễn lệ phí cho …", "đối với …", "khi …").
_BENEFICIARY = re.compile(r"\b(?:cho(?!\s+kênh\b)|đối\s+với|trường\s+hợp|khi)\b", re.IGNORECASE)


def _exempt_sentences(t: str) -> list[tuple[int, int]]:
    """Sentences, a list "… những trường hợp sau: + …. + …" kept with its items."""
    out: list[tuple[int, int]] = []
    for start, end in _segments(t, semicolons=False):
        if out and t[start:end].lstrip().startswith("+") and _EXEMPT.search(
                t[out[-1][0]:out[-1][1]]) and ":" in t[out[-1][0]:out[-1][1]]:
            out[-1] = (out[-1][0], end)
        else:
            out.append((start, end))
    return out


def exemptions(text: str | None) -> list[Exemption]:
    """Sentences saying who pays nothing or less, each once, in order.

    A sentence counts when it waives or lowers the fee ("Miễn lệ phí", "Không thu lệ phí",
    "được miễn phí", "được giảm 50% mức lệ phí") for someone it names: the beneficiary is
    the subject ("Tổ chức khoa học và công nghệ được miễn lệ phí…", "công dân thuộc diện
    được miễn phí theo quy định tại Điều 4 Thông tư số 75/2022/TT-BTC") or follows the
    waiver ("Miễn lệ phí cho người thuộc gia đình có công với cách mạng; người thuộc hộ
    nghèo; người khuyết tật", "Không thu lệ phí đăng ký đối với tổ hợp tác"). A bare "Miễn
    lệ phí." or the portal's "Miễn phí" head says the fee is free for everyone (that is
    `parse_fee`'s business), and "Miễn phí từ ngày 07/4/2026 đến 30/6/2026" is a dated
    change for everyone (a Reduction): neither is an exemption.
    """
    t = clean(text)
    if t is None:
        return []
    out: list[Exemption] = []
    seen: set[str] = set()
    for start, end in _exempt_sentences(t):
        sentence = t[start:end]
        trigger = next((m for m in _EXEMPT.finditer(sentence) if _for_someone(sentence, m)),
                       None)
        if trigger is None:
            continue
        cleaned = _tidy(_statement(sentence, trigger.start()))
        if cleaned in seen:
            continue
        seen.add(cleaned)
        found = iter_numbers(cleaned)
        out.append(Exemption(tuple(situations_in_text(cleaned)), cleaned,
                             found[0][2] if found else None))
    return out


def _statement(sentence: str, at: int) -> str:
    """The part of a sentence that states the waiver found at `at`.

    Inside a bracket, the bracket ("03 USD/Giấy phép (trừ trường hợp được miễn lệ phí theo
    quy định của Bộ Tài chính)"); then from the ";"-item holding the waiver to the end, so a
    list of groups stays whole but an unrelated item before it goes ("(áp dụng mức phí
    25.000 đồng/hồ sơ …); Tổ chức hành nghề luật sư … được miễn lệ phí …").
    """
    opened = _open_brackets(sentence, at)
    if opened:
        start = opened[-1] + 1
        close = _closing_bracket(sentence, at)
        end = len(sentence) if close is None else close
        sentence, at = sentence[start:end], at - start
    item = sentence.rfind(";", 0, at)
    return sentence[item + 1:] if item >= 0 else sentence


def _for_someone(sentence: str, m: re.Match[str]) -> bool:
    """The waiver names a beneficiary and is not a dated waiver for everyone.

    Not a quoted "'Miễn phí'" (a description citing the portal's cell), not "từ ngày …"
    right after it, and "cho kênh …" names a channel, not a beneficiary.
    """
    if sentence[:m.start()].rstrip()[-1:] in ("'", '"', "“", "‘"):
        return False
    after = sentence[m.end():]
    if re.match(r"\s*(?:kể\s+)?từ\s", after, re.IGNORECASE):
        return False
    if m.group("by") and re.search(r"\w", sentence[:m.start()]):
        return True
    return bool(_BENEFICIARY.search(after))


# --- council ------------------------------------------------------------------------------

_COUNCIL = re.compile(r"\bhoi\s+dong\s+nhan\s+dan\b|\bhdnd\b")
# The council deciding something: "do HĐND … quyết định", "theo quy định của HĐND", "HĐND
# cấp tỉnh quyết định đối với …", "thẩm quyền quyết định của HĐND", "NQ-HĐND".
_DECIDES_AFTER = re.compile(r"^[^.;]{0,60}?\b(?:quyet\s+dinh|quy\s+dinh|ban\s+hanh)\b")
_DECIDES_BEFORE = re.compile(r"(?:\b(?:do|cua|theo)\s+(?:\w+\s+){0,3}|\bnq-)$")
_TIME_ANCHOR = re.compile(r"\bngay\s+$")
_FEE_WORD = re.compile(r"\bphi\b|\bmuc\s+thu\b")
# A fee cell that is only the reference: "Theo quy định của Hội đồng nhân dân cấp tỉnh".
_BARE_REFERENCE = re.compile(r"[\W_]*theo\s+(?:quy\s+dinh|quyet\s+dinh)\s+cua\s+"
                             r"(?:hoi\s+dong\s+nhan\s+dan|hdnd)\b")


def council_sets_fee(text: str | None) -> bool:
    """Whether the text says the provincial People's Council sets (part of) the fee.

    True for "Mức lệ phí cụ thể do Hội đồng nhân dân tỉnh, thành phố trực thuộc Trung
    ương quyết định", "theo quy định của Hội đồng nhân dân cấp tỉnh", "Mức lệ phí (nếu
    có) theo quyết định của HĐND cấp tỉnh", "Chế độ thu, nộp, quản lý và sử dụng phí thẩm
    định theo quy định của HĐND cấp tỉnh", with or without marks, any case. Decision
    (survey of every channel's fee text and description in the crawl): a mention for
    one sub-activity also counts ("Bình tuyển, công nhận cây mẹ…: Hội đồng nhân dân cấp
    tỉnh quyết định đối với hoạt động … do cơ quan địa phương thực hiện"), because part
    of the fee is then local and only the province can say it. What does not count is
    the council as a date or a step of the procedure ("15 ngày kể từ ngày Hội đồng nhân
    dân cấp tỉnh thông qua Chương trình phát triển nhà ở"): the mention must make the
    council decide or regulate ("do/của/theo … HĐND", "HĐND … quyết định/quy định", a
    council resolution "NQ-HĐND"), not follow "ngày", and its sentence must be about a
    fee ("phí", "mức thu") or be the bare reference a fee cell writes ("Theo quy định của
    Hội đồng nhân dân cấp tỉnh").
    """
    t = clean(text)
    if t is None:
        return False
    folded = fold(t)
    for m in _COUNCIL.finditer(folded):
        before = folded[max(0, m.start() - 40):m.start()]
        if _TIME_ANCHOR.search(before):
            continue
        if not (_DECIDES_AFTER.search(folded[m.end():]) or _DECIDES_BEFORE.search(before)):
            continue
        sentence = _sentence_around(folded, m.start(), m.end())
        if _FEE_WORD.search(sentence) or _BARE_REFERENCE.match(sentence):
            return True
    return False


def _sentence_around(folded: str, start: int, end: int) -> str:
    """The sentence holding [start, end): from the previous "." or newline to the next."""
    left = max(folded.rfind(". ", 0, start), folded.rfind("\n", 0, start))
    right_candidates = [i for i in (folded.find(". ", end), folded.find("\n", end)) if i >= 0]
    right = min(right_candidates) if right_candidates else len(folded)
    return folded[left + 1:right]

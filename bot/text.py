"""Vietnamese text normalisation shared by the NLU, the catalog search and the gateway.

Citizens type with and without diacritics, in NFC or NFD, with old-style tone placement
("hoà" vs "hòa") and teencode. Everything that compares text goes through `fold`, which
keeps one character per input character so that offsets computed on the folded text are
valid on the NFC original.
"""

from __future__ import annotations

import re
import unicodedata

# Two tone placements are in use ("hoà" and "hòa"); normalise to "hòa", which is what
# Underthesea and the portal use. Each pair has the same length, so offsets survive.
_TONE_PLACEMENT = {
    "oà": "òa", "oá": "óa", "oả": "ỏa", "oã": "õa", "oạ": "ọa",
    "oè": "òe", "oé": "óe", "oẻ": "ỏe", "oẽ": "õe", "oẹ": "ọe",
    "uỳ": "ùy", "uý": "úy", "uỷ": "ủy", "uỹ": "ũy", "uỵ": "ụy",
}
# "qu" is a consonant: in "quý" the tone already sits on the vowel nucleus. Only open
# syllables differ between the styles: in "toàn", "hoàng", "huỳnh" the mark is on the
# second vowel in both, so a following letter leaves the pair alone.
_TONE_RE = re.compile(
    "(?<![qQ])(?:" + "|".join(map(re.escape, _TONE_PLACEMENT)) + r")(?![^\W\d_])",
    re.IGNORECASE,
)

# Common teencode/short forms mapped to the folded word the model and search expect.
TEENCODE = {
    "ko": "khong", "k": "khong", "hok": "khong", "hong": "khong", "kh": "khong", "khg": "khong",
    "dc": "duoc", "đc": "duoc", "dk": "duoc", "j": "gi", "z": "vay", "v": "vay",
    "bn": "bao nhieu", "bnhieu": "bao nhieu", "bao nhiu": "bao nhieu",
    "ntn": "nhu the nao", "mk": "minh", "mik": "minh", "mjk": "minh", "vs": "voi",
    "ak": "a", "ah": "a", "r": "roi", "ns": "noi", "trc": "truoc", "cx": "cung",
    "lm": "lam", "ng": "nguoi", "nc": "nuoc", "tgian": "thoi gian", "tg": "thoi gian",
    "gplx": "giay phep lai xe", "cmnd": "chung minh nhan dan",
}


def nfc(text: str) -> str:
    """NFC-normalise: composed code points, as the portal and our data use."""
    return unicodedata.normalize("NFC", text)


def normalize(text: str) -> str:
    """NFC plus new-style tone placement; length-preserving on NFC input."""
    text = nfc(text)
    return _TONE_RE.sub(lambda m: _match_case(m.group(0), _TONE_PLACEMENT[m.group(0).lower()]),
                        text)


def _match_case(src: str, repl: str) -> str:
    return "".join(r.upper() if s.isupper() else r for s, r in zip(src, repl, strict=True))


def strip_accents_char(ch: str) -> str:
    """Remove diacritics from one NFC character, mapping đ/Đ to d/D (NFD does not)."""
    if ch in "đĐ":
        return "d" if ch == "đ" else "D"
    base = unicodedata.normalize("NFD", ch)[0]
    return base


# One table lookup per character instead of a Python call: folding runs over every
# document of a catalog with thousands of procedures each time an index is built.
_STRIP_TABLE = {
    cp: strip_accents_char(chr(cp))
    for cp in range(0xC0, 0x2000)
    if strip_accents_char(chr(cp)) != chr(cp)
}


def strip_accents(text: str) -> str:
    """Accent-free copy of NFC text with exactly one output character per input character."""
    return text.translate(_STRIP_TABLE)


def fold(text: str) -> str:
    """Lower-case, accent-free, NFC, same length as `normalize(text)`: the comparison key.

    Tone placement ("hoà"/"hòa") needs no normalising here: both fold to "hoa".
    """
    return strip_accents(nfc(text)).lower()


_WORD_RE = re.compile(r"[0-9a-z]+", re.IGNORECASE)


def has_tone_marks(word: str) -> bool:
    """Whether a word carries Vietnamese vowel or tone marks (đ alone does not count).

    Teencode is typed without marks: "hong" may be "không", but "hồng" (sổ hồng) and
    "hỏng" (hư hỏng) are words of their own and must not be expanded.
    """
    plain = word.replace("đ", "d").replace("Đ", "D")
    return strip_accents(plain) != plain


def fold_words(text: str, expand_teencode: bool = True) -> list[str]:
    """Folded syllables of `text`, teencode expanded: the unit of catalog matching."""
    norm = nfc(text)
    folded = strip_accents(norm).lower()  # same length as `norm`: offsets match
    words: list[str] = []
    for m in _WORD_RE.finditer(folded):
        w = m.group(0)
        if (expand_teencode and w in TEENCODE
                and not has_tone_marks(norm[m.start():m.end()])):
            words.extend(TEENCODE[w].split())
        else:
            words.append(w)
    return words


def vnd(amount: int) -> str:
    """1500000 → "1.500.000 đồng": Vietnamese groups thousands with dots."""
    return f"{amount:,}".replace(",", ".") + " đồng"


# --------------------------------------------------------------------------- personal data
#
# `mask_pii` is the one detector of personal data: logs, the status notes shown to citizens,
# the status import and the NLU corrections gate (bot/console/corrections.py) all use it, so
# what a log hides is exactly what may not enter the training data.
#
# Numbers are typed in many shapes: "0912345678", "0912 345 678", "0912.345.678",
# "0912-345-678", "+84 912 345 678", "(+84) 912 345 678", "84912345678", citizen IDs
# "001203004567" / "001 203 004 567" / "001.203.004.567", the old 9-digit CMND
# "025123456". So numbers are found as *runs* of digit groups joined by short separators
# (`_NUMBER_RUN_RE`, in C), and only a run with enough digits is read unit by unit in Python
# (`_number_spans`) for a span whose digits have a personal number's length. Every pattern
# is linear on any input: separators are bounded, a unit consumes one digit per step, units
# and separators share no character, and a run is matched once.

_SPACE = "[ \t\u00a0]"
_DASH = "\\-\u2010-\u2014\u2212"  # the hyphen and its look-alikes from phone keyboards
_SEP = rf"(?:{_SPACE}{{0,3}}[.{_DASH}]{_SPACE}{{0,3}}|{_SPACE}{{1,3}})"
_PAREN = rf"\({_SPACE}?\+?\d{{1,4}}{_SPACE}?\)"  # "(+84)", "(84)", "(024)"
# A unit: 2 digits or more, groups joined by a bare "." ("0912.345.678", "100.000.000",
# "1.001234"). A unit is never split, so part of an amount or of a procedure code
# ("2.002345.000.00.00") is never read as a number of its own; a lone digit is no unit, so
# "1 2 3 4 5 6 7 8 9" is no ID.
_UNIT = r"(?:\+\d|\d\.?\d)(?:\.?\d)*"  # after "+" one digit will do: "+1 202 555 0143"
_NUMBER_RUN_RE = re.compile(
    rf"(?<!\d)(?<!\d\.)(?:{_PAREN}{_SPACE}{{0,3}})?{_UNIT}(?:{_SEP}{_UNIT})*")
_NUMBER_UNIT_RE = re.compile(rf"{_PAREN}|{_UNIT}")
_NON_DIGIT_RE = re.compile(r"\D+")
# Money is not personal data: "150.000.000 đồng", "150 000 000đ", "2.500.000 VNĐ".
_CURRENCY_RE = re.compile(rf"{_SPACE}{{0,3}}(?:đồng|đ|vnđ|vnd|dong|₫)(?![^\W\d_])",
                          re.IGNORECASE)
# e-mail addresses: a local part (at most 64 characters, RFC 5321) started where a word
# starts, so that no position inside a long word is tried again.
_EMAIL_RE = re.compile(r"(?<![\w.+-])[\w.+-]{1,64}@[\w-]{1,63}(?:\.[\w-]{1,63})+")

_MIN_PII_DIGITS = 8  # "+" and 8 digits: the shortest phone number masked
_MAX_PII_DIGITS = 15  # E.164's longest phone number; citizen IDs have 12
_MAX_PII_UNITS = 6  # "09 12 34 56 78" is five


def _pii_kind(digits: str, international: bool) -> str | None:
    """"phone", "id" or None for the digits of a candidate span.

    Phones: "+…" with 8 to 15 digits; "84" and 9 digits; "0" and 9 (mobile) or 10 (landline)
    digits. IDs: 12 digits (CCCD) and 9 (CMND), whatever they start with.
    """
    n = len(digits)
    if international:
        return "phone" if _MIN_PII_DIGITS <= n <= _MAX_PII_DIGITS else None
    if (n == 11 and digits.startswith("84")) or (n in (10, 11) and digits.startswith("0")):
        return "phone"
    return "id" if n in (9, 12) else None


def _mask_number(digits: str, kind: str, international: bool) -> str:
    """A phone keeps its prefix and 2 + 2 digits ("091*****78", "+8498*****21"); an ID its
    first and last 3 digits of 12 ("001******567") or 2 of 9 ("02*****56")."""
    if kind == "id":
        keep = 3 if len(digits) == 12 else 2
        return digits[:keep] + "*" * (len(digits) - 2 * keep) + digits[-keep:]
    lead = 1 if digits.startswith("0") else 2
    head, rest = digits[:lead], digits[lead:]
    return ("+" if international else "") + head + rest[:2] + "*****" + rest[-2:]


def _number_spans(text: str, run: re.Match[str]) -> list[tuple[int, int, str]]:
    """(start, end, mask) of the personal numbers in one run of `text`.

    From each unit, the longest span of at most `_MAX_PII_UNITS` units that reads as a
    personal number wins; "+" or "(…)" only opens a span; an amount followed by a currency
    word is left alone. Each unit is looked at at most `_MAX_PII_UNITS` times.
    """
    offset = run.start()
    starts: list[int] = []
    ends: list[int] = []
    digits: list[str] = []
    plus: list[bool] = []
    for m in _NUMBER_UNIT_RE.finditer(run.group(0)):
        unit = m.group(0)
        starts.append(offset + m.start())
        ends.append(offset + m.end())
        digits.append(_NON_DIGIT_RE.sub("", unit) if unit[0] == "(" else
                      unit.replace(".", "").lstrip("+"))
        plus.append(unit[0] == "+" or unit[:2] == "(+" or (unit[0] == "(" and
                                                            digits[-1].startswith("84")))
    found: list[tuple[int, int, str]] = []
    i, count = 0, len(digits)
    while i < count:
        best: tuple[int, str] | None = None
        span = ""
        for j in range(i, min(count, i + _MAX_PII_UNITS)):
            if j > i and plus[j]:
                break
            span += digits[j]
            if len(span) > _MAX_PII_DIGITS:
                break
            if len(span) < _MIN_PII_DIGITS:
                continue
            kind = _pii_kind(span, plus[i])
            if kind is not None and not (kind == "id" and _CURRENCY_RE.match(text, ends[j])):
                best = (j, _mask_number(span, kind, plus[i]))
        if best is None:
            i += 1
            continue
        j, mask = best
        found.append((starts[i], ends[j], mask))
        i = j + 1
    return found


def _mask_numbers(text: str) -> str:
    """Replace every phone number and citizen ID in `text` by its mask."""
    out: list[str] = []
    done = 0
    for run in _NUMBER_RUN_RE.finditer(text):
        if run.end() - run.start() < _MIN_PII_DIGITS:
            continue  # too short for any personal number: the common case, kept cheap
        for start, end, mask in _number_spans(text, run):
            out.append(text[done:start])
            out.append(mask)
            done = end
    out.append(text[done:])
    return "".join(out)


def _mask_email(m: re.Match[str]) -> str:
    """"nguyenvana@gmail.com" → "n***@gmail.com": the provider helps read a log, not the
    mailbox."""
    local, _, domain = m.group(0).partition("@")
    return f"{local[:1]}***@{domain}"


def mask_pii(text: str) -> str:
    """Mask receipt codes, e-mail addresses, phone numbers and citizen IDs (12-digit CCCD,
    9-digit CMND), however they are spaced, dotted or dashed.

    A receipt code keeps its last 4 characters ("***0045"): enough to match a complaint to
    a log line, not enough to look the application up. Dates ("01/07/2025"), amounts
    ("1.000.000 đồng", "150.000.000 đồng") and procedure codes ("1.001234") are not
    personal data and stay as they are.
    """
    from bot.status.codes import mask_codes

    text = mask_codes(text)
    if "@" in text:
        text = _EMAIL_RE.sub(_mask_email, text)
    return _mask_numbers(text)

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


_CCCD_RE = re.compile(r"(?<!\d)(\d{3})\d{6}(\d{3})(?!\d)")
_PHONE_RE = re.compile(r"(?<![\d.])(\+?84|0)(\d{2})[\d .]{5,9}(\d{2})(?![\d])")


def vnd(amount: int) -> str:
    """1500000 → "1.500.000 đồng": Vietnamese groups thousands with dots."""
    return f"{amount:,}".replace(",", ".") + " đồng"


def mask_pii(text: str) -> str:
    """Mask citizen ID (12 digits), phone numbers and receipt codes for logs.

    A receipt code keeps its last 4 characters ("***0045"): enough to match a complaint to
    a log line, not enough to look the application up.
    """
    from bot.status.codes import mask_codes

    text = mask_codes(text)
    text = _CCCD_RE.sub(lambda m: f"{m.group(1)}******{m.group(2)}", text)
    return _PHONE_RE.sub(lambda m: f"{m.group(1)}{m.group(2)}*****{m.group(3)}", text)

"""Vietnamese word segmentation with exact character offsets.

Underthesea's `word_tokenize` rewrites characters and collapses spacing, so offsets cannot
be found with `text.find` on its output. We segment an NFC, tone-normalised copy with
`use_token_normalize=False`, then map every syllable back to the original characters
through an explicit index map. Receipt codes, numbers and URLs are cut out before
segmentation so that Underthesea cannot glue them to neighbouring words.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from bot.config import ROOT
from bot.text import TEENCODE, has_tone_marks, normalize, strip_accents

# Codes like "000.18.07.H31-250729-0004", URLs and e-mail addresses stay whole.
_PROTECTED = r"https?://\S+|{b}[\w.+-]+@[\w-]+\.[\w.]+|{c}[0-9A-Za-z]+(?:[.\-/][0-9A-Za-z]+){{2,}}"
_PROTECTED_RE = re.compile(_PROTECTED.format(b="", c=""))
# The same, with the address and the code starting only where a run of their characters
# starts: from inside a run they find nothing the run's start would not, but each start
# rescanned the run ("aaaa…" cost seconds). See `protected_spans`.
_PROTECTED_AT_RUN_RE = re.compile(_PROTECTED.format(b=r"(?<![\w.+-])", c=r"(?<![0-9A-Za-z])"))
_SYLLABLE_RE = re.compile(r"\w+|[^\w\s]", re.UNICODE)


@dataclass(frozen=True)
class Word:
    """A segmented word: its normalised surface, its folded form and original offsets."""

    text: str
    start: int
    end: int
    folded: str
    syllables: tuple[tuple[int, int], ...] = ()  # original offsets of each syllable


def _normalized_with_map(text: str) -> tuple[str, list[int], list[int]]:
    """NFC + tone-normalise `text`; return it with per-char original start/end offsets.

    Works cluster by cluster (a base character and its combining marks), so decomposed
    (NFD) input maps each composed character back to the whole original cluster.
    """
    out: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    i = 0
    n = len(text)
    while i < n:
        j = i + 1
        while j < n and unicodedata.combining(text[j]):
            j += 1
        composed = unicodedata.normalize("NFC", text[i:j])
        for ch in composed:
            out.append(ch)
            starts.append(i)
            ends.append(j)
        i = j
    norm = "".join(out)
    tone = normalize(norm)
    if len(tone) == len(norm):  # tone placement is length-preserving on NFC text
        norm = tone
    return norm, starts, ends


@lru_cache(maxsize=1)
def _word_tokenize():  # noqa: ANN202 - imported lazily: underthesea loads a model
    from underthesea import word_tokenize

    return word_tokenize


def fold_word(text: str) -> str:
    """Lower-case, accent-free, syllables joined by "_": "Đăng ký" → "dang_ky".

    Teencode is expanded only in syllables typed without marks ("ko" → "khong"), never in
    real words that fold to a teencode key ("hỏng", "hồng" → "hong", not "khong").
    """
    out = []
    for syllable in text.split():
        folded = strip_accents(syllable).lower()
        if folded in TEENCODE and not has_tone_marks(syllable):
            folded = TEENCODE[folded]
        out.append(folded.replace(" ", "_"))
    return "_".join(out)


Piece = tuple[str, list[tuple[int, int]]]  # surface, syllable spans in `norm` coordinates


def _segment_plain(norm: str, offset: int) -> list[Piece]:
    """Segment a code-free chunk; return (surface, start, end) in `norm` coordinates."""
    if not norm.strip():
        return []
    words = _word_tokenize()(norm, use_token_normalize=False)
    result: list[Piece] = []
    cursor = 0
    for w in words:
        sylls = w.split()
        if not sylls:
            continue
        positions = []
        for s in sylls:
            k = norm.find(s, cursor)
            if k < 0:
                break
            positions.append((k, k + len(s)))
            cursor = k + len(s)
        if len(positions) != len(sylls):
            # Underthesea changed a character: fall back to plain syllables for the rest.
            for m in _SYLLABLE_RE.finditer(norm, cursor):
                result.append((m.group(0), [(offset + m.start(), offset + m.end())]))
            return result
        surface = " ".join(norm[a:b] for a, b in positions)
        result.append((surface, [(offset + a, offset + b) for a, b in positions]))
    return result


@lru_cache(maxsize=1)
def folded_lexicon() -> frozenset[str]:
    """Multi-syllable words of Underthesea's Viet74K word list, folded ("dang ky").

    Underthesea's CRF segments accent-free text poorly ("can giay", "to"), so text typed
    without diacritics is segmented by longest match against this folded lexicon instead.
    """
    import underthesea

    path = Path(underthesea.__file__).parent / "corpus" / "data" / "Viet74K.txt"
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return frozenset()
    out = set()
    for line in lines:
        folded = strip_accents(unicodedata.normalize("NFC", line.strip())).lower()
        if 2 <= len(folded.split()) <= _MAX_WORD_SYLLABLES:
            out.add(folded)
    return frozenset(out)


_MAX_WORD_SYLLABLES = 4


def has_diacritics(text: str) -> bool:
    """True when any letter carries a Vietnamese diacritic (or is đ)."""
    return strip_accents(text) != text


DOMAIN_LEXICON = ROOT / "data" / "lexicon" / "domain_words.txt"


@lru_cache(maxsize=1)
def domain_lexicon() -> frozenset[str]:
    """Folded multi-syllable words of our own domain (catalog names, training examples).

    Generated by `bot lexicon` from the diacritic texts as Underthesea segments them, so
    "dang ky tam tru" is split as "đăng ký | tạm trú" would be, not "tạm | trụ cán".
    """
    try:
        lines = DOMAIN_LEXICON.read_text(encoding="utf-8").splitlines()
    except OSError:
        return frozenset()
    return frozenset(line.strip() for line in lines if " " in line.strip())


def _segment_accent_free(norm: str, offset: int) -> list[Piece]:
    """Segment accent-free text by dynamic programming over known folded words.

    Each multi-syllable word scores 3 per extra syllable when it is a domain word and 1
    when it is only in the general lexicon; single syllables score 0. The best-scoring
    split wins (fewer words on ties): domain words beat accidental general-lexicon words
    ("tạm trú | cần" rather than "tạm | trụ cán").
    """
    sylls = [(m.group(0), m.start(), m.end()) for m in _SYLLABLE_RE.finditer(norm)]
    lowered = [s.lower() for s, _, _ in sylls]
    general, domain = folded_lexicon(), domain_lexicon()
    n = len(lowered)
    best: list[tuple[int, int]] = [(0, 0)] + [(-1, 0)] * n  # (score, -words)
    back = [0] * (n + 1)
    for i in range(1, n + 1):
        for j in range(max(0, i - _MAX_WORD_SYLLABLES), i):
            if i - j == 1:
                gain = 0
            else:
                word = " ".join(lowered[j:i])
                if word in domain:
                    gain = 3 * (i - j - 1)
                elif word in general:
                    gain = i - j - 1
                else:
                    continue
            cand = (best[j][0] + gain, best[j][1] - 1)
            if cand > best[i]:
                best[i], back[i] = cand, j
    spans: list[tuple[int, int]] = []
    i = n
    while i > 0:
        spans.append((back[i], i))
        i = back[i]
    result: list[Piece] = []
    for a, b in reversed(spans):
        group = sylls[a:b]
        surface = " ".join(s for s, _, _ in group)
        result.append((surface, [(offset + x, offset + y) for _, x, y in group]))
    return result


def build_domain_lexicon(texts: list[str]) -> list[str]:
    """Folded multi-syllable words Underthesea finds in `texts` (which carry diacritics)."""
    words: set[str] = set()
    for text in texts:
        if not has_diacritics(text):
            continue
        for w in segment(text):
            folded = " ".join(strip_accents(w.text).lower().split())
            size = len(folded.split())
            if 2 <= size <= _MAX_WORD_SYLLABLES and folded.replace(" ", "").isalnum():
                words.add(folded)
    return sorted(words)


def protected_spans(text: str) -> Iterator[re.Match[str]]:
    """What `_PROTECTED_RE.finditer(text)` finds (codes, URLs, e-mail addresses), in linear time.

    Only where the previous span ends may a run have started before the search position,
    so the unrestricted pattern is tried there once; elsewhere the run-start one is searched.
    """
    pos = 0
    while True:
        m = _PROTECTED_RE.match(text, pos) if pos else None
        if m is None:
            m = _PROTECTED_AT_RUN_RE.search(text, pos)
            if m is None:
                return
        yield m
        pos = m.end()


def segment(text: str) -> list[Word]:
    """Segment `text` into Vietnamese words with offsets into the ORIGINAL `text`."""
    if not text:
        return []
    norm, starts, ends = _normalized_with_map(text)
    plain = _segment_plain if has_diacritics(norm) else _segment_accent_free
    pieces: list[Piece] = []
    cursor = 0
    for m in protected_spans(norm):
        pieces.extend(plain(norm[cursor:m.start()], cursor))
        pieces.append((m.group(0), [(m.start(), m.end())]))
        cursor = m.end()
    pieces.extend(plain(norm[cursor:], cursor))
    words = []
    for surface, spans in pieces:
        if not spans or spans[-1][1] <= spans[0][0]:
            continue
        syllables = tuple((starts[a], ends[b - 1]) for a, b in spans)
        words.append(Word(surface, syllables[0][0], syllables[-1][1], fold_word(surface),
                          syllables))
    return words

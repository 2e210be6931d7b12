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
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from bot.text import TEENCODE, normalize, strip_accents

# Codes like "000.18.07.H31-250729-0004", URLs and e-mail addresses stay whole.
_PROTECTED_RE = re.compile(
    r"https?://\S+|[\w.+-]+@[\w-]+\.[\w.]+|[0-9A-Za-z]+(?:[.\-/][0-9A-Za-z]+){2,}"
)
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
    """Lower-case, accent-free, syllables joined by "_": "Đăng ký" → "dang_ky"."""
    syllables = strip_accents(text).lower().split()
    return "_".join(TEENCODE.get(s, s).replace(" ", "_") for s in syllables)


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


def _max_match(words: list[str], backward: bool) -> list[tuple[int, int]]:
    """Greedy longest match over syllables; returns (first, last+1) syllable index pairs."""
    lexicon = folded_lexicon()
    spans: list[tuple[int, int]] = []
    n = len(words)
    i = n if backward else 0
    while (i > 0) if backward else (i < n):
        take = 1
        room = i if backward else n - i
        for k in range(min(_MAX_WORD_SYLLABLES, room), 1, -1):
            chunk = words[i - k:i] if backward else words[i:i + k]
            if " ".join(chunk) in lexicon:
                take = k
                break
        spans.append((i - take, i) if backward else (i, i + take))
        i = i - take if backward else i + take
    return sorted(spans)


def _segment_accent_free(norm: str, offset: int) -> list[Piece]:
    """Bidirectional maximum matching of accent-free text against the folded lexicon.

    Forward matching reads "mat bao lau" as "mật báo | lâu"; backward matching, the usual
    winner for Vietnamese, reads "mất | bao lâu". We keep the split with fewer words and
    prefer the backward one on ties.
    """
    sylls = [(m.group(0), m.start(), m.end()) for m in _SYLLABLE_RE.finditer(norm)]
    lowered = [s.lower() for s, _, _ in sylls]
    fwd = _max_match(lowered, backward=False)
    bwd = _max_match(lowered, backward=True)
    spans = fwd if len(fwd) < len(bwd) else bwd
    result: list[Piece] = []
    for a, b in spans:
        group = sylls[a:b]
        surface = " ".join(s for s, _, _ in group)
        result.append((surface, [(offset + x, offset + y) for _, x, y in group]))
    return result


def segment(text: str) -> list[Word]:
    """Segment `text` into Vietnamese words with offsets into the ORIGINAL `text`."""
    if not text:
        return []
    norm, starts, ends = _normalized_with_map(text)
    plain = _segment_plain if has_diacritics(norm) else _segment_accent_free
    pieces: list[Piece] = []
    cursor = 0
    for m in _PROTECTED_RE.finditer(norm):
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

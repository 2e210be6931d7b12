"""Accent- and typo-tolerant procedure search over names and colloquial aliases.

Scoring: a query and each catalog text (alias, short name, official name) are folded into
syllables; a text scores by the IDF-weighted share of its syllables (and syllable bigrams,
for word order) found in the query, so "lam lai cccd" hits the alias "làm lại căn cước
công dân" through "cccd" and the generic "làm", "cấp" weigh little. Syllables with a typo
are mapped to the nearest catalog syllable (rapidfuzz) before scoring.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

from rapidfuzz import fuzz, process
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from bot.catalog.models import Procedure
from bot.text import fold_words

# Words that carry the question, not the procedure: never evidence for a match.
STOPWORDS = frozenset(
    "toi minh em anh chi ban a oi e muon hoi cho can phai lam sao the nao nhu nao gi "
    "bao nhieu lau mat tien phi le o dau khong co duoc nhe vay roi thi la va voi nhung "
    "can gi thu tuc ho so giay to nop online truc tuyen qua mang ngay may ket qua khi "
    "nao dau xin hoi vui long giup huong dan cach nhieu voi di".split()
)
ABBREVIATIONS = {
    "cccd": "can cuoc cong dan", "cmnd": "chung minh nhan dan", "gplx": "giay phep lai xe",
    "lltp": "ly lich tu phap", "gpxd": "giay phep xay dung", "hkd": "ho kinh doanh",
}


@dataclass(frozen=True)
class SearchResult:
    """One ranked match: the procedure code, its display name and a score in [0, 1]."""

    code: str
    name: str
    score: float

    def as_dict(self) -> dict[str, object]:
        return {"code": self.code, "name": self.name, "score": round(self.score, 4)}


def _expand(words: list[str]) -> list[str]:
    out: list[str] = []
    for w in words:
        out.extend(ABBREVIATIONS.get(w, w).split())
    return out


def _bigrams(words: list[str]) -> set[tuple[str, str]]:
    return set(zip(words, words[1:], strict=False))


@dataclass
class _Entry:
    code: str
    name: str
    texts: list[tuple[list[str], float]]  # (syllables, weight of this text kind)


class CatalogIndex:
    """An in-memory index of the catalog; rebuild it when the catalog changes."""

    def __init__(self, procedures: list[tuple[str, str, list[tuple[str, float]]]]) -> None:
        self.entries: list[_Entry] = []
        df: Counter[str] = Counter()
        for code, name, texts in procedures:
            folded = [(_expand(fold_words(t)), w) for t, w in texts if t]
            self.entries.append(_Entry(code, name, folded))
            df.update({s for words, _ in folded for s in words})
        n = max(len(self.entries), 1)
        self.idf = {s: math.log(1 + n / c) for s, c in df.items()}
        self.vocab = sorted(self.idf)

    @classmethod
    def from_session(cls, session: Session) -> CatalogIndex:
        rows = session.execute(
            select(Procedure).options(selectinload(Procedure.aliases))
        ).scalars()
        procs = []
        for p in rows:
            texts = [(a.alias, 1.0) for a in p.aliases]
            texts += [(p.short_name or "", 0.95), (p.name, 0.9)]
            procs.append((p.code, p.display_name, texts))
        return cls(procs)

    def _correct(self, word: str) -> str:
        """Map a misspelt syllable to the closest catalog syllable (only for len ≥ 4).

        Short syllables are left alone: "hôm" is one letter from "hộ" but not a typo of it.
        """
        if word in self.idf or len(word) < 4 or not self.vocab:
            return word
        best = process.extractOne(word, self.vocab, scorer=fuzz.ratio, score_cutoff=85)
        return best[0] if best else word

    def query_words(self, text: str) -> list[str]:
        return [self._correct(w) for w in _expand(fold_words(text))]

    def _weight(self, words: set[str]) -> float:
        return sum(self.idf.get(w, 1.0) for w in words)

    def _score_text(self, q: set[str], qbi: set[tuple[str, str]], words: list[str]) -> float:
        """How well one catalog text matches the query, in [0, 1].

        60% how much of the text the query covers, 15% shared word order (bigrams), 25% how
        much of the query the text explains, so "làm lại cccd" prefers "cấp lại căn cước"
        over "làm căn cước" although both are fully covered.
        """
        content = {w for w in words if w not in STOPWORDS} or set(words)
        total = self._weight(content)
        if total == 0:
            return 0.0
        uni = self._weight(content & q) / total
        bi = _bigrams(words)
        order = len(bi & qbi) / len(bi) if bi else uni
        explained = self._weight(q & set(words)) / (self._weight(q) or 1.0)
        score = 0.6 * uni + 0.15 * order + 0.25 * explained
        if len(content & q) < 2 <= len(content):
            score *= 0.5  # one shared syllable ("thời", "mua") is not a match of a phrase
        return score

    def search(self, text: str, limit: int = 5, min_score: float = 0.3) -> list[SearchResult]:
        """Rank procedures for free text; empty when nothing plausible matches."""
        qwords = self.query_words(text)
        q = {w for w in qwords if w not in STOPWORDS}
        if not q:
            return []
        qbi = _bigrams(qwords)
        results = []
        for e in self.entries:
            best = max((w * self._score_text(q, qbi, ws) for ws, w in e.texts), default=0.0)
            if best >= min_score:
                results.append(SearchResult(e.code, e.name, best))
        results.sort(key=lambda r: (-r.score, r.code))
        return results[: max(1, limit)]

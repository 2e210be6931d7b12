"""Which official answer, if any, a citizen's message is asking for.

The portal's Q&A answers questions the catalog cannot ("Giấy phép thành lập văn phòng đại
diện có thời hạn bao lâu?"), in the ministry's own words and with its link. Quoting the
wrong one is worse than quoting none — the citizen reads it as the ministry's answer to
their case — so every hit carries `confident`, true only above a threshold measured to
keep false quotes rare on procedure questions and small talk (README "Official Q&A").
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bot.config import ROOT
from bot.embedding import VectorCache, default_cache
from bot.faq.accents import AccentRestorer
from bot.faq.hybrid import Blend, HybridIndex, Passage
from bot.faq.store import FAQ_FILE, FaqEntry, load_faq
from bot.text import fold_words

log = logging.getLogger(__name__)

# Blended score from which an answer is quoted (README "Official Q&A"). Measured on citizen
# rewordings of official questions, 94 % of the hits at or above it are the asked answer;
# 4 % of citizen procedure questions reach it (about half of them rightly) and no small
# talk does. Higher thresholds cost many right quotes for few avoided wrong ones.
THRESHOLD = 0.50
# Below the quoting threshold, a Q&A from this score is only linked, by its question, as
# "possibly related" (never quoted as the answer): on the citizen rewordings, the expected
# Q&A is among the two linked in about four of five messages, and a link to a neighbouring
# official question costs the citizen a glance, where a wrong quote misinforms.
RELATED = 0.35
# Answers about services at Vietnamese embassies and consulates, passports and visas
# abroad (most of the Ministry of Foreign Affairs' Q&A) are for people abroad: quoted to
# someone in Việt Nam ("làm hộ chiếu mất bao lâu") they give the wrong office and times.
# They apply when a message names being abroad or a foreign-affairs matter.
ABROAD_MINISTRY = "Bộ Ngoại giao"
ABROAD_TEXT = ("dai su quan", "dsq", "co quan dai dien", "cqdd", "lanh su quan",
               "tong lanh su quan")
ABROAD_NEEDS = ("nuoc ngoai", "dai su quan", "dai su", "dsq", "lanh su", "co quan dai dien",
                "viet kieu", "dinh cu", "thi thuc", "visa", "ngoai giao", "cong vu",
                "cong ham", "hop phap hoa", "chung nhan lanh su")
PROJECT_TEXT_FILES = ((ROOT / "data" / "nlu", "*.yml"), (ROOT / "data" / "catalog", "*.yaml"))
_MARKUP = re.compile(r"\]\([^)]*\)|\{[^}]*\}|[\[\]]")


@dataclass(frozen=True)
class FaqHit:
    """An official Q&A matched to a message; quote it only when `confident`."""

    id: int
    question: str
    ministry: str
    url: str
    answer: str
    score: float  # in [0, 1]
    confident: bool
    related: bool = False  # worth a "possibly related" link (RELATED), not a quote

    def as_dict(self) -> dict[str, object]:
        return {"id": self.id, "question": self.question, "ministry": self.ministry,
                "url": self.url, "score": round(self.score, 4), "confident": self.confident,
                "related": self.related}


def vector_cache() -> VectorCache:
    """The process's passage-vector cache (writable var/ file + the snapshot in data/)."""
    return default_cache()


def project_texts() -> list[str]:
    """Vietnamese written for this project: the NLU examples and the seed catalog.

    They teach the restorer how citizens write ("mình", "làm lại", "bao lâu"), which the
    formal Q&A rarely says: restored syllables were right 82 % of the time from the Q&A
    alone and 87 % with these (accented citizen messages, folded and restored). Strings
    are taken from the YAML files as they are; markup such as "[căn cước](procedure)"
    only adds a few odd tokens.
    """
    import yaml

    out: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, str):
            out.extend(_MARKUP.sub(" ", line) for line in node.splitlines())
        elif isinstance(node, dict):
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for folder, pattern in PROJECT_TEXT_FILES:
        for path in sorted(folder.glob(pattern)):
            try:
                walk(yaml.safe_load(path.read_text(encoding="utf-8")))
            except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
                log.warning("restorer corpus: %s skipped (%s)", path, exc)
    return out


def restorer_for(entries: list[FaqEntry], extra: Sequence[str] = ()) -> AccentRestorer:
    """A diacritics restorer learned from the official questions and answers (+ `extra`)."""
    texts = [t for e in entries for t in (e.question, e.answer)]
    return AccentRestorer([*texts, *extra])


def for_abroad(entry: FaqEntry) -> bool:
    """Whether an official answer is about services for people abroad (see ABROAD_NEEDS)."""
    if entry.ministry == ABROAD_MINISTRY:
        return True
    padded = f" {' '.join(fold_words(entry.question + ' ' + entry.answer))} "
    return any(f" {cue} " in padded for cue in ABROAD_TEXT)


class FaqIndex:
    """The official Q&A, searchable; one per process (`default_index`)."""

    def __init__(self, entries: list[FaqEntry], vectors: VectorCache | None = None,
                 restorer: AccentRestorer | None = None, threshold: float = THRESHOLD,
                 blend: Blend | None = None, progress: bool = False,
                 related: float = RELATED) -> None:
        self.entries = entries
        self.threshold = threshold
        self.related = related
        self.restorer = restorer if restorer is not None else restorer_for(entries)
        passages = [Passage(str(e.id), (e.question,), e.answer,
                            ABROAD_NEEDS if for_abroad(e) else ()) for e in entries]
        self.index = HybridIndex(passages, vectors, self.restorer, blend, progress)

    def match(self, text: str, limit: int = 3) -> list[FaqHit]:
        """The best official Q&A for `text`, best first; empty when nothing is close."""
        out: list[FaqHit] = []
        for r in self.index.rank(text, limit):
            e = self.entries[r.position]
            # an answer for people abroad is never quoted to a message that does not say so
            out.append(FaqHit(e.id, e.question, e.ministry, e.url, e.answer, r.score,
                              r.score >= self.threshold and r.applies,
                              r.score >= self.related and r.applies))
        return out


_DEFAULT: FaqIndex | None = None
_RESTORER: AccentRestorer | None = None
_LOCK = threading.RLock()


def default_restorer(entries: list[FaqEntry] | None = None) -> AccentRestorer:
    """The process's restorer: the shipped Q&A plus the project's own texts."""
    global _RESTORER
    with _LOCK:
        if _RESTORER is None:
            _RESTORER = restorer_for(entries if entries is not None else load_faq(),
                                     project_texts())
        return _RESTORER


def default_index(path: Path = FAQ_FILE, progress: bool = False) -> FaqIndex:
    """The shipped Q&A with e5 vectors, built on first use (seconds with the vector
    snapshot in data/vectors/, minutes without: call it at start-up to warm it up)."""
    global _DEFAULT
    with _LOCK:
        if _DEFAULT is None:
            entries = load_faq(path)
            _DEFAULT = FaqIndex(entries, vector_cache(), default_restorer(entries),
                                progress=progress)
        return _DEFAULT


def match(text: str, limit: int = 3) -> list[FaqHit]:
    """`default_index().match(text)`: the dialogue's entry point."""
    return default_index().match(text, limit)

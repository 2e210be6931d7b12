"""General knowledge citizens ask about besides single procedures (`data/knowledge/`).

"Sổ hộ khẩu còn dùng được không?", "bây giờ còn cấp huyện không?", "nộp online ở Hà Nội
có mất phí không?": no procedure card answers these, and a wrong or invented answer costs
a citizen a wasted trip. So the answers are a small reviewed data file, not code nor model
output: each entry has example questions, a short answer, its sources and the date it was
last reviewed, and the file is validated on load (every problem named by entry and field).

Messages are matched to the entries' title and example questions with the same hybrid
index as the official Q&A (`bot.faq.hybrid`), with its own `confident` threshold: an entry
is given only to a message that clearly asks it, never to a procedure question.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from bot.config import ROOT
from bot.faq.accents import AccentRestorer
from bot.faq.hybrid import Blend, HybridIndex, Passage
from bot.text import nfc

KNOWLEDGE_FILE = ROOT / "data" / "knowledge" / "general.yaml"
TOP_KEY = "knowledge"  # never nlu/rules/stories: Rasa reads every YAML file under data/
# Blended score from which an entry is given (README "General knowledge"). New rewordings
# of the entries' questions scored 0.54–0.75 (without diacritics lowest); procedure
# questions stayed below 0.50 except two that the VNeID entry does answer, small talk
# below 0.2.
THRESHOLD = 0.52
MIN_QUESTIONS = 2


class KnowledgeError(ValueError):
    """The knowledge file cannot be used; the message lists every problem found."""


@dataclass(frozen=True)
class Source:
    """Where an answer comes from: a title and a link or a document number."""

    title: str
    url: str = ""
    document: str = ""

    def label(self) -> str:
        ref = self.url or self.document
        return f"{self.title} ({ref})" if ref else self.title


@dataclass(frozen=True)
class KnowledgeEntry:
    """One reviewed answer and the questions it answers."""

    id: str
    title: str
    questions: tuple[str, ...]
    answer: str
    sources: tuple[Source, ...]
    reviewed: date


@dataclass(frozen=True)
class KnowledgeHit:
    """An entry matched to a message; give it only when `confident`."""

    entry: KnowledgeEntry
    score: float  # in [0, 1]
    confident: bool


def _text(raw: dict[str, Any], key: str, where: str, problems: list[str]) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value.strip():
        problems.append(f"{where}: thiếu `{key}` (chuỗi không rỗng)")
        return ""
    return nfc(" ".join(value.split()))


def _sources(raw: object, where: str, problems: list[str]) -> tuple[Source, ...]:
    if not isinstance(raw, list) or not raw:
        problems.append(f"{where}: `sources` phải là danh sách có ít nhất một nguồn")
        return ()
    out: list[Source] = []
    for i, item in enumerate(raw, start=1):
        at = f"{where}, nguồn {i}"
        if not isinstance(item, dict):
            problems.append(f"{at}: cần {{title, url hoặc document}}")
            continue
        unknown = set(item) - {"title", "url", "document"}
        if unknown:
            problems.append(f"{at}: trường lạ {', '.join(sorted(map(str, unknown)))}")
        title = _text(item, "title", at, problems)
        url, doc = item.get("url") or "", item.get("document") or ""
        if not isinstance(url, str) or not isinstance(doc, str) or not (url or doc):
            problems.append(f"{at}: cần `url` hoặc `document` (chuỗi)")
            continue
        if url and not url.startswith(("https://", "http://")):
            problems.append(f"{at}: `url` phải bắt đầu bằng https://")
        out.append(Source(title, url.strip(), nfc(str(doc).strip())))
    return tuple(out)


def _reviewed(raw: object, where: str, problems: list[str]) -> date:
    if isinstance(raw, date):
        return raw
    if isinstance(raw, str):
        try:
            return date.fromisoformat(raw.strip())
        except ValueError:
            pass
    problems.append(f"{where}: `reviewed` phải là ngày YYYY-MM-DD")
    return date.min


def parse_knowledge(data: object, name: str = "knowledge") -> list[KnowledgeEntry]:
    """Validated entries of a loaded YAML document; KnowledgeError lists every problem."""
    if not isinstance(data, dict) or not isinstance(data.get(TOP_KEY), list):
        raise KnowledgeError(f"{name}: cần khóa gốc `{TOP_KEY}:` chứa danh sách các mục")
    extra = set(data) - {TOP_KEY}
    problems: list[str] = []
    if extra:
        problems.append(f"{name}: khóa gốc lạ {', '.join(sorted(map(str, extra)))} "
                        f"(chỉ dùng `{TOP_KEY}:`; Rasa đọc mọi tệp YAML trong data/)")
    entries: list[KnowledgeEntry] = []
    seen: set[str] = set()
    for n, raw in enumerate(data[TOP_KEY], start=1):
        where = f"{name}, mục {n}"
        if not isinstance(raw, dict):
            problems.append(f"{where}: cần một mapping (id, title, questions, answer, "
                            "sources, reviewed)")
            continue
        if isinstance(raw.get("id"), str) and raw["id"].strip():
            where = f"{name}, mục {n} ({raw['id'].strip()})"
        unknown = set(raw) - {"id", "title", "questions", "answer", "sources", "reviewed"}
        if unknown:
            problems.append(f"{where}: trường lạ {', '.join(sorted(map(str, unknown)))}")
        entry_id = _text(raw, "id", where, problems)
        if entry_id in seen:
            problems.append(f"{where}: `id` trùng với một mục trước")
        seen.add(entry_id)
        title = _text(raw, "title", where, problems)
        answer = _text(raw, "answer", where, problems)
        questions = raw.get("questions")
        if (not isinstance(questions, list) or len(questions) < MIN_QUESTIONS
                or not all(isinstance(q, str) and q.strip() for q in questions)):
            problems.append(f"{where}: `questions` phải là danh sách ít nhất {MIN_QUESTIONS} "
                            "câu hỏi mẫu (chuỗi không rỗng)")
            questions = []
        sources = _sources(raw.get("sources"), where, problems)
        reviewed = _reviewed(raw.get("reviewed"), where, problems)
        entries.append(KnowledgeEntry(entry_id, title, tuple(nfc(q.strip()) for q in questions),
                                      answer, sources, reviewed))
    if problems:
        raise KnowledgeError("\n".join(problems))
    return entries


def load_knowledge(path: Path = KNOWLEDGE_FILE) -> list[KnowledgeEntry]:
    """Read and validate the knowledge file; KnowledgeError names each bad entry/field."""
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise KnowledgeError(f"không đọc được {path}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise KnowledgeError(f"{path.name}: không phải YAML hợp lệ ({exc})") from exc
    return parse_knowledge(data, path.name)


def render(entry: KnowledgeEntry) -> str:
    """The chat reply: the answer, then where it comes from."""
    return f"{entry.answer}\nNguồn: {'; '.join(s.label() for s in entry.sources)}."


class KnowledgeIndex:
    """The entries, matched with the official Q&A's hybrid method."""

    def __init__(self, entries: list[KnowledgeEntry], vectors: Any = None,
                 restorer: AccentRestorer | None = None, threshold: float = THRESHOLD,
                 blend: Blend | None = None) -> None:
        self.entries = entries
        self.threshold = threshold
        passages = [Passage(e.id, (e.title, *e.questions), e.answer) for e in entries]
        self.index = HybridIndex(passages, vectors, restorer, blend)

    def match(self, text: str, limit: int = 1) -> list[KnowledgeHit]:
        """The best entries for `text`, best first."""
        return [KnowledgeHit(self.entries[r.position], r.score,
                             r.score >= self.threshold and r.applies)
                for r in self.index.rank(text, limit)]


_DEFAULT: KnowledgeIndex | None = None
_LOCK = threading.Lock()


def default_index(path: Path = KNOWLEDGE_FILE) -> KnowledgeIndex:
    """The shipped entries with e5 vectors and the shared restorer, built on first use."""
    global _DEFAULT
    from bot.faq.matcher import default_restorer, vector_cache

    with _LOCK:
        if _DEFAULT is None:
            _DEFAULT = KnowledgeIndex(load_knowledge(path), vector_cache(), default_restorer())
        return _DEFAULT


def match(text: str, limit: int = 1) -> list[KnowledgeHit]:
    """`default_index().match(text)`: the dialogue's entry point."""
    return default_index().match(text, limit)

"""The shipped official Q&A (`data/dvcqg/faq_kb.jsonl`), read defensively.

The file is a snapshot of answers the ministries published on the national public service
portal; an operator may replace it with a newer crawl. A damaged line must cost that one
answer, never the assistant: bad lines are skipped with a warning naming the line.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from bot.config import ROOT
from bot.text import nfc

log = logging.getLogger(__name__)

FAQ_FILE = ROOT / "data" / "dvcqg" / "faq_kb.jsonl"
FIELDS = ("id", "question", "ministry", "official_answer", "url")


@dataclass(frozen=True)
class FaqEntry:
    """One official question and its answer, as published (NFC text)."""

    id: int
    question: str
    ministry: str
    answer: str
    url: str


def _entry(obj: object) -> FaqEntry:
    if not isinstance(obj, dict):
        raise ValueError("not a JSON object")
    missing = [f for f in FIELDS if f not in obj]
    if missing:
        raise ValueError(f"missing {', '.join(missing)}")
    raw_id = obj["id"]
    if isinstance(raw_id, bool) or not isinstance(raw_id, int | str):
        raise ValueError("id is not a number")
    texts = {f: obj[f] for f in FIELDS[1:]}
    for name, value in texts.items():
        if not isinstance(value, str):
            raise ValueError(f"{name} is not text")
    question, answer = nfc(texts["question"]).strip(), nfc(texts["official_answer"]).strip()
    if not question or not answer:
        raise ValueError("empty question or answer")
    return FaqEntry(id=int(raw_id), question=question, ministry=nfc(texts["ministry"]).strip(),
                    answer=answer, url=texts["url"].strip())


def load_faq(path: Path = FAQ_FILE) -> list[FaqEntry]:
    """Every usable entry of the file, in file order; bad lines are skipped with a warning.

    A missing or unreadable file gives an empty list (and a warning): the assistant then
    answers from the catalog alone.
    """
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        log.warning("official Q&A file %s unreadable (%s): no Q&A answers", path, exc)
        return []
    out: list[FaqEntry] = []
    seen: set[int] = set()
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            entry = _entry(json.loads(line))
        except (json.JSONDecodeError, ValueError) as exc:
            log.warning("%s line %d skipped: %s", Path(path).name, n, exc)
            continue
        if entry.id in seen:
            log.warning("%s line %d skipped: id %d repeated", Path(path).name, n, entry.id)
            continue
        seen.add(entry.id)
        out.append(entry)
    return out

"""`bot eval faq FILE`: does the assistant find, and dare to quote, the right official answer?

Two questions matter for a quote, so both are measured: is the asked Q&A ranked first
(top-1) or near the top (top-3), and — what the citizen actually sees — is the confident
top hit the asked one ("cited") or another ministry answer quoted wrongly ("confident
wrong")? Lines without an expected id are messages that should quote nothing (procedure
questions, small talk): for them the share that would be quoted anyway is reported.
Figures are split by whether the message was typed with diacritics, since e5 reads
accent-free text much worse.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.config import Settings
from bot.faq.accents import ACCENTED_SHARE, accented_share
from bot.faq.matcher import FaqIndex, default_index
from bot.jsonl import JsonlError, read_objects
from bot.text import nfc


@dataclass(frozen=True)
class FaqCase:
    """One message, the ids whose answers answer it (empty: nothing should be quoted)."""

    text: str
    ids: frozenset[int]
    diacritics: bool


def load_faq_cases(path: Path) -> list[FaqCase]:
    """`text` with `faq_ids` and/or `faq_id`; `diacritics` is computed when absent."""
    cases: list[FaqCase] = []
    for n, obj in read_objects(path):
        text = obj.get("text", obj.get("question"))
        if not isinstance(text, str) or not text.strip():
            raise JsonlError(f"{path.name} dòng {n}: cần `text` (chuỗi)")
        raw = list(obj.get("faq_ids") or [])
        if obj.get("faq_id") is not None:
            raw.append(obj["faq_id"])
        try:
            ids = frozenset(int(i) for i in raw)
        except (TypeError, ValueError) as exc:
            raise JsonlError(f"{path.name} dòng {n}: `faq_id(s)` phải là số") from exc
        marks = obj.get("diacritics")
        if not isinstance(marks, bool):
            marks = accented_share(text) >= ACCENTED_SHARE
        cases.append(FaqCase(nfc(text), ids, marks))
    return cases


@dataclass
class _Tally:
    n: int = 0
    top1: int = 0
    top3: int = 0
    cited: int = 0
    wrong: int = 0

    def as_dict(self) -> dict[str, Any]:
        def share(k: int) -> float:
            return round(k / self.n, 3) if self.n else 0.0
        return {"n": self.n, "top1": share(self.top1), "top3": share(self.top3),
                "cited": share(self.cited), "confident_wrong": share(self.wrong)}


@dataclass
class _Report:
    all: _Tally = field(default_factory=_Tally)
    with_marks: _Tally = field(default_factory=_Tally)
    without_marks: _Tally = field(default_factory=_Tally)
    negatives: int = 0
    quoted_negatives: int = 0
    misses: list[dict[str, Any]] = field(default_factory=list)


def evaluate_faq(path: Path, index: FaqIndex | None = None) -> dict[str, Any]:
    """Top-1/top-3, cited and confident-wrong shares (overall and by diacritics), and the
    share of id-less messages that would be quoted."""
    path = Path(path)
    index = index or default_index()
    rep = _Report()
    for case in load_faq_cases(path):
        hits = index.match(case.text, limit=3)
        top = hits[0] if hits else None
        if not case.ids:
            rep.negatives += 1
            rep.quoted_negatives += bool(top and top.confident)
            continue
        got = [h.id for h in hits]
        for t in (rep.all, rep.with_marks if case.diacritics else rep.without_marks):
            t.n += 1
            t.top1 += bool(got[:1]) and got[0] in case.ids
            t.top3 += any(i in case.ids for i in got[:3])
            if top and top.confident:
                if top.id in case.ids:
                    t.cited += 1
                else:
                    t.wrong += 1
        if not (top and top.confident and top.id in case.ids):
            rep.misses.append({"text": case.text, "expected": sorted(case.ids),
                               "got": [h.as_dict() for h in hits[:1]]})
    out: dict[str, Any] = {"file": str(path), "threshold": index.threshold,
                           **rep.all.as_dict(),
                           "with_diacritics": rep.with_marks.as_dict(),
                           "without_diacritics": rep.without_marks.as_dict(),
                           "no_answer_expected": {
                               "n": rep.negatives,
                               "quoted": round(rep.quoted_negatives / rep.negatives, 3)
                               if rep.negatives else 0.0},
                           "misses": rep.misses}
    return out


def _row(label: str, t: dict[str, Any]) -> str:
    return (f"{label:22}{t['n']:>5}{t['top1']:>8.3f}{t['top3']:>8.3f}{t['cited']:>8.3f}"
            f"{t['confident_wrong']:>10.3f}")


def cmd_eval_faq(args: argparse.Namespace, settings: Settings) -> int:
    """Print the figures (or one JSON object with --json); 2 on an unusable file."""
    try:
        report = evaluate_faq(Path(args.file))
    except JsonlError as exc:
        print(f"Lỗi: {exc}", file=sys.stderr)
        return 2
    if args.json:
        out = {k: v for k, v in report.items() if k != "misses"}
        if args.misses:
            out["misses"] = report["misses"][: args.misses]
        print(json.dumps(out, ensure_ascii=False))
        return 0
    print(f"{report['file']}: ngưỡng trích dẫn {report['threshold']}")
    print(f"{'':22}{'số câu':>5}{'top-1':>8}{'top-3':>8}{'trích':>8}{'trích sai':>10}")
    print(_row("tất cả", report))
    print(_row("  có dấu", report["with_diacritics"]))
    print(_row("  không dấu", report["without_diacritics"]))
    neg = report["no_answer_expected"]
    if neg["n"]:
        print(f"câu không cần trích dẫn: {neg['n']}, vẫn trích {neg['quoted']:.3f}")
    for miss in report["misses"][: args.misses]:
        got = miss["got"][0] if miss["got"] else None
        print(f"- {miss['text'][:120]}\n    cần {miss['expected']}; được "
              + (f"{got['id']} ({got['score']}, {'trích' if got['confident'] else 'không trích'})"
                 if got else "(không có)"))
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    """`… faq FILE [--json] [--misses N]`, added to an existing group (`bot eval`)."""
    p = sub.add_parser(
        "faq", help="top-1/3, cited and confident-wrong shares of the official Q&A matcher",
        description="FILE: JSON lines with `text` and `faq_id` and/or `faq_ids` (the ids of "
        "data/dvcqg/faq_kb.jsonl whose answer answers it). Lines without ids count as "
        "messages that should quote nothing.")
    p.add_argument("file")
    p.add_argument("--json", action="store_true", help="one JSON object instead of a table")
    p.add_argument("--misses", type=int, default=0,
                   help="print (or include in --json) this many messages not cited")
    p.set_defaults(func=cmd_eval_faq)

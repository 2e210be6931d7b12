"""`bot eval dialogue FILE…`: the assistant measured as a citizen meets it.

Every question of one or more JSONL files goes through the real stack (`POST /api/v1/chat`
of the gateway) as a NEW conversation (a fresh sender id each), and the first reply is
judged:

* **answered**: the first procedure code the reply's TEXT names ("… (mã thủ tục 1.001193)",
  `actions/formatting.heading`) is a gold one;
* **offered**: not answered, but a gold code is behind one of the first four buttons
  (`/ask_fee{"procedure": "1.013082"}`: any intent, the JSON after it);
* otherwise **no procedure**, by kind: `fallback` (the domain's `utter_default`),
  `out_of_scope` (`utter_out_of_scope`), `handover` (the hand-over replies of
  `bot.handover.texts`, or the gateway's `handover` field), `wrong` (a procedure named, not a
  gold one), `other`; an HTTP error or a timeout is an `error`.

Also: whether a reply carries the link of the expected official Q&A (`id=<faq_id>`, the
whole number), and which of the aspects a question asks (`bot.aspects.detect`, cues only)
the reply titles with their `bot.aspects.HEADINGS` (a line that begins with the title).

The judging functions are pure (tests/test_eval_dialogue.py feeds them synthetic replies);
`run_eval` sends the questions with a bounded number of conversations at once, retries a
429 after its Retry-After (bounded), and never waits longer than the per-request timeout.
Evaluation files are read by path at run time, never copied.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import re
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

from bot.config import ROOT, Settings
from bot.text import nfc

CHAT_PATH = "/api/v1/chat"
OFFER_BUTTONS = 4  # a gold code behind one of the first four buttons counts as offered
NO_PROCEDURE_KINDS = ("fallback", "out_of_scope", "handover", "wrong", "other")
OUTCOMES = ("answered", "offered", *NO_PROCEDURE_KINDS, "error")
# What a reply to a Q&A-only line was (no gold procedure to call it right or wrong).
QA_KINDS = ("procedure", "fallback", "out_of_scope", "handover", "other", "error")
# Every hand-over message contains one of these (bot/handover/texts.py says so for the
# opening one; the other is its "could not hand over" apology). Compared case-folded;
# tests/test_eval_dialogue.py renders the real texts and checks they are caught.
HANDOVER_MARKERS = ("chuyển cuộc trò chuyện tới cán bộ", "chuyển được cuộc trò chuyện tới cán bộ")

_TEXT_CODE = re.compile(r"mã\s+thủ\s+tục\s*:?\s*(\d+(?:\.\d+)+)", re.IGNORECASE)
_PAYLOAD = re.compile(r"^\s*/(?P<intent>[^{\s]+)\s*(?P<json>\{.*\})?\s*$", re.DOTALL)
_FAQ_ID = re.compile(r"[?&;]id=(\d+)", re.IGNORECASE)  # `;`: also "&amp;id="
_CODE_SHAPE = re.compile(r"^\d+(?:\.\d+)+$")


class DialogueEvalError(Exception):
    """Something the evaluation cannot work around (an unreadable file, no domain)."""


# --------------------------------------------------------------------------- judging

def _squash(text: str) -> str:
    """NFC, one space for any run of whitespace, case-folded: how reply texts are compared
    (Rasa's REST channel splits one answer at blank lines; we join its bubbles again)."""
    return " ".join(nfc(text).split()).casefold()


def reply_text(messages: Sequence[dict[str, Any]]) -> str:
    """All bubble texts of one reply, in order, one per line."""
    return "\n".join(str(m.get("text") or "") for m in messages if isinstance(m, dict))


def reply_buttons(messages: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """All buttons of one reply, in the order shown."""
    buttons: list[dict[str, Any]] = []
    for m in messages:
        if isinstance(m, dict):
            buttons += [b for b in m.get("buttons") or [] if isinstance(b, dict)]
    return buttons


def _unique(codes: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(codes))


def codes_in_text(text: str) -> tuple[str, ...]:
    """The procedure codes a text names as "mã thủ tục 1.001193", in order, once each."""
    return _unique(m.group(1) for m in _TEXT_CODE.finditer(nfc(text)))


def codes_in_payload(payload: str) -> tuple[str, ...]:
    """The procedure code(s) behind a button: `/any_intent{"procedure": "1.013082"}`."""
    m = _PAYLOAD.match(payload or "")
    if m is None or not m.group("json"):
        return ()
    try:
        entities = json.loads(m.group("json"))
    except ValueError:
        return ()
    if not isinstance(entities, dict):
        return ()
    found: list[str] = []
    for key in ("procedure", "procedure_code"):
        value = entities.get(key)
        values = value if isinstance(value, list) else [value]
        found += [v.strip() for v in values if isinstance(v, str) and _CODE_SHAPE.match(v.strip())]
    return _unique(found)


@dataclass(frozen=True)
class NamedCodes:
    """The procedure codes one reply names: in its text, and behind each of its buttons."""

    text: tuple[str, ...]
    buttons: tuple[tuple[str, ...], ...]

    @property
    def all(self) -> tuple[str, ...]:
        """Every code named, in order (text first, then the buttons), once each."""
        return _unique([*self.text, *(c for b in self.buttons for c in b)])


def named_codes(messages: Sequence[dict[str, Any]]) -> NamedCodes:
    return NamedCodes(
        codes_in_text(reply_text(messages)),
        tuple(codes_in_payload(str(b.get("payload") or "")) for b in reply_buttons(messages)))


def faq_ids_cited(messages: Sequence[dict[str, Any]]) -> set[str]:
    """The Q&A ids the reply links to (`…?id=11451&…`), whole numbers only."""
    parts = [reply_text(messages)]
    parts += [str(b.get("payload") or "") + " " + str(b.get("url") or "")
              for b in reply_buttons(messages)]
    return {str(int(m.group(1))) for m in _FAQ_ID.finditer(" ".join(parts))}


def _template_pattern(template: str) -> re.Pattern[str]:
    """A response text as a pattern over `_squash`ed replies; `{slot}` fills match anything."""
    pieces = re.split(r"\{[^{}]*\}", _squash(template))
    return re.compile(".+?".join(re.escape(p) for p in pieces))


def _heading_pattern(title: str) -> re.Pattern[str]:
    """A line that begins with `title`, after any bullet, markdown or numbering."""
    return re.compile(r"^[^\w\n]*(?:\d+[.)][^\w\n]*)?" + re.escape(nfc(title)), re.MULTILINE)


def _response_texts(domain: Path, name: str) -> list[str]:
    """Every text variant of response `name` in the domain (a file, or a folder of them)."""
    import yaml

    files = sorted(domain.rglob("*.yml")) + sorted(domain.rglob("*.yaml")) \
        if domain.is_dir() else [domain]
    texts: list[str] = []
    for path in files:
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise DialogueEvalError(f"không đọc được {path}: {exc}") from exc
        responses = data.get("responses") if isinstance(data, dict) else None
        if not isinstance(responses, dict):
            continue
        for variant in responses.get(name) or []:
            if isinstance(variant, dict) and isinstance(variant.get("text"), str):
                texts.append(variant["text"])
    return texts


@dataclass(frozen=True)
class KnownReplies:
    """How to recognise the replies that answer no procedure."""

    fallback: tuple[re.Pattern[str], ...]
    out_of_scope: tuple[re.Pattern[str], ...]
    handover: tuple[str, ...] = HANDOVER_MARKERS

    @classmethod
    def from_texts(cls, fallback: Iterable[str], out_of_scope: Iterable[str]) -> KnownReplies:
        return cls(tuple(_template_pattern(t) for t in fallback if t.strip()),
                   tuple(_template_pattern(t) for t in out_of_scope if t.strip()))

    @classmethod
    def from_domain(cls, domain: Path = ROOT / "domain.yml") -> KnownReplies:
        """`utter_default` and `utter_out_of_scope`, read from the domain now."""
        fallback = _response_texts(domain, "utter_default")
        out_of_scope = _response_texts(domain, "utter_out_of_scope")
        if not fallback or not out_of_scope:
            raise DialogueEvalError(f"{domain}: cần các câu trả lời utter_default và "
                                    "utter_out_of_scope")
        return cls.from_texts(fallback, out_of_scope)

    def kind(self, messages: Sequence[dict[str, Any]], handover: bool = False) -> str | None:
        """"handover", "fallback", "out_of_scope", or None for anything else."""
        text = _squash(reply_text(messages))
        if handover or any(_squash(marker) in text for marker in self.handover):
            return "handover"
        if any(p.search(text) for p in self.fallback):
            return "fallback"
        if any(p.search(text) for p in self.out_of_scope):
            return "out_of_scope"
        return None


def asked_aspects(question: str) -> tuple[str, ...]:
    """The aspects a question asks, found from its cues only (no intent fallback)."""
    from bot.aspects import detect

    asked = detect(question)
    return asked.aspects if asked.from_cues else ()


def aspects_titled(text: str, aspects: Iterable[str]) -> tuple[str, ...]:
    """Which of `aspects` the reply gives a section: a line starting with its heading."""
    from bot.aspects import HEADINGS

    text = nfc(text)
    return tuple(a for a in aspects if a in HEADINGS and _heading_pattern(HEADINGS[a]).search(text))


@dataclass(frozen=True)
class Verdict:
    """What one reply did for one question."""

    outcome: str | None  # one of OUTCOMES; None: the line has no gold procedure
    kind: str  # the reply's own kind: "procedure", a NO_PROCEDURE_KINDS one but "wrong", "error"
    codes: tuple[str, ...] = ()
    faq_cited: bool | None = None  # None: the line has no Q&A id
    asked: tuple[str, ...] = ()
    titled: tuple[str, ...] = ()


def judge(messages: Sequence[dict[str, Any]], gold: Iterable[str], faq_ids: Iterable[str],
          question: str, known: KnownReplies, handover: bool = False) -> Verdict:
    """Judge the first reply to `question` (pure: no I/O)."""
    gold = set(gold)
    faq_ids = {str(int(i)) for i in faq_ids}
    named = named_codes(messages)
    kind = "procedure" if named.all else (known.kind(messages, handover) or "other")
    if gold:
        if named.text and named.text[0] in gold:
            outcome = "answered"
        elif any(gold.intersection(b) for b in named.buttons[:OFFER_BUTTONS]):
            outcome = "offered"
        else:
            outcome = "wrong" if kind == "procedure" else kind
    else:
        outcome = None
    asked = asked_aspects(question)
    return Verdict(outcome, kind, named.all,
                   bool(faq_ids & faq_ids_cited(messages)) if faq_ids else None,
                   asked, aspects_titled(reply_text(messages), asked))


def error_verdict(gold: Iterable[str], faq_ids: Iterable[str]) -> Verdict:
    """No usable reply (HTTP error, timeout): an error, and no Q&A link."""
    return Verdict("error" if set(gold) else None, "error",
                   faq_cited=False if set(faq_ids) else None)


# --------------------------------------------------------------------------- input

@dataclass(frozen=True)
class Question:
    """One usable line of an evaluation file."""

    file: int  # index of the file in the run
    line: int
    text: str
    codes: tuple[str, ...] = ()
    faq_ids: tuple[str, ...] = ()
    intent: str | None = None


@dataclass
class FileInput:
    path: Path
    questions: list[Question] = field(default_factory=list)
    bad: list[tuple[int, str]] = field(default_factory=list)
    skipped: int = 0  # no gold code and no Q&A id
    filtered: int = 0  # intent not among --intent
    lines: int = 0  # non-blank lines read (after --limit)


def _faq_id(value: Any) -> str:
    if isinstance(value, bool):
        raise ValueError("faq id phải là số")
    if isinstance(value, int) and value >= 0:
        return str(value)
    if isinstance(value, str) and re.fullmatch(r"[0-9]+", value.strip()):
        return str(int(value.strip()))
    raise ValueError(f"faq id không hợp lệ: {value!r}")


def parse_line(obj: Any) -> tuple[str, tuple[str, ...], tuple[str, ...], str | None]:
    """(question, gold codes, Q&A ids, intent) of one JSON line; ValueError says what is wrong."""
    if not isinstance(obj, dict):
        raise ValueError("cần một object JSON")
    text = obj.get("question")
    if text is None:
        text = obj.get("text")
    if not isinstance(text, str) or not text.strip():
        raise ValueError("thiếu câu hỏi (trường question hoặc text)")
    raw = obj.get("procedure_codes")
    if raw is None:
        raw = obj.get("procedures")
    if raw is None:
        raw = []
    if not isinstance(raw, list) or not all(isinstance(c, str) and c.strip() for c in raw):
        raise ValueError("procedure_codes/procedures phải là danh sách mã thủ tục")
    ids: list[str] = []
    if obj.get("faq_id") is not None:
        ids.append(_faq_id(obj["faq_id"]))
    more = obj.get("faq_ids")
    if more is not None:
        if not isinstance(more, list):
            raise ValueError("faq_ids phải là danh sách")
        ids += [_faq_id(v) for v in more]
    intent = obj.get("intent")
    if intent is not None and not isinstance(intent, str):
        raise ValueError("intent phải là chuỗi")
    return (nfc(text.strip()), _unique(c.strip() for c in raw), _unique(ids), intent)


def read_questions(path: Path, file_index: int = 0, limit: int | None = None,
                   intents: Iterable[str] | None = None) -> FileInput:
    """The usable lines of one file; a bad line is recorded with its number and skipped."""
    wanted = set(intents) if intents else None
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DialogueEvalError(f"không đọc được {path}: {exc}") from exc
    result = FileInput(path)
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        if limit is not None and result.lines >= limit:
            break
        result.lines += 1
        try:
            text, codes, faq_ids, intent = parse_line(json.loads(line))
        except json.JSONDecodeError as exc:
            result.bad.append((number, f"không phải JSON ({exc.msg})"))
            continue
        except ValueError as exc:
            result.bad.append((number, str(exc)))
            continue
        if wanted is not None and intent not in wanted:
            result.filtered += 1
        elif not codes and not faq_ids:
            result.skipped += 1
        else:
            result.questions.append(Question(file_index, number, text, codes, faq_ids, intent))
    return result


# --------------------------------------------------------------------------- sending

@dataclass
class Exchange:
    """One question sent: the reply's messages, or why there is none."""

    messages: list[dict[str, Any]] = field(default_factory=list)
    handover: bool = False
    latency: float | None = None  # seconds of the request that got the reply
    error: str | None = None
    attempts: int = 0


def retry_after(value: str | None, default: float = 1.0) -> float:
    """Seconds to wait from a Retry-After header (seconds or an HTTP date)."""
    if not value:
        return default
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return default
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        seconds = (when - datetime.now(timezone.utc)).total_seconds()
    return max(0.0, seconds) if math.isfinite(seconds) else default


async def ask(session: Any, url: str, sender: str, text: str, retries: int = 3,  # noqa: ANN401
              max_wait: float = 60.0) -> Exchange:
    """Send one message; wait out up to `retries` 429s (each at most `max_wait` s)."""
    import aiohttp

    from bot.bench.load import gateway_payload

    result = Exchange()
    while True:
        result.attempts += 1
        started = time.perf_counter()
        try:
            async with session.post(url, json=gateway_payload(sender, text)) as resp:
                raw = await resp.read()
                elapsed = time.perf_counter() - started
                if resp.status == 429 and result.attempts <= retries:
                    await asyncio.sleep(min(retry_after(resp.headers.get("Retry-After")),
                                            max_wait))
                    continue
                if resp.status != 200:
                    result.error = f"HTTP {resp.status}" + (
                        f" after {result.attempts} tries" if resp.status == 429 else "")
                    return result
                data = json.loads(raw)
        except asyncio.TimeoutError:
            result.error = "timeout"
            return result
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            result.error = f"{type(exc).__name__}: {exc}"[:200]
            return result
        messages = data.get("messages") if isinstance(data, dict) else None
        if not isinstance(messages, list):
            result.error = "reply without messages"
            return result
        result.messages = [m for m in messages if isinstance(m, dict)]
        result.handover = bool(data.get("handover"))
        result.latency = elapsed
        return result


async def ask_all(url: str, questions: Sequence[Question], concurrency: int = 4,
                  timeout: float = 60.0, retries: int = 3, max_wait: float = 60.0,
                  run_id: str = "", on_done: Callable[[], None] | None = None
                  ) -> list[Exchange]:
    """Every question as a new conversation, `concurrency` at a time; results in order."""
    import aiohttp

    run_id = run_id or uuid.uuid4().hex[:8]
    results: list[Exchange | None] = [None] * len(questions)
    pending = iter(range(len(questions)))
    client_timeout = aiohttp.ClientTimeout(total=timeout)
    connector = aiohttp.TCPConnector(limit=max(1, concurrency))

    async def worker(session: aiohttp.ClientSession) -> None:
        for i in pending:
            q = questions[i]
            sender = f"eval-{run_id}-{q.file}-{q.line}-{i}"
            results[i] = await ask(session, url, sender, q.text, retries, max_wait)
            if on_done is not None:
                on_done()

    async with aiohttp.ClientSession(timeout=client_timeout, connector=connector) as session:
        await asyncio.gather(*(worker(session) for _ in range(max(1, concurrency))))
    return [r if r is not None else Exchange(error="not sent") for r in results]


# --------------------------------------------------------------------------- report

def _share(count: int, n: int) -> float | None:
    return round(count / n, 4) if n else None


def _counted(count: int, n: int) -> dict[str, Any]:
    return {"count": count, "share": _share(count, n)}


def _percentile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def summarize(inp: FileInput, exchanges: Sequence[Exchange], verdicts: Sequence[Verdict],
              examples: int = 3, details: bool = False) -> dict[str, Any]:
    """One file's report (the report maths; no I/O)."""
    from bot.aspects import ASPECTS

    questions = inp.questions
    rows = list(zip(questions, exchanges, verdicts, strict=True))
    proc = [(q, e, v) for q, e, v in rows if v.outcome]
    n = len(proc)
    outcomes = Counter(v.outcome for _, _, v in proc)
    samples: dict[str, list[dict[str, Any]]] = {}
    for q, e, v in proc:
        if v.outcome in NO_PROCEDURE_KINDS or v.outcome == "error":
            bucket = samples.setdefault(v.outcome, [])
            if len(bucket) < examples:
                bucket.append({"line": q.line, "question": q.text[:200], "gold": list(q.codes),
                               "named": list(v.codes),
                               "reply": e.error or reply_text(e.messages)[:200]})
    procedure = {
        "n": n,
        "answered": _counted(outcomes["answered"], n),
        "offered": _counted(outcomes["offered"], n),
        "answered_or_offered": _counted(outcomes["answered"] + outcomes["offered"], n),
        "no_procedure": {k: _counted(outcomes[k], n) for k in NO_PROCEDURE_KINDS},
        "error": _counted(outcomes["error"], n),
        "examples": samples,
    }
    qa_rows = [(v, e) for _, e, v in rows if v.faq_cited is not None]
    qa = None
    if qa_rows:
        cited = sum(bool(v.faq_cited) for v, _ in qa_rows)
        kinds = Counter(v.kind for v, _ in qa_rows)
        qa = {"n": len(qa_rows), "cited": _counted(cited, len(qa_rows)),
              "reply_kinds": {k: kinds[k] for k in QA_KINDS if kinds[k]}}
    # aspects: asked anywhere; judged among the replies that answered a gold procedure
    asked, in_answers, titled = Counter(), Counter(), Counter()
    all_n = all_ok = 0
    for v in verdicts:
        if v.kind == "error":
            continue
        asked.update(v.asked)
        if v.outcome == "answered" and v.asked:
            in_answers.update(v.asked)
            titled.update(v.titled)
            all_n += 1
            all_ok += set(v.asked) <= set(v.titled)
    aspects = {
        "per_aspect": {a: {"asked": asked[a], "in_answers": in_answers[a],
                           "answered": titled[a], "share": _share(titled[a], in_answers[a])}
                       for a in ASPECTS if asked[a]},
        "all_answered": {"n": all_n, "count": all_ok, "share": _share(all_ok, all_n)},
    }
    latencies = [e.latency for e in exchanges if e.latency is not None]
    errors = [e for e in exchanges if e.error]
    report: dict[str, Any] = {
        "file": str(inp.path),
        "lines": inp.lines,
        "sent": len(questions),
        "skipped": inp.skipped,
        "filtered": inp.filtered,
        "bad_lines": [{"line": ln, "error": why} for ln, why in inp.bad],
        "errors": len(errors),
        "error_samples": sorted({e.error for e in errors if e.error})[:5],
        "procedure": procedure,
        "qa": qa,
        "aspects": aspects,
        "latency_ms": {
            "n": len(latencies),
            "mean": round(1000 * sum(latencies) / len(latencies), 1) if latencies else None,
            "p95": round(1000 * _percentile(latencies, 95), 1) if latencies else None,
        },
    }
    if details:
        report["questions"] = [
            {"line": q.line, "question": q.text, "gold": list(q.codes),
             "faq_ids": list(q.faq_ids), "outcome": v.outcome, "kind": v.kind,
             "named": list(v.codes), "faq_cited": v.faq_cited, "asked": list(v.asked),
             "titled": list(v.titled), "error": e.error,
             "latency_ms": round(1000 * e.latency, 1) if e.latency is not None else None}
            for q, e, v in rows]
    return report


@dataclass(frozen=True)
class EvalOptions:
    concurrency: int = 4
    timeout: float = 60.0  # seconds per request
    retries: int = 3  # 429s waited out per question
    max_wait: float = 60.0  # longest Retry-After honoured
    limit: int | None = None  # the first N lines of each file
    intents: tuple[str, ...] | None = None
    examples: int = 3
    details: bool = False  # one row per question in the report
    progress: bool = True


def run_eval(paths: Sequence[Path], url: str, opts: EvalOptions = EvalOptions(),
             known: KnownReplies | None = None,
             extra_settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """Read the files, send every question through the gateway at `url`, judge, report."""
    known = known or KnownReplies.from_domain()
    inputs = [read_questions(Path(p), i, opts.limit, opts.intents) for i, p in enumerate(paths)]
    questions = [q for inp in inputs for q in inp.questions]
    chat_url = url.rstrip("/")
    if not chat_url.endswith(CHAT_PATH):
        chat_url += CHAT_PATH
    run_id = uuid.uuid4().hex[:8]
    from tqdm import tqdm

    bar = tqdm(total=len(questions), desc="eval dialogue", unit=" q", file=sys.stderr,
               disable=not opts.progress or None, leave=False)
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    try:
        exchanges = asyncio.run(ask_all(
            chat_url, questions, opts.concurrency, opts.timeout, opts.retries, opts.max_wait,
            run_id, on_done=lambda: bar.update(1)))
    finally:
        bar.close()
    files = []
    offset = 0
    for inp in inputs:
        mine = exchanges[offset:offset + len(inp.questions)]
        offset += len(inp.questions)
        verdicts = [error_verdict(q.codes, q.faq_ids) if e.error else
                    judge(e.messages, q.codes, q.faq_ids, q.text, known, e.handover)
                    for q, e in zip(inp.questions, mine, strict=True)]
        files.append(summarize(inp, mine, verdicts, opts.examples, opts.details))
    return {
        "settings": {
            "url": chat_url, "started_at": started, "run_id": run_id,
            "concurrency": opts.concurrency, "timeout_s": opts.timeout,
            "retries_429": opts.retries, "limit": opts.limit,
            "intents": sorted(opts.intents) if opts.intents else None,
            "offer_buttons": OFFER_BUTTONS, **(extra_settings or {}),
        },
        "files": files,
    }


def _pct(share: float | None) -> str:
    return "" if share is None else f"{100 * share:5.1f}%"


def format_report(report: dict[str, Any]) -> str:
    """The readable table of a report."""
    s = report["settings"]
    head = f"Dialogue evaluation: {s['url']}, {s['concurrency']} at a time"
    if s.get("model"):
        head += f", model {s['model']}"
    out = [head]
    for f in report["files"]:
        p = f["procedure"]
        out += ["", f"{Path(f['file']).name}: {f['lines']} lines, {f['sent']} sent, "
                f"{f['skipped']} skipped (no gold code or Q&A id), {f['filtered']} filtered "
                f"out, {len(f['bad_lines'])} bad, {f['errors']} errors"]
        if p["n"]:
            out.append(f"  {'questions with gold procedures':32}{p['n']:>6}")
            rows = [("answered", p["answered"]), ("offered (buttons 1-4)", p["offered"]),
                    ("answered or offered", p["answered_or_offered"]),
                    ("no procedure:", None)]
            rows += [(f"  {k.replace('_', ' ')}", v) for k, v in p["no_procedure"].items()]
            rows.append(("error", p["error"]))
            for label, v in rows:
                out.append(f"  {label:32}" if v is None else
                           f"  {label:32}{v['count']:>6}  {_pct(v['share'])}")
        if f["qa"]:
            q = f["qa"]
            out.append(f"  {'Q&A link cited':32}{q['cited']['count']:>6}  "
                       f"{_pct(q['cited']['share'])}  of {q['n']}")
            if q["reply_kinds"]:
                out.append("    replies to them: " + ", ".join(
                    f"{k.replace('_', ' ')} {v}" for k, v in q["reply_kinds"].items()))
        aspects = f["aspects"]["per_aspect"]
        if aspects:
            out.append(f"  {'aspect (judged in answered)':32}{'asked':>6}{'in ans.':>9}"
                       f"{'titled':>8}{'share':>8}")
            for a, v in aspects.items():
                out.append(f"    {a:30}{v['asked']:>6}{v['in_answers']:>9}{v['answered']:>8}"
                           f"  {_pct(v['share']):>6}")
            al = f["aspects"]["all_answered"]
            out.append(f"  {'all asked aspects answered':32}{al['count']:>6}  "
                       f"{_pct(al['share'])}  of {al['n']}")
        lat = f["latency_ms"]
        if lat["n"]:
            out.append(f"  latency per question: mean {lat['mean']:.0f} ms, p95 "
                       f"{lat['p95']:.0f} ms ({lat['n']} replies)")
        for sample in f["error_samples"]:
            out.append(f"  error: {sample}")
        for bad in f["bad_lines"][:10]:
            out.append(f"  bad line {bad['line']}: {bad['error']}")
        if len(f["bad_lines"]) > 10:
            out.append(f"  … {len(f['bad_lines']) - 10} more bad lines")
    return "\n".join(out)


# --------------------------------------------------------------------------- CLI

def _positive_int(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError as exc:
        raise argparse.ArgumentTypeError("cần một số nguyên") from exc
    if value < 1:
        raise argparse.ArgumentTypeError("cần một số nguyên ≥ 1")
    return value


def _positive_float(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError as exc:
        raise argparse.ArgumentTypeError("cần một số") from exc
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError("cần một số > 0")
    return value


def add_parser(sub: argparse._SubParsersAction) -> None:
    """`bot eval dialogue FILE… [--url URL | --start] [--json] [--out PATH] …`."""
    p = sub.add_parser(
        "dialogue", help="send each question through the gateway as a new conversation and "
        "judge the first reply (answered / offered / fallback …, Q&A links, aspects, latency)",
        description="FILE: JSON lines with `question` (or `text`), the gold `procedure_codes` "
        "(or `procedures`) and/or `faq_id` (+ `faq_ids`); other fields are ignored, lines "
        "with neither are skipped, a bad line is reported and skipped. Each question is sent "
        "to POST /api/v1/chat with a fresh sender id. A reply ANSWERS when the first "
        "procedure code its text names (\"mã thủ tục …\") is a gold one, OFFERS when a gold "
        "code is behind one of its first 4 buttons; otherwise it is a fallback, out of "
        "scope, a hand-over, a wrong procedure or other. Q&A: the reply links the official "
        "Q&A (id=<faq_id>). Aspects: those bot.aspects finds in the question, answered when "
        "a line of the reply begins with the aspect's heading.")
    p.add_argument("files", nargs="+", metavar="FILE", type=Path, help="JSONL evaluation files")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--url", help="a running gateway (default http://BOT_HOST:BOT_PORT)")
    where.add_argument("--start", action="store_true",
                       help="start a stack for this run (the active model, the configured "
                       "database, free loopback ports, rate limits off); stopped at the end")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object (every file, plus the settings used)")
    p.add_argument("--out", type=Path, metavar="PATH",
                   help="also write the JSON report to this file")
    p.add_argument("--limit", type=_positive_int, metavar="N",
                   help="only the first N lines of each file")
    p.add_argument("--intent", action="append", metavar="INTENT[,INTENT…]", dest="intents",
                   help="only lines whose `intent` is one of these (comma-separated or "
                   "repeated, e.g. --intent ask_fee,ask_documents)")
    p.add_argument("--concurrency", type=_positive_int, default=4, metavar="K",
                   help="conversations in flight at once (default 4, at most 64)")
    p.add_argument("--timeout", type=_positive_float, default=60.0, metavar="S",
                   help="seconds per request before it counts as an error (default 60)")
    p.add_argument("--retries", type=int, default=3, metavar="N",
                   help="times a 429 is waited out (its Retry-After, at most 60 s) per "
                   "question (default 3)")
    p.add_argument("--examples", type=int, default=3, metavar="N",
                   help="questions kept per failure kind in the JSON report (default 3)")
    p.add_argument("--details", action="store_true",
                   help="add one row per question (outcome, codes named, aspects, latency) "
                   "to the JSON report")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.set_defaults(func=cmd)


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _start_stack(log_dir: Path) -> tuple[Any, str, Path] | int:  # noqa: ANN401 - a Stack
    """A stack of our own: the configured database and active model, free loopback ports,
    one replica each, no rate limits. (stack, gateway URL, model) or an exit status."""
    from bot.bench.load import Target, gateway_answered, gateway_payload
    from bot.bench.runner import free_port, wait_answer
    from bot.catalog.snapshot import prepare_catalog
    from bot.registry.registry import active_model
    from bot.stack import Stack

    env = {k: v for k, v in os.environ.items()
           if k not in ("RASA_URL", "ACTIONS_URL", "RASA_URLS", "ACTIONS_URLS")}
    env.update({
        "BOT_HOST": "127.0.0.1", "BOT_PORT": str(free_port()),
        "RASA_PORT": str(free_port()), "ACTIONS_PORT": str(free_port()),
        "RASA_REPLICAS": "1", "ACTIONS_REPLICAS": "1",
        "RATE_LIMIT_PER_MINUTE": "0", "RATE_LIMIT_ADDRESS_PER_MINUTE": "0",
    })
    settings = Settings.from_env(env)
    model = active_model(settings)
    if model is None or not model.exists():
        _say("Chưa có mô hình đã huấn luyện: chạy `bot train` trước "
             "(`bot eval dialogue --start` không tự huấn luyện).")
        return 2
    prepare_catalog(settings)  # as `bot run` prepares it (seed, shipped national snapshot)
    _say(f"Khởi động trợ lý với mô hình {model.name} (nhật ký: {log_dir})…")
    stack = Stack(settings, model, log_dir=log_dir)
    try:
        stack.start()
        url = f"http://{settings.bot_host}:{settings.bot_port}"
        target = Target("gateway", url + CHAT_PATH, gateway_payload, gateway_answered)
        alive = lambda: all(p.poll() is None for p in stack.procs.values())  # noqa: E731
        if not asyncio.run(wait_answer(target, "xin chào", alive, 300)):
            raise RuntimeError(f"the assistant did not answer; see {log_dir}")
    except BaseException:
        stack.stop()
        raise
    return stack, url, model


def cmd(args: argparse.Namespace, settings: Settings) -> int:
    missing = [str(f) for f in args.files if not f.is_file()]
    if missing:
        _say(f"Không thấy tệp: {', '.join(missing)}")
        return 2
    if not 1 <= args.concurrency <= 64 or not 0 <= args.retries <= 10 or args.examples < 0:
        _say("--concurrency từ 1 đến 64, --retries từ 0 đến 10, --examples ≥ 0")
        return 2
    intents = tuple(sorted({i.strip() for raw in args.intents or [] for i in raw.split(",")
                            if i.strip()}))
    try:
        known = KnownReplies.from_domain()
    except DialogueEvalError as exc:
        _say(str(exc))
        return 2
    opts = EvalOptions(concurrency=args.concurrency, timeout=args.timeout,
                       retries=args.retries, limit=args.limit,
                       intents=intents or None,
                       examples=args.examples, details=args.details,
                       progress=not args.no_progress)
    stack = None
    extra: dict[str, Any] = {"started_stack": bool(args.start)}
    try:
        if args.start:
            stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
            try:
                started = _start_stack(ROOT / "var" / "eval" / f"dialogue-{stamp}")
            except RuntimeError as exc:
                _say(f"bot eval dialogue: {exc}")
                return 1
            if isinstance(started, int):
                return started
            stack, url, model = started
            extra["model"] = model.name
        else:
            host = "127.0.0.1" if settings.bot_host in ("0.0.0.0", "::", "") else settings.bot_host
            url = args.url or f"http://{host}:{settings.bot_port}"
        report = run_eval(args.files, url, opts, known, extra)
    except DialogueEvalError as exc:
        _say(str(exc))
        return 2
    finally:
        if stack is not None:
            stack.stop()
    text = json.dumps(report, ensure_ascii=False, indent=2)
    if args.out is not None:
        from bot.atomic_file import write_atomic

        write_atomic(args.out, text + "\n")
    print(json.dumps(report, ensure_ascii=False) if args.json else format_report(report))
    sent = sum(f["sent"] for f in report["files"])
    if sent and sum(f["errors"] for f in report["files"]) == sent:
        _say(f"Không câu hỏi nào được trả lời: kiểm tra {report['settings']['url']} "
             "(hoặc dùng --start).")
        return 1
    return 0

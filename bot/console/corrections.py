"""Operator corrections as NLU training data: stored in the database, exported to
`data/nlu/corrections.yml` for review.

A correction from the NLU inbox becomes one training example in Rasa's YAML format. The
console stores it in the database (`store_example`, table `nlu_corrections`): with several
gateway replicas a file written inside one container reached neither the others nor the
training, and vanished on redeploy. Training adds the stored examples the NLU folder lacks
(`pending_document`, bot.training); `bot nlu export-corrections` writes them into the one
file that only this module writes (`export_corrections`, or `add_example` for one), so a
reviewer sees exactly what operators taught the bot in `git diff`. The file is
regenerated from its parsed content on every write: intents sorted, examples sorted, one
block per intent, so two operators adding the same examples in another order produce the
same bytes.

Safety rules, each refused with a Vietnamese message for the console:

* the intent and every entity must exist in domain.yml (a typo would train a new intent);
* entity spans must lie inside the text and must not overlap;
* a text already present in any file of the NLU folder is not added again (Rasa refuses the
  same text under two intents, and twice under one intent only adds noise);
* a text holding a citizen ID (CCCD or CMND), a phone number, an e-mail address or a
  receipt code is refused: training data goes into git, personal data must not
  (`bot.text.mask_pii`, the detector the logs use, decides what counts);
* the new file must load through Rasa's own YAML reader with the example and its entities
  intact, without a warning, before it replaces the old one (temp file + `os.replace`, under
  an exclusive lock on the folder, so two operators never corrupt or lose each other's work);
  a stored example must load the same way in the file it will be exported to, and two
  replicas storing the same text meet the table's unique key.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import threading
import unicodedata
import warnings
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.atomic_file import write_atomic
from bot.config import ROOT
from bot.console.inbox_models import NluCorrection
from bot.text import mask_pii, nfc
from bot.timeutil import utcnow

OUT_OF_SCOPE = "out_of_scope"
DOMAIN_FILE = ROOT / "domain.yml"
HEADER = (
    "# Câu do cán bộ sửa trong hộp thư NLU của trang quản trị (bot/console/corrections.py).\n"
    "# Tệp được sinh lại mỗi lần ghi (ý định và câu được sắp xếp): sửa tay vẫn được, nhưng\n"
    "# chú thích thêm vào sẽ mất. Xem lại bằng git diff trước khi huấn luyện lại.\n"
)
_ANNOTATION = re.compile(r"\[(?P<text>[^\]]+?)\](?:\([^)]*\)|\{[^}]*\}|\[[^\]]*\])")
_THREAD_LOCK = threading.Lock()


class CorrectionError(ValueError):
    """A correction that cannot be written; the message is for the operator (Vietnamese)."""


class DuplicateExample(CorrectionError):
    """The text is already a training example (`path`, under `intent`)."""

    def __init__(self, message: str, path: Path, intent: str) -> None:
        super().__init__(message)
        self.path = path
        self.intent = intent


@dataclass(frozen=True)
class EntitySpan:
    """An entity marked on the citizen's text: characters [start, end), optional value."""

    start: int
    end: int
    entity: str
    value: str | None = None


@dataclass(frozen=True)
class AddedExample:
    """What was written: the file, the intent and the example line in Rasa markup."""

    path: Path
    intent: str
    example: str
    text: str


def _names(items: object) -> set[str]:
    """Intent or entity names from a domain list (plain names or one-key mappings)."""
    out: set[str] = set()
    for item in items if isinstance(items, list) else []:
        if isinstance(item, str):
            out.add(item)
        elif isinstance(item, dict):
            out.update(str(k) for k in item)
    return out


@lru_cache(maxsize=8)
def _domain(path: Path, mtime: float) -> tuple[frozenset[str], frozenset[str]]:
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return frozenset(_names(data.get("intents"))), frozenset(_names(data.get("entities")))


def domain_names(domain_file: Path = DOMAIN_FILE) -> tuple[frozenset[str], frozenset[str]]:
    """(intents, entities) declared in domain.yml, re-read when the file changes."""
    return _domain(domain_file, domain_file.stat().st_mtime)


def dedup_key(text: str) -> str:
    """How two examples are compared: NFC, case-folded, whitespace collapsed."""
    return " ".join(nfc(text).casefold().split())


def plain_text(example: str) -> str:
    """The text of an example line with Rasa's entity markup removed."""
    return _ANNOTATION.sub(lambda m: m.group("text"), example)


def _example_lines(examples: object) -> Iterator[str]:
    if isinstance(examples, str):
        for line in examples.splitlines():
            line = line.strip()
            if line.startswith("- "):
                yield line[2:].strip()
    elif isinstance(examples, list):  # the list-of-mappings form with metadata
        for item in examples:
            if isinstance(item, dict) and isinstance(item.get("text"), str):
                yield item["text"].strip()


def existing_examples(nlu_dir: Path) -> dict[str, tuple[Path, str]]:
    """Every example text of the NLU folder: dedup key → (file, intent)."""
    found: dict[str, tuple[Path, str]] = {}
    for path in sorted(nlu_dir.glob("*.yml")) + sorted(nlu_dir.glob("*.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for item in data.get("nlu") or [] if isinstance(data, dict) else []:
            if isinstance(item, dict) and "intent" in item:
                for line in _example_lines(item.get("examples")):
                    found.setdefault(dedup_key(plain_text(line)), (path, str(item["intent"])))
    return found


def _yaml_printable(ch: str) -> bool:
    """Characters YAML allows in a block scalar (no C0/C1 controls, no BOM, no surrogates)."""
    code = ord(ch)
    if code in (0xFEFF, 0xFFFE, 0xFFFF) or 0xD800 <= code <= 0xDFFF:
        return False
    return not (code < 0x20 or 0x7F <= code <= 0x9F)


def _clean(segment: str) -> str:
    """One piece of citizen text made safe for a one-line Rasa example.

    NFC; any whitespace run (including line and paragraph separators, which YAML would treat
    as line breaks) becomes one space; characters YAML cannot hold are dropped; square
    brackets become parentheses, since Rasa has no escape for them and `[x](y)` in a
    citizen's text would otherwise be read as an entity.
    """
    segment = " ".join(nfc(segment).split())
    segment = segment.replace("[", "(").replace("]", ")")
    return "".join(ch for ch in segment if _yaml_printable(ch))


def _check_spans(text: str, spans: Sequence[EntitySpan], entities: frozenset[str]
                 ) -> list[EntitySpan]:
    """Validated spans, trimmed of surrounding spaces, in text order."""
    out: list[EntitySpan] = []
    for span in spans:
        if span.entity not in entities:
            raise CorrectionError(f"Thực thể '{span.entity}' không có trong domain.yml "
                                  f"(có: {', '.join(sorted(entities))}).")
        if not (0 <= span.start < span.end <= len(text)):
            raise CorrectionError(f"Vị trí thực thể {span.start}–{span.end} nằm ngoài câu "
                                  f"(dài {len(text)} ký tự).")
        start, end = span.start, span.end
        while start < end and text[start].isspace():
            start += 1
        while end > start and text[end - 1].isspace():
            end -= 1
        if start == end:
            raise CorrectionError("Thực thể được đánh dấu chỉ có khoảng trắng.")
        if span.value is not None and (not span.value.strip() or "}" in span.value
                                       or "{" in span.value):
            raise CorrectionError("Giá trị thực thể không được trống hoặc chứa dấu ngoặc nhọn.")
        out.append(EntitySpan(start, end, span.entity, span.value))
    out.sort(key=lambda s: (s.start, s.end))
    for a, b in zip(out, out[1:], strict=False):
        if b.start < a.end:
            raise CorrectionError(f"Hai thực thể chồng lên nhau: '{text[a.start:a.end]}' và "
                                  f"'{text[b.start:b.end]}'.")
    return out


def to_markup(text: str, spans: Sequence[EntitySpan]) -> tuple[str, str, list[EntitySpan]]:
    """(example line in Rasa markup, its plain text, entity spans on the plain text).

    `spans` must be validated (sorted, inside the text, not overlapping). Each piece of
    text between and inside entities is cleaned on its own, so offsets never drift.
    """
    parts: list[str] = []
    plain: list[str] = []
    placed: list[EntitySpan] = []
    pos = 0

    def emit_plain(segment: str, first: bool, last: bool) -> None:
        core = _clean(segment)
        if core:
            if segment[:1].isspace() and not first:
                core = " " + core
            if segment[-1:].isspace() and not last:
                core += " "
        elif not first and not last and any(ch.isspace() for ch in segment):
            core = " "  # the space between two entities
        parts.append(core)
        plain.append(core)

    for span in spans:
        emit_plain(text[pos:span.start], first=not plain, last=False)
        entity_text = _clean(text[span.start:span.end])
        if not entity_text:
            raise CorrectionError("Thực thể được đánh dấu không còn ký tự nào hợp lệ.")
        start = sum(len(p) for p in plain)
        plain.append(entity_text)
        placed.append(EntitySpan(start, start + len(entity_text), span.entity, span.value))
        value = nfc(span.value).strip() if span.value is not None else None
        if value is None or value == entity_text:
            parts.append(f"[{entity_text}]({span.entity})")
        else:
            attrs = json.dumps({"entity": span.entity, "value": value}, ensure_ascii=False)
            parts.append(f"[{entity_text}]{attrs}")
        pos = span.end
    emit_plain(text[pos:], first=not plain, last=True)
    # pieces are trimmed and entities never start or end with a space, so the text has no
    # leading, trailing or double space and the offsets above hold
    return "".join(parts), "".join(plain), placed


def _render(blocks: dict[str, list[str]]) -> str:
    """The corrections file: header, version, one block per intent, everything sorted."""
    if not blocks:
        return HEADER + 'version: "3.1"\nnlu: []\n'
    out = [HEADER, 'version: "3.1"\n', "nlu:\n"]
    for intent in sorted(blocks):
        out.append(f"- intent: {intent}\n  examples: |\n")
        for example in sorted(set(blocks[intent]), key=lambda e: (dedup_key(plain_text(e)), e)):
            out.append(f"    - {example}\n")
    return "".join(out)


def _read_blocks(path: Path) -> dict[str, list[str]]:
    if not path.exists():
        return {}
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    blocks: dict[str, list[str]] = {}
    for item in (data.get("nlu") or []) if isinstance(data, dict) else []:
        if isinstance(item, dict) and "intent" in item:
            blocks.setdefault(str(item["intent"]), []).extend(_example_lines(item["examples"]))
    return blocks


def _rasa_check(content: str, path: Path, intent: str, plain: str,
                spans: Sequence[EntitySpan]) -> None:
    """Load `content` with Rasa's own YAML reader; the new example must come back intact."""
    from rasa.shared.nlu.training_data.formats.rasa_yaml import RasaYAMLReader

    reader = RasaYAMLReader()
    reader.filename = str(path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            data = reader.reads(content)
        except Exception as exc:  # noqa: BLE001 - Rasa raises several types for bad YAML
            raise CorrectionError(f"Rasa không đọc được tệp sau khi sửa: {exc}") from exc
    # Rasa's reader reports problems as UserWarnings naming the file; the gateway's other
    # threads may warn meanwhile (the warnings filter is process-wide), so only those count.
    problems = [str(w.message) for w in caught if issubclass(w.category, UserWarning)
                and (str(path) in str(w.message) or "/rasa/" in str(w.filename))]
    if problems:
        raise CorrectionError(f"Rasa cảnh báo về tệp sau khi sửa: {problems[0][:300]}")
    want = sorted((s.start, s.end, s.entity) for s in spans)
    for message in data.training_examples:
        if message.get("text") == plain and message.get("intent") == intent:
            got = sorted((e["start"], e["end"], e["entity"])
                         for e in message.get("entities") or [])
            if got == want:
                return
            raise CorrectionError(f"Rasa đọc lại thực thể khác với đánh dấu: {got} ≠ {want}.")
    raise CorrectionError("Rasa đọc lại tệp nhưng không thấy câu vừa thêm.")


@contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """Exclusive lock for writers of one NLU folder: across threads and across processes.

    The lock is taken on the folder itself (its inode survives `os.replace` of the file,
    and no lock file appears in git).
    """
    with _THREAD_LOCK:
        fd = os.open(directory, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def prepare(text: str, intent: str, entities: Iterable[EntitySpan] = (), *,
            domain_file: Path = DOMAIN_FILE) -> tuple[str, str, list[EntitySpan]]:
    """Validate a correction; (example line, plain text, spans on it) or `CorrectionError`.

    Nothing is written: the console can show the line an operator is about to add.
    """
    intents, entity_names = domain_names(domain_file)
    if intent not in intents:
        raise CorrectionError(f"Ý định '{intent}' không có trong domain.yml.")
    if intent == OUT_OF_SCOPE and list(entities):
        raise CorrectionError("Câu ngoài phạm vi không mang thực thể.")
    text = unicodedata.normalize("NFC", text) if isinstance(text, str) else ""
    spans = _check_spans(text, list(entities), entity_names)
    line, plain, placed = to_markup(text, spans)
    if not plain.strip():
        raise CorrectionError("Câu trống: không có gì để thêm.")
    if plain.startswith("/"):
        raise CorrectionError("Câu bắt đầu bằng '/' là lệnh của nút bấm, không phải câu hỏi.")
    if mask_pii(plain) != plain:
        raise CorrectionError(
            "Câu có số CCCD/CMND, số điện thoại, địa chỉ e-mail hoặc mã hồ sơ của người dân: "
            "không đưa vào dữ liệu huấn luyện (được lưu trong git). Hãy bỏ qua câu này hoặc tự "
            "thêm một câu tương tự với số giả.")
    return line, plain, placed


def add_example(text: str, intent: str, entities: Iterable[EntitySpan] = (), *,
                corrections_file: Path, domain_file: Path = DOMAIN_FILE) -> AddedExample:
    """Add one example to the corrections file; refuse duplicates and invalid input.

    Raises `DuplicateExample` when the text is already in any file of the NLU folder (the
    corrections file's folder), `CorrectionError` for anything else that is wrong.
    """
    line, plain, placed = prepare(text, intent, entities, domain_file=domain_file)
    path = corrections_file
    path.parent.mkdir(parents=True, exist_ok=True)
    with _locked(path.parent):
        known = existing_examples(path.parent).get(dedup_key(plain))
        if known is not None:
            where, label = known
            raise DuplicateExample(
                f"Câu này đã có trong {where.name} (ý định {label}): không thêm lần nữa.",
                where, label)
        blocks = _read_blocks(path)
        blocks.setdefault(intent, []).append(line)
        content = _render(blocks)
        _rasa_check(content, path, intent, plain, placed)
        write_atomic(path, content)
    return AddedExample(path=path, intent=intent, example=line, text=plain)


# --------------------------------------------------------------------------- database


def key_digest(plain: str) -> str:
    """The stored form of `dedup_key`: fixed length, so that it can carry a unique index."""
    return hashlib.sha256(dedup_key(plain).encode()).hexdigest()


def stored_corrections(session: Session) -> list[NluCorrection]:
    """Every stored correction, oldest first."""
    return list(session.execute(select(NluCorrection).order_by(NluCorrection.id)).scalars())


def _pending_blocks(session: Session, nlu_dir: Path,
                    blocks: dict[str, list[str]] | None = None) -> dict[str, list[str]]:
    """`blocks` plus the stored corrections whose text no file of `nlu_dir` holds yet (an
    exported, committed correction is not repeated: Rasa refuses a text twice)."""
    out = {intent: list(lines) for intent, lines in (blocks or {}).items()}
    known = existing_examples(nlu_dir)
    for row in stored_corrections(session):
        if dedup_key(row.text) not in known:
            out.setdefault(row.intent, []).append(row.example)
    return out


def pending_document(session: Session, nlu_dir: Path) -> str | None:
    """The stored corrections missing from `nlu_dir` as a Rasa NLU file (what training adds
    to the shipped data), None when there are none."""
    blocks = _pending_blocks(session, nlu_dir)
    return _render(blocks) if blocks else None


def _duplicate_in(session: Session, plain: str, corrections_file: Path) -> None:
    """DuplicateExample when the text is an example of the NLU folder or a stored one."""
    key = dedup_key(plain)
    known = existing_examples(corrections_file.parent).get(key)
    if known is not None:
        where, label = known
        raise DuplicateExample(
            f"Câu này đã có trong {where.name} (ý định {label}): không thêm lần nữa.",
            where, label)
    row = session.execute(select(NluCorrection).where(
        NluCorrection.key_sha256 == key_digest(plain))).scalar_one_or_none()
    if row is not None:
        raise DuplicateExample(
            f"Câu này đã được cán bộ {row.created_by} thêm (ý định {row.intent}), chờ xuất ra "
            f"{corrections_file.name}: không thêm lần nữa.", corrections_file, row.intent)


def store_example(session: Session, text: str, intent: str,
                  entities: Iterable[EntitySpan] = (), *, corrections_file: Path, by: str,
                  domain_file: Path = DOMAIN_FILE) -> AddedExample:
    """Store one correction in the database (the caller commits); refuse duplicates and
    invalid input exactly as `add_example` does.

    `corrections_file` is where `export_corrections` will write it: its folder is the NLU
    data the text must not already be in, and the file with every stored correction added
    must load through Rasa's reader. Raises `DuplicateExample` or `CorrectionError`.
    """
    line, plain, placed = prepare(text, intent, entities, domain_file=domain_file)
    _duplicate_in(session, plain, corrections_file)
    blocks = _pending_blocks(session, corrections_file.parent, _read_blocks(corrections_file))
    blocks.setdefault(intent, []).append(line)
    _rasa_check(_render(blocks), corrections_file, intent, plain, placed)
    try:
        with session.begin_nested():
            session.add(NluCorrection(
                key_sha256=key_digest(plain), intent=intent, example=line, text=plain,
                created_by=by[:64], created_at=utcnow()))
    except IntegrityError:  # another replica stored the same text a moment ago
        _duplicate_in(session, plain, corrections_file)
        raise
    return AddedExample(path=corrections_file, intent=intent, example=line, text=plain)


def export_corrections(session: Session, corrections_file: Path) -> int:
    """Write the stored corrections the NLU folder lacks into `corrections_file` (sorted,
    as `add_example` writes it); returns how many were added. For review in git: the
    reviewer commits the file, and training then finds them there."""
    corrections_file.parent.mkdir(parents=True, exist_ok=True)
    with _locked(corrections_file.parent):
        before = _read_blocks(corrections_file)
        blocks = _pending_blocks(session, corrections_file.parent, before)
        added = sum(map(len, blocks.values())) - sum(map(len, before.values()))
        if added:
            write_atomic(corrections_file, _render(blocks))
    return added

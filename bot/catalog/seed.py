"""Load catalog YAML files (the shipped seed in data/catalog/) into the database.

Loading is an idempotent upsert by procedure code: re-loading the same file changes nothing,
a changed record replaces the stored one, and a malformed record is reported and skipped
while the others are still loaded.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, object_session, selectinload

from bot.catalog.models import (
    CHANNELS,
    Alias,
    Channel,
    Document,
    LegalBasis,
    Procedure,
    Step,
)
from bot.catalog.revision import bump_revision
from bot.config import ROOT
from bot.text import fold, nfc

log = logging.getLogger(__name__)

SEED_DIR = ROOT / "data" / "catalog"
TIME_UNITS = ("ngày làm việc", "ngày", "giờ", "tháng")
TEXT_FIELDS = ("short_name", "field", "level", "agency", "authority", "url", "summary", "result",
               "online_howto", "audience", "conditions", "decision")


class CatalogError(ValueError):
    """A catalog record that cannot be loaded; the message says which and why."""


@dataclass
class LoadReport:
    """Counts of what a load did, plus the reasons for rejected records."""

    new: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    kept: int = 0  # existing records owned by another source, deliberately left alone
    errors: list[str] = field(default_factory=list)

    def summary(self) -> str:
        text = (f"{self.new} mới, {self.updated} cập nhật, {self.unchanged} không đổi, "
                f"{self.rejected} bị từ chối")
        return text + (f", {self.kept} giữ nguyên (nguồn khác)" if self.kept else "")

    @property
    def changed(self) -> bool:
        return bool(self.new or self.updated)

    def add(self, other: LoadReport, prefix: str = "") -> None:
        """Add another report's counts and errors (errors prefixed, e.g. with a file name)."""
        self.new += other.new
        self.updated += other.updated
        self.unchanged += other.unchanged
        self.rejected += other.rejected
        self.kept += other.kept
        self.errors.extend(prefix + e for e in other.errors)


def _text(value: Any, where: str, required: bool = False) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise CatalogError(f"{where}: thiếu giá trị bắt buộc")
        return None
    if not isinstance(value, (str, int, float)):
        raise CatalogError(f"{where}: phải là chuỗi, nhận {type(value).__name__}")
    return nfc(str(value)).strip()


def _fee(value: Any, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise CatalogError(f"{where}: lệ phí phải là số nguyên đồng ≥ 0 hoặc null, nhận {value!r}")
    return value


def _raw_json(value: Any, where: str) -> str | None:
    """The source's unparsed texts as canonical JSON (sorted keys), or None."""
    if value is None or value == {}:
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise CatalogError(f"{where}: không phải JSON hợp lệ") from exc
    if not isinstance(value, dict):
        raise CatalogError(f"{where}: phải là mapping")
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def normalize_record(raw: Any, partial: bool = False) -> dict[str, Any]:
    """Validate one record and return it in canonical form (raises CatalogError).

    With `partial`, only the keys the record has are returned (plus `code`): a source that
    knows only names and fields (the portal's exported lists) must not blank out the
    documents and fees another source provided.
    """
    if not isinstance(raw, dict):
        raise CatalogError(f"bản ghi phải là một mapping, nhận {type(raw).__name__}")
    code = _text(raw.get("code"), "code", required=True)
    where = f"thủ tục {code}"
    rec: dict[str, Any] = {"code": code}
    rec["name"] = _text(raw.get("name"), f"{where}.name", required="name" in raw or not partial)
    for key in TEXT_FIELDS:
        rec[key] = _text(raw.get(key), f"{where}.{key}")
    rec["raw"] = _raw_json(raw.get("raw"), f"{where}.raw")
    channels = []
    for i, ch in enumerate(raw.get("channels") or []):
        w = f"{where}.channels[{i}]"
        if not isinstance(ch, dict):
            raise CatalogError(f"{w}: phải là mapping")
        kind = ch.get("channel")
        if kind not in CHANNELS:
            raise CatalogError(f"{w}.channel: phải là một trong {', '.join(CHANNELS)}")
        tv = ch.get("time_value")
        if tv is not None and (isinstance(tv, bool) or not isinstance(tv, (int, float)) or tv < 0):
            raise CatalogError(f"{w}.time_value: phải là số ≥ 0 hoặc null")
        unit = _text(ch.get("time_unit"), f"{w}.time_unit")
        if unit is not None:
            unit = unit.lower()
            if unit not in TIME_UNITS:
                raise CatalogError(f"{w}.time_unit: phải là một trong {', '.join(TIME_UNITS)}")
        channels.append({
            "channel": kind, "time_value": float(tv) if tv is not None else None,
            "time_unit": unit, "time_text": _text(ch.get("time_text"), f"{w}.time_text"),
            "fee": _fee(ch.get("fee"), f"{w}.fee"),
            "fee_text": _text(ch.get("fee_text"), f"{w}.fee_text"),
            "note": _text(ch.get("note"), f"{w}.note"),
        })
    rec["channels"] = channels
    docs = []
    for i, d in enumerate(raw.get("documents") or []):
        w = f"{where}.documents[{i}]"
        if isinstance(d, str):
            d = {"name": d}
        if not isinstance(d, dict):
            raise CatalogError(f"{w}: phải là mapping hoặc chuỗi")
        docs.append({"name": _text(d.get("name"), f"{w}.name", required=True),
                     "copies": _text(d.get("copies"), f"{w}.copies"),
                     "case": _text(d.get("case"), f"{w}.case")})
    rec["documents"] = docs
    rec["steps"] = [_text(s, f"{where}.steps[{i}]", required=True)
                    for i, s in enumerate(raw.get("steps") or [])]
    basis = []
    for i, b in enumerate(raw.get("legal_basis") or []):
        w = f"{where}.legal_basis[{i}]"
        if not isinstance(b, dict):
            raise CatalogError(f"{w}: phải là mapping")
        basis.append({"number": _text(b.get("number"), f"{w}.number"),
                      "title": _text(b.get("title"), f"{w}.title")})
    rec["legal_basis"] = basis
    aliases = []
    for i, a in enumerate(raw.get("aliases") or []):
        text = _text(a, f"{where}.aliases[{i}]", required=True)
        if fold(text) not in {fold(x) for x in aliases}:
            aliases.append(text)
    rec["aliases"] = aliases
    if partial:
        rec = {k: v for k, v in rec.items() if k == "code" or k in raw}
    return rec


def _snapshot(p: Procedure) -> dict[str, Any]:
    """The stored procedure in the canonical form of `normalize_record`, for change checks."""
    return {
        "code": p.code, "name": p.name, **{k: getattr(p, k) for k in TEXT_FIELDS}, "raw": p.raw,
        "filled": p.filled,
        "channels": [{"channel": c.channel, "time_value": c.time_value, "time_unit": c.time_unit,
                      "time_text": c.time_text, "fee": c.fee, "fee_text": c.fee_text,
                      "note": c.note} for c in p.channels],
        "documents": [{"name": d.name, "copies": d.copies, "case": d.case} for d in p.documents],
        "steps": [s.text for s in p.steps],
        "legal_basis": [{"number": b.number, "title": b.title} for b in p.legal_basis],
        "aliases": sorted((a.alias for a in p.aliases), key=fold),
    }


def _apply(p: Procedure, rec: dict[str, Any], source: str) -> None:
    for key in ("name", *TEXT_FIELDS, "raw"):
        setattr(p, key, rec[key])
    p.filled = rec.get("filled")
    p.name_folded = fold(rec["name"])
    p.source = source
    session = object_session(p)
    if session is not None:
        # Delete the old children first: inserting the new ones before the orphans are
        # removed would break the (procedure, alias) unique constraint.
        p.channels, p.documents, p.steps, p.legal_basis, p.aliases, p.fee_rules = (
            [], [], [], [], [], [])
        session.flush()
    p.channels = [Channel(position=i, **c) for i, c in enumerate(rec["channels"])]
    p.documents = [Document(position=i, **d) for i, d in enumerate(rec["documents"])]
    p.steps = [Step(position=i, text=s) for i, s in enumerate(rec["steps"])]
    p.legal_basis = [LegalBasis(position=i, **b) for i, b in enumerate(rec["legal_basis"])]
    p.aliases = [Alias(alias=a, folded=fold(a)) for a in rec["aliases"]]
    # Imported lazily: the fee parser reads the importers' cell parsers, which import this.
    from bot.fees.store import apply_national

    apply_national(p, source)


_CHILDREN = (Procedure.channels, Procedure.documents, Procedure.steps, Procedure.legal_basis,
             Procedure.aliases, Procedure.fee_rules)


def _load_existing(session: Session, codes: list[str], chunk: int = 500) -> dict[str, Procedure]:
    """Stored procedures for `codes` with all their children, in a few queries.

    Comparing a record with its stored version reads every child collection; loading them
    lazily would cost several queries per procedure at every start-up seed sync.
    """
    found: dict[str, Procedure] = {}
    for start in range(0, len(codes), chunk):
        rows = session.execute(
            select(Procedure).where(Procedure.code.in_(codes[start:start + chunk]))
            .options(*(selectinload(rel) for rel in _CHILDREN))
        ).scalars()
        found.update((p.code, p) for p in rows)
    return found


def upsert_records(session: Session, records: list[Any], source: str = "seed",
                   owned_only: bool = False, partial: bool = False,
                   keep_sources: frozenset[str] = frozenset(),
                   labels: list[str] | None = None,
                   seen: set[str] | None = None) -> LoadReport:
    """Insert or update records by code; bad records are reported and skipped.

    With `owned_only`, an existing record from another source (an import, an operator's
    edit) is kept as it is: the seed never overwrites what someone loaded on purpose.
    `keep_sources` keeps records of the named sources (imports keep the curated seed).
    With `partial`, records carry only some fields and are merged into what is stored.
    `labels` name the records in error messages ("dòng 17"); default "bản ghi #N".
    `seen` carries the codes of earlier batches of the same file, so a code repeated
    across batches is rejected like one repeated within a batch.
    Every load that changed something bumps the catalog revision.
    """
    report = LoadReport()
    valid: list[tuple[str, dict[str, Any]]] = []
    seen = set() if seen is None else seen
    for i, raw in enumerate(records):
        label = labels[i] if labels else f"bản ghi #{i + 1}"
        try:
            rec = normalize_record(raw, partial=partial)
        except CatalogError as exc:
            report.rejected += 1
            report.errors.append(f"{label}: {exc}")
            continue
        if rec["code"] in seen:
            report.rejected += 1
            report.errors.append(f"{label}: mã {rec['code']} bị lặp trong cùng tệp")
            continue
        seen.add(rec["code"])
        valid.append((label, rec))
    stored = _load_existing(session, [rec["code"] for _, rec in valid])
    for label, rec in valid:
        existing = stored.get(rec["code"])
        if existing is None:
            if not rec.get("name"):
                report.rejected += 1
                report.errors.append(f"{label}: thủ tục {rec['code']} mới nhưng thiếu tên")
                continue
            session.add(build_procedure(rec, source))
            report.new += 1
            continue
        if (owned_only and existing.source != source) or existing.source in keep_sources:
            report.kept += 1
            continue
        before = _snapshot(existing)
        if partial:
            wanted = _merge(before, rec, overwrite=existing.source == source)
        else:
            wanted = _keep_filled(before, dict(rec, filled=None))
        wanted = dict(wanted, aliases=sorted(wanted["aliases"], key=fold))
        if before == wanted:
            report.unchanged += 1
        else:
            _apply(existing, wanted, existing.source if partial else source)
            report.updated += 1
    session.flush()
    if report.changed:
        bump_revision(session)
    return report


def _filled(value: str | None) -> set[str]:
    return set(filter(None, (value or "").split(",")))


def _merge(before: dict[str, Any], rec: dict[str, Any], overwrite: bool) -> dict[str, Any]:
    """A partial record merged into the stored one.

    Into a record another source owns, a partial source only fills what is empty, and the
    filled fields are remembered (`filled`) so that re-importing the full source keeps
    them instead of blanking them: re-importing both sources must change nothing.
    """
    if overwrite:
        return {**before, **rec}
    fills = {k: v for k, v in rec.items() if before.get(k) in (None, "", []) and v}
    filled = _filled(before.get("filled")) | set(fills)
    return {**before, **fills, "filled": ",".join(sorted(filled)) or None}


def _keep_filled(before: dict[str, Any], rec: dict[str, Any]) -> dict[str, Any]:
    """A full record that keeps the fields a partial source filled and it leaves empty."""
    kept = {k for k in _filled(before.get("filled")) if rec.get(k) in (None, "", [])}
    for k in kept:
        rec[k] = before[k]
    rec["filled"] = ",".join(sorted(kept)) or None
    return rec


def build_procedure(rec: dict[str, Any], source: str) -> Procedure:
    """A new (not yet added) procedure from a canonical record; missing fields are empty."""
    p = Procedure(code=rec["code"])
    _apply(p, {**_EMPTY, **rec}, source)
    return p


_EMPTY: dict[str, Any] = {
    **{k: None for k in TEXT_FIELDS}, "raw": None, "filled": None, "channels": [], "documents": [],
    "steps": [], "legal_basis": [], "aliases": [],
}


def read_catalog_file(path: Path) -> list[Any]:
    """Read a catalog YAML file: a mapping with a `procedures` list (or a bare list)."""
    try:
        data = _parse_yaml(str(path), path.stat().st_mtime_ns)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise CatalogError(f"không đọc được {path}: {exc}") from exc
    if isinstance(data, dict):
        data = data.get("procedures")
    if not isinstance(data, list):
        raise CatalogError(f"{path}: cần danh sách `procedures:`")
    return data


@lru_cache(maxsize=16)
def _parse_yaml(path: str, mtime_ns: int) -> Any:
    """Parsed YAML, cached per file version: every process start syncs the seed."""
    return yaml.safe_load(Path(path).read_text(encoding="utf-8"))


def load_seed(session: Session, seed_dir: Path = SEED_DIR, owned_only: bool = False) -> LoadReport:
    """Load every `*.yaml` file of the seed folder."""
    total = LoadReport()
    for path in sorted(seed_dir.glob("*.yaml")):
        total.add(upsert_records(session, read_catalog_file(path), source="seed",
                                 owned_only=owned_only), prefix=f"{path.name}: ")
    for err in total.errors:
        log.warning("catalog: %s", err)
    return total


def ensure_seeded(session: Session, seed_dir: Path = SEED_DIR) -> LoadReport:
    """Bring the shipped seed into the catalog at start-up.

    A first start loads it; after an upgrade, new seed procedures are added and those the
    seed still owns are updated, while imported or edited records stay as they are.
    Unchanged data costs one comparison per record and writes nothing. Processes that
    start together (gateway, action server) may race on a first start: the loser's insert
    fails on the primary key, so it rolls back and compares again against the winner's rows.
    """
    from bot.fees.store import sync_fee_rules

    try:
        report = load_seed(session, seed_dir, owned_only=True)
    except IntegrityError:
        session.rollback()
        report = load_seed(session, seed_dir, owned_only=True)
    try:
        sync_fee_rules(session)
        session.flush()
    except IntegrityError:  # another process re-derived them at the same moment
        session.rollback()
    return report

"""Load catalog YAML files (the shipped seed in data/catalog/) into the database.

Loading is an idempotent upsert by procedure code: re-loading the same file changes nothing,
a changed record replaces the stored one, and a malformed record is reported and skipped
while the others are still loaded.
"""

from __future__ import annotations

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
    FeeRule,
    LegalBasis,
    Procedure,
    Step,
)
from bot.config import ROOT
from bot.text import fold, nfc

log = logging.getLogger(__name__)

SEED_DIR = ROOT / "data" / "catalog"
TIME_UNITS = ("ngày làm việc", "ngày", "giờ", "tháng")


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


def normalize_record(raw: Any) -> dict[str, Any]:
    """Validate one YAML record and return it in canonical form (raises CatalogError)."""
    if not isinstance(raw, dict):
        raise CatalogError(f"bản ghi phải là một mapping, nhận {type(raw).__name__}")
    code = _text(raw.get("code"), "code", required=True)
    where = f"thủ tục {code}"
    rec: dict[str, Any] = {"code": code}
    rec["name"] = _text(raw.get("name"), f"{where}.name", required=True)
    for key in ("short_name", "field", "level", "agency", "authority", "url", "summary",
                "result", "online_howto"):
        rec[key] = _text(raw.get(key), f"{where}.{key}")
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
    return rec


def _snapshot(p: Procedure) -> dict[str, Any]:
    """The stored procedure in the canonical form of `normalize_record`, for change checks."""
    return {
        "code": p.code, "name": p.name, "short_name": p.short_name, "field": p.field,
        "level": p.level, "agency": p.agency, "authority": p.authority, "url": p.url,
        "summary": p.summary, "result": p.result, "online_howto": p.online_howto,
        "channels": [{"channel": c.channel, "time_value": c.time_value, "time_unit": c.time_unit,
                      "time_text": c.time_text, "fee": c.fee, "fee_text": c.fee_text,
                      "note": c.note} for c in p.channels],
        "documents": [{"name": d.name, "copies": d.copies, "case": d.case} for d in p.documents],
        "steps": [s.text for s in p.steps],
        "legal_basis": [{"number": b.number, "title": b.title} for b in p.legal_basis],
        "aliases": sorted((a.alias for a in p.aliases), key=fold),
    }


def _apply(p: Procedure, rec: dict[str, Any], source: str) -> None:
    for key in ("name", "short_name", "field", "level", "agency", "authority", "url", "summary",
                "result", "online_howto"):
        setattr(p, key, rec[key])
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
    basis = "; ".join(filter(None, (b["number"] for b in rec["legal_basis"]))) or None
    p.fee_rules = [
        FeeRule(channel=c["channel"], amount=c["fee"], jurisdiction="national",
                legal_basis=basis, source=source, note=c["note"])
        for c in rec["channels"]
    ]


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
                   owned_only: bool = False) -> LoadReport:
    """Insert or update records by code; bad records are reported and skipped.

    With `owned_only`, an existing record from another source (an import, an operator's
    edit) is kept as it is: the seed never overwrites what someone loaded on purpose.
    """
    report = LoadReport()
    valid: list[dict[str, Any]] = []
    seen: set[str] = set()
    for i, raw in enumerate(records):
        try:
            rec = normalize_record(raw)
        except CatalogError as exc:
            report.rejected += 1
            report.errors.append(f"bản ghi #{i + 1}: {exc}")
            continue
        if rec["code"] in seen:
            report.rejected += 1
            report.errors.append(f"bản ghi #{i + 1}: mã {rec['code']} bị lặp trong cùng tệp")
            continue
        seen.add(rec["code"])
        valid.append(rec)
    stored = _load_existing(session, [rec["code"] for rec in valid])
    for rec in valid:
        existing = stored.get(rec["code"])
        if existing is None:
            p = Procedure(code=rec["code"])
            _apply(p, rec, source)
            session.add(p)
            report.new += 1
            continue
        if owned_only and existing.source != source:
            report.kept += 1
            continue
        wanted = dict(rec, aliases=sorted(rec["aliases"], key=fold))
        if _snapshot(existing) == wanted:
            report.unchanged += 1
        else:
            _apply(existing, rec, source)
            report.updated += 1
    session.flush()
    return report


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
    try:
        return load_seed(session, seed_dir, owned_only=True)
    except IntegrityError:
        session.rollback()
        return load_seed(session, seed_dir, owned_only=True)

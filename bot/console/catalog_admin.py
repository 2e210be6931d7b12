"""Catalog management for operators: find a procedure, edit its aliases, edit a province's
fee overrides, import a portal export. The rules are the catalog's own (bot.catalog,
bot.fees.overrides); this module only adds validation messages for a form and the audit.

An operator's alias edit marks the procedure `source = "console"`: the start-up seed sync
and later imports then leave it alone (bot.catalog.importers.load.CURATED_SOURCES), so the
edit is not silently undone. The search index follows through the catalog revision; the
NLU's phrase matcher learns new aliases at the next training.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, selectinload

from bot.atomic_file import write_atomic
from bot.catalog.models import Alias, Procedure
from bot.catalog.revision import bump_revision
from bot.console.accounts import audit
from bot.fees.overrides import OverrideError, load_file
from bot.text import fold, nfc

MAX_ALIASES = 40
MAX_ALIAS_CHARS = 120
MAX_OVERRIDE_BYTES = 256 * 1024
_WRITE_LOCK = threading.Lock()


class CatalogEditError(ValueError):
    """An edit that cannot be saved; the message (Vietnamese) says every problem."""


@dataclass(frozen=True)
class ProcedureRow:
    code: str
    name: str
    short_name: str | None
    source: str
    aliases: list[str]


def find_procedures(s: Session, query: str, limit: int = 30) -> list[ProcedureRow]:
    """Procedures whose code starts with, or whose name/alias contains, the query."""
    q = fold(query.strip())
    if not q:
        return []
    stmt = (select(Procedure).options(selectinload(Procedure.aliases))
            .where(or_(Procedure.code.startswith(query.strip()),
                       Procedure.name_folded.contains(q),
                       Procedure.aliases.any(Alias.folded.contains(q))))
            .order_by(Procedure.code).limit(limit))
    return [_row(p) for p in s.execute(stmt).scalars()]


def _row(p: Procedure) -> ProcedureRow:
    return ProcedureRow(p.code, p.name, p.short_name, p.source,
                        sorted((a.alias for a in p.aliases), key=fold))


def get_procedure(s: Session, code: str) -> ProcedureRow | None:
    p = s.execute(select(Procedure).options(selectinload(Procedure.aliases))
                  .where(Procedure.code == code)).scalar_one_or_none()
    return _row(p) if p is not None else None


def parse_aliases(text: str) -> list[str]:
    """One alias per line → the clean list; CatalogEditError lists every bad line."""
    out: list[str] = []
    seen: set[str] = set()
    problems: list[str] = []
    for n, line in enumerate(nfc(text).splitlines(), start=1):
        alias = " ".join(line.split())
        if not alias:
            continue
        if len(alias) > MAX_ALIAS_CHARS:
            problems.append(f"dòng {n}: dài quá {MAX_ALIAS_CHARS} ký tự")
            continue
        if len(fold(alias).replace(" ", "")) < 3:
            problems.append(f"dòng {n}: {alias!r} quá ngắn để nhận ra thủ tục")
            continue
        key = fold(alias)
        if key in seen:
            problems.append(f"dòng {n}: {alias!r} trùng với một tên ở trên (không tính dấu)")
            continue
        seen.add(key)
        out.append(alias)
    if len(out) > MAX_ALIASES:
        problems.append(f"tối đa {MAX_ALIASES} tên gọi cho một thủ tục")
    if problems:
        raise CatalogEditError("; ".join(problems))
    return out


def set_aliases(s: Session, code: str, text: str, by: str, address: str | None = None) -> int:
    """Replace a procedure's aliases; returns how many. Audited; bumps the catalog revision."""
    aliases = parse_aliases(text)
    p = s.execute(select(Procedure).options(selectinload(Procedure.aliases))
                  .where(Procedure.code == code)).scalar_one_or_none()
    if p is None:
        raise CatalogEditError(f"không có thủ tục mã {code}")
    before = sorted((a.alias for a in p.aliases), key=fold)
    if before == sorted(aliases, key=fold):
        return len(aliases)
    p.aliases = []
    s.flush()  # the (procedure, folded) unique constraint: old rows go first
    p.aliases = [Alias(alias=a, folded=fold(a)) for a in aliases]
    p.source = "console"
    bump_revision(s)
    audit(s, by, "catalog.aliases", code, {"before": before, "after": aliases}, address)
    return len(aliases)


def override_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.yaml")) if folder.is_dir() else []


def override_path(folder: Path, name: str) -> Path:
    """Only a plain `NN-name.yaml` file directly inside the overrides folder."""
    if not name.endswith(".yaml") or "/" in name or "\\" in name or name.startswith("."):
        raise CatalogEditError("tên tệp phải có dạng 01-ha-noi.yaml")
    return folder / name


def save_override(s: Session, folder: Path, name: str, text: str, by: str,
                  address: str | None = None) -> str:
    """Validate a province's override file with the loader the services use, then write it
    atomically; returns the province code. Nothing is written when anything is wrong."""
    path = override_path(folder, name)
    data = nfc(text).replace("\r\n", "\n")
    if len(data.encode()) > MAX_OVERRIDE_BYTES:
        raise CatalogEditError("tệp quá lớn")
    found: list[str] = []

    def check(written: Path) -> None:
        """The file as the services will read it: valid, and the only one of its province."""
        try:
            code, _ = load_file(written)
        except OverrideError as exc:
            raise CatalogEditError(str(exc).replace(written.name, name)) from exc
        others: dict[str, str] = {}
        for other in override_files(folder):
            if other.name == name or other.name.startswith("."):
                continue
            try:
                others[load_file(other)[0]] = other.name
            except OverrideError:
                continue  # a broken neighbour is reported by `bot fees check`, not here
        if code in others:
            raise CatalogEditError(f"tỉnh {code} đã có tệp {others[code]} (mỗi tỉnh một tệp)")
        found.append(code)

    with _WRITE_LOCK:
        old = path.read_text(encoding="utf-8") if path.exists() else ""
        write_atomic(path, data, check)
    code = found[0]
    audit(s, by, "fees.override", name, {
        "province": code, "before_sha256": hashlib.sha256(old.encode()).hexdigest()[:16],
        "after_sha256": hashlib.sha256(data.encode()).hexdigest()[:16]}, address)
    return code

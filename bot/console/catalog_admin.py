"""Catalog management for operators: find a procedure, edit its aliases, edit a province's
fee overrides, import a portal export. The rules are the catalog's own (bot.catalog,
bot.fees.overrides); this module only adds validation messages for a form and the audit.

A fee override edit is stored in the database (bot.fees.stored), where the action servers
and every gateway read it; the shipped files in FEE_OVERRIDES_DIR stay the base.

An operator's alias edit marks the procedure `source = "console"`: the start-up seed sync
and later imports then leave it alone (bot.catalog.importers.load.CURATED_SOURCES), so the
edit is not silently undone. The search index follows through the catalog revision; the
NLU's phrase matcher learns new aliases at the next training.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from bot.catalog.models import Alias, Procedure
from bot.catalog.revision import bump_revision
from bot.console.accounts import audit
from bot.fees.overrides import (
    OverrideError,
    load_source,
    load_text,
    override_files,
    override_sources,
)
from bot.fees.stored import save_text, stored_text, stored_texts
from bot.text import fold, nfc

MAX_ALIASES = 40
MAX_ALIAS_CHARS = 120
MAX_OVERRIDE_BYTES = 256 * 1024


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


def override_names(s: Session, folder: Path) -> list[str]:
    """Every province file an operator can open: the shipped ones and the saved ones."""
    return sorted({p.name for p in override_files(folder)} | set(stored_texts(s)))


def override_path(folder: Path, name: str) -> Path:
    """Only a plain `NN-name.yaml` file directly inside the overrides folder."""
    if not name.endswith(".yaml") or "/" in name or "\\" in name or name.startswith("."):
        raise CatalogEditError("tên tệp phải có dạng 01-ha-noi.yaml")
    return folder / name


def override_text(s: Session, folder: Path, name: str) -> str:
    """What the services use for `name`: the saved edit, else the shipped file ('' if none)."""
    path = override_path(folder, name)
    saved = stored_text(s, name)
    if saved is not None:
        return saved
    return path.read_text(encoding="utf-8") if path.is_file() else ""


def _too_large(data: str) -> str | None:
    """The operator's message for a file over MAX_OVERRIDE_BYTES, None when it fits."""
    size = len(data.encode())
    if size <= MAX_OVERRIDE_BYTES:
        return None
    return (f"tệp dài {(size + 1023) // 1024} KB, quá giới hạn {MAX_OVERRIDE_BYTES // 1024} KB "
            "của một tệp: hãy rút gọn (bỏ bớt chú thích, gộp các quy định giống nhau) rồi "
            "lưu lại; nội dung bạn gõ vẫn ở dưới đây")


def _province_owners(s: Session, folder: Path, skip: str) -> dict[str, str]:
    """Province code → the other file (shipped or saved) that holds its rules."""
    owners: dict[str, str] = {}
    for name, source in override_sources(folder, stored_texts(s)).items():
        if name == skip:
            continue
        try:
            code = load_source(name, source)[0]
        except OverrideError:
            continue  # a broken neighbour is reported by `bot fees check`, not here
        owners.setdefault(code, name)
    return owners


def save_override(s: Session, folder: Path, name: str, text: str, by: str,
                  address: str | None = None) -> str:
    """Validate a province's override with the loader the services use, then store it in
    the database (every replica reads it there; `bot fees export` writes the files for
    review); returns the province code. Nothing is stored when anything is wrong."""
    override_path(folder, name)
    data = nfc(text).replace("\r\n", "\n")
    problem = _too_large(data)
    if problem:
        raise CatalogEditError(problem)
    try:
        code, _ = load_text(name, data)
    except OverrideError as exc:
        raise CatalogEditError(str(exc)) from exc
    owner = _province_owners(s, folder, name).get(code)
    if owner is not None:
        raise CatalogEditError(f"tỉnh {code} đã có tệp {owner} (mỗi tỉnh một tệp)")
    old = override_text(s, folder, name)
    try:
        with s.begin_nested():
            save_text(s, name, code, data, by)
    except IntegrityError as exc:  # another operator saved this province under another name
        raise CatalogEditError(f"tỉnh {code} vừa được lưu ở một tệp khác "
                               "(mỗi tỉnh một tệp)") from exc
    audit(s, by, "fees.override", name, {
        "province": code, "before_sha256": hashlib.sha256(old.encode()).hexdigest()[:16],
        "after_sha256": hashlib.sha256(data.encode()).hexdigest()[:16]}, address)
    return code

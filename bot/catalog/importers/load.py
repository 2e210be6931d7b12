"""`bot catalog import`: detect a file's shape, parse it and upsert it in batches.

Every line or row is parsed on its own, so one malformed record is reported with its line
number and skipped while the rest are imported. Batches are committed as they go: what was
accepted stays accepted even if a later batch or the process fails.
"""

from __future__ import annotations

import gzip
import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from bot.catalog.importers import bqp, crawl, portal_list
from bot.catalog.seed import CatalogError, LoadReport, read_catalog_file, upsert_records

log = logging.getLogger(__name__)

BATCH = 200
SUPPORTED = (".jsonl", ".jsonl.gz", ".json", ".xlsx", ".yaml", ".yml")
Item = tuple[str, "dict[str, Any] | CatalogError"]


@dataclass(frozen=True)
class Shape:
    """What a file holds and how its records are merged into the catalog."""

    kind: str  # crawl | bqp | portal-list | catalog-yaml
    source: str  # the source tag stored on the procedures it creates
    partial: bool  # records carry only some fields (merged, never blanking others)


SHAPES = {
    "crawl": Shape("crawl", crawl.SOURCE, False),
    "bqp": Shape("bqp", bqp.SOURCE, False),
    "portal-list": Shape("portal-list", portal_list.SOURCE, True),
    "catalog-yaml": Shape("catalog-yaml", "import-yaml", False),
}
JSON_SHAPES = (("crawl", crawl), ("bqp", bqp))


def _open_text(path: Path):  # noqa: ANN202 - a text stream
    if path.suffix.lower() == ".gz":
        return gzip.open(path, "rt", encoding="utf-8")
    return path.open(encoding="utf-8")


def _json_lines(path: Path) -> Iterator[tuple[int, Any]]:
    """(line number, decoded object or the decoding error) for every non-blank line."""
    try:
        with _open_text(path) as f:
            for n, line in enumerate(f, start=1):
                if line.strip():
                    try:
                        yield n, json.loads(line)
                    except json.JSONDecodeError as exc:
                        yield n, CatalogError(
                            f"không phải JSON hợp lệ ({exc.msg}, cột {exc.colno})")
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise CatalogError(f"{path.name}: không đọc được tệp ({exc})") from exc


def detect(path: Path) -> Shape:
    """The shape of a file, from its content; CatalogError says why it cannot be read."""
    if not path.is_file():
        raise CatalogError(f"{path}: không có tệp này")
    if portal_list.looks_like(path):
        return SHAPES["portal-list"]
    name = path.name.lower()
    if name.endswith((".yaml", ".yml")):
        return SHAPES["catalog-yaml"]
    for _, obj in _json_lines(path):
        if isinstance(obj, CatalogError):
            continue
        for kind, module in JSON_SHAPES:
            if module.looks_like(obj):
                return SHAPES[kind]
        keys = ", ".join(sorted(obj)[:8]) if isinstance(obj, dict) else type(obj).__name__
        raise CatalogError(
            f"{path.name}: không nhận ra dạng dữ liệu (dòng đầu có: {keys}); hỗ trợ: bản thu "
            "thập Cổng DVCQG (ma_thu_tuc, ten_thu_tuc…), bản xuất Bộ Quốc phòng (metadata, "
            "tables), danh sách TTHC .xlsx của Cổng, và tệp YAML danh mục")
    raise CatalogError(f"{path.name}: tệp rỗng hoặc không có dòng JSON nào đọc được "
                       f"(hỗ trợ {', '.join(SUPPORTED)})")


def _parsed(obj: Any, parse: Callable[[Any], dict[str, Any]], kind: str,
            looks_like: Callable[[Any], bool]) -> dict[str, Any] | CatalogError:
    if isinstance(obj, CatalogError):
        return obj
    if not looks_like(obj):
        return CatalogError(f"không đúng dạng {kind} như các dòng khác")
    try:
        return parse(obj)
    except CatalogError as exc:
        return exc
    except Exception as exc:  # a parser bug on one odd record must not stop the import
        log.exception("parser failed")
        return CatalogError(f"không phân tích được bản ghi ({type(exc).__name__}: {exc})")


def read_items(path: Path, shape: Shape) -> Iterator[Item]:
    """(label, canonical record or why it was rejected) for every record of the file."""
    if shape.kind == "portal-list":
        yield from portal_list.read_rows(path)
        return
    if shape.kind == "catalog-yaml":
        for i, raw in enumerate(read_catalog_file(path), start=1):
            yield f"bản ghi #{i}", raw
        return
    module = crawl if shape.kind == "crawl" else bqp
    for n, obj in _json_lines(path):
        yield f"dòng {n}", _parsed(obj, module.parse_record, shape.kind, module.looks_like)


def count_items(path: Path, shape: Shape) -> int | None:
    """How many records to expect, for the progress bar (cheap line count; None if unknown)."""
    if shape.kind not in {"crawl", "bqp"}:
        return None
    with _open_text(path) as f:
        return sum(1 for line in f if line.strip())


# Records someone curated on purpose: the shipped seed, and procedures an operator edited in
# the console. An import leaves them alone unless told to replace curated records.
CURATED_SOURCES = frozenset({"seed", "console"})


def import_file(session: Session, path: Path, keep_curated: bool = True,
                progress: bool = True) -> tuple[Shape, LoadReport]:
    """Import one file in committed batches; returns its shape and what happened."""
    from tqdm import tqdm

    shape = detect(path)
    keep = CURATED_SOURCES if keep_curated else frozenset()
    report = LoadReport()
    seen: set[str] = set()  # codes of earlier batches: a repeat is rejected by the upsert
    batch: list[dict[str, Any]] = []
    labels: list[str] = []

    def flush() -> None:
        if batch:
            report.add(upsert_records(session, batch, source=shape.source, partial=shape.partial,
                                      keep_sources=keep, labels=labels, seen=seen))
            session.commit()
            batch.clear()
            labels.clear()

    bar = tqdm(total=count_items(path, shape) if progress else None, desc=path.name,
               unit=" thủ tục", disable=not progress, leave=False)
    try:
        for label, item in read_items(path, shape):
            bar.update(1)
            if isinstance(item, CatalogError):
                report.rejected += 1
                report.errors.append(f"{label}: {item}")
                continue
            batch.append(item)
            labels.append(label)
            if len(batch) >= BATCH:
                flush()
        flush()
    finally:
        bar.close()
    return shape, report


def parse_files(paths: list[Path], keep_curated: bool = True) -> list[dict[str, Any]]:
    """Canonical records of export files without a database, as an import would store them.

    Later files win for the same code; with `keep_curated` the shipped seed wins over all,
    as `bot catalog import` keeps it. Rejected records are left out.
    """
    from bot.catalog.seed import SEED_DIR

    records: dict[str, dict[str, Any]] = {}
    for path in expand_paths(paths):
        shape = detect(path)
        for _, item in read_items(path, shape):
            if isinstance(item, dict) and not shape.partial:
                records[str(item["code"])] = item
    if keep_curated:
        for seed_file in sorted(SEED_DIR.glob("*.yaml")):
            for raw in read_catalog_file(seed_file):
                if isinstance(raw, dict) and raw.get("code"):
                    records[str(raw["code"])] = raw
    return list(records.values())


def expand_paths(paths: list[Path]) -> list[Path]:
    """Files as given, and the supported files inside any folder given."""
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            out.extend(sorted(f for f in p.iterdir()
                              if f.is_file() and f.name.lower().endswith(SUPPORTED)))
        else:
            out.append(p)
    return out

"""The national catalog shipped in data/dvcqg/, loaded on a first start.

A fresh `make run` should answer from the whole national catalog, not from the 81 curated
seed procedures alone. The shipped snapshot is the portal's own exports (public government
information, see data/dvcqg/README.md): the crawl of June 2026, the Ministry of Defence
export and the portal's lists. They are imported with the same importers as `bot catalog
import` (the curated seed stays on top), once: a marker in `catalog_counters` records the
snapshot's fingerprint, so later starts cost one query, and a new snapshot (an upgrade) is
imported again (an idempotent upsert: unchanged records are not touched).
"""

from __future__ import annotations

import hashlib
import logging
import sys
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.catalog.db import session_scope
from bot.catalog.models import CatalogCounter
from bot.catalog.seed import CatalogError, LoadReport, ensure_seeded
from bot.config import Settings

log = logging.getLogger(__name__)

MARKER = "snapshot:"  # + the first 16 hex digits of the fingerprint (key is String(64))


def snapshot_files(folder: Path) -> list[Path]:
    """The export files of a snapshot folder, in import order (full records, then lists)."""
    from bot.catalog.importers.load import expand_paths

    if not folder.is_dir():
        return []
    full = sorted(folder.glob("procedures_*.jsonl.gz")) + sorted(folder.glob("procedures_*.jsonl"))
    lists = folder / "portal_lists"
    return full + (expand_paths([lists]) if lists.is_dir() else [])


def fingerprint(files: list[Path]) -> str:
    """A hash of the files' names and contents (a few MB: well under a second)."""
    h = hashlib.sha256()
    for path in files:
        h.update(path.name.encode() + b"\0")
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def loaded_marker(session: Session, digest: str) -> bool:
    key = MARKER + digest
    return session.execute(
        select(CatalogCounter.key).where(CatalogCounter.key == key)).first() is not None


def load_snapshot(session: Session, folder: Path, progress: bool | None = None) -> LoadReport:
    """Import the snapshot in `folder` unless this very snapshot was imported before.

    Returns what the import did (all zero when it was already loaded). A file that cannot
    be read is reported and skipped; the marker is written only when every file imported,
    so a failed first start is retried on the next.
    """
    from bot.catalog.importers.load import import_file

    files = snapshot_files(folder)
    total = LoadReport()
    if not files:
        return total
    digest = fingerprint(files)
    if loaded_marker(session, digest):
        return total
    ensure_seeded(session)  # the curated seed first, so the import leaves it alone
    session.commit()
    show = sys.stderr.isatty() if progress is None else progress
    if show:
        print(f"Nạp danh mục thủ tục quốc gia từ {folder} (lần đầu khởi động, khoảng một "
              "phút)...", file=sys.stderr)
    failed = False
    for path in files:
        try:
            _, report = import_file(session, path, progress=show)
        except CatalogError as exc:
            session.rollback()
            log.error("snapshot file %s: %s", path.name, exc)
            total.errors.append(f"{path.name}: {exc}")
            failed = True
            continue
        total.add(report, prefix=f"{path.name}: ")
    if not failed:
        session.add(CatalogCounter(key=MARKER + digest, number=1))
        session.commit()
    return total


def prepare_catalog(settings: Settings) -> None:
    """The curated seed, then (first start, or a new snapshot) the shipped national catalog.

    What `bot run`, `bot train`, `bot shell` and the deployments' migration step
    (`bot db upgrade --catalog`) do before anything reads the catalog; a summary of what
    changed goes to stderr.
    """
    with session_scope(settings.database_url) as s:
        report = ensure_seeded(s)
    if report.changed or report.rejected:
        print(f"Danh mục thủ tục: {report.summary()}", file=sys.stderr)
    folder = settings.catalog_snapshot_dir
    if folder is None:
        return
    with session_scope(settings.database_url) as s:
        loaded = load_snapshot(s, folder)
    if loaded.changed or loaded.errors:
        print(f"Danh mục quốc gia ({folder.name}): {loaded.summary()}", file=sys.stderr)
        for err in loaded.errors[:5]:
            print(f"  {err}", file=sys.stderr)

"""The national catalog shipped in data/dvcqg/ is imported once, on a first start."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

from bot.catalog.db import session_scope
from bot.catalog.models import Procedure
from bot.catalog.snapshot import load_snapshot, prepare_catalog, snapshot_files
from bot.cli import main
from bot.config import ROOT, Settings

SHIPPED = ROOT / "data" / "dvcqg"


def small_snapshot(folder: Path, lines: int = 6) -> list[str]:
    """A snapshot folder with the first lines of the shipped crawl; returns their codes."""
    import json

    folder.mkdir(parents=True, exist_ok=True)
    codes = []
    with gzip.open(SHIPPED / "procedures_2026-06.jsonl.gz", "rt", encoding="utf-8") as src, \
            gzip.open(folder / "procedures_small.jsonl.gz", "wt", encoding="utf-8") as dst:
        for _, line in zip(range(lines), src, strict=False):
            dst.write(line)
            codes.append(json.loads(line)["ma_thu_tuc"])
    return codes


def test_the_shipped_snapshot_holds_the_national_exports() -> None:
    files = snapshot_files(SHIPPED)
    names = [f.name for f in files]
    assert names[:2] == ["procedures_2026-06.jsonl.gz", "procedures_bqp_207.jsonl.gz"]
    assert sum(n.endswith(".xlsx") for n in names) == 7
    assert (SHIPPED / "README.md").exists()  # the attribution to the portal


def test_loaded_once_then_only_a_new_snapshot_is_loaded(tmp_path: Path, db_url: str) -> None:
    folder = tmp_path / "snap"
    codes = small_snapshot(folder)
    with session_scope(db_url) as s:
        first = load_snapshot(s, folder, progress=False)
    assert first.new >= 1 and not first.errors
    with session_scope(db_url) as s:
        stored = {p.code for p in s.query(Procedure)}
        assert set(codes) <= stored
        again = load_snapshot(s, folder, progress=False)
    assert (again.new, again.updated, again.unchanged) == (0, 0, 0)  # not even read
    small_snapshot(folder, lines=9)  # an upgrade ships a bigger snapshot
    with session_scope(db_url) as s:
        upgrade = load_snapshot(s, folder, progress=False)
    assert upgrade.new >= 1 and upgrade.unchanged >= 1


def test_a_broken_file_is_reported_and_retried_next_start(tmp_path: Path, db_url: str) -> None:
    folder = tmp_path / "snap"
    small_snapshot(folder)
    (folder / "procedures_zz.jsonl.gz").write_bytes(b"not gzip at all")
    with session_scope(db_url) as s:
        report = load_snapshot(s, folder, progress=False)
    assert report.errors and "procedures_zz" in report.errors[0]
    assert report.new >= 1  # the good file still loaded
    (folder / "procedures_zz.jsonl.gz").unlink()
    shutil.copy(folder / "procedures_small.jsonl.gz", folder / "procedures_zz.jsonl.gz")
    with session_scope(db_url) as s:
        retried = load_snapshot(s, folder, progress=False)
    assert not retried.errors and retried.unchanged >= 1


def test_first_start_loads_the_configured_snapshot(tmp_path: Path, db_url: str) -> None:
    """What `bot run` and `bot train` do before anything else (blank: the seed alone)."""
    folder = tmp_path / "snap"
    codes = small_snapshot(folder, lines=3)
    prepare_catalog(Settings.from_env({"DATABASE_URL": db_url, "CATALOG_SNAPSHOT": ""}))
    with session_scope(db_url) as s:
        assert not {p.code for p in s.query(Procedure)} & set(codes)
    prepare_catalog(Settings.from_env({"DATABASE_URL": db_url, "CATALOG_SNAPSHOT": str(folder)}))
    with session_scope(db_url) as s:
        assert set(codes) <= {p.code for p in s.query(Procedure)}


def test_db_upgrade_with_catalog_loads_the_snapshot(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    """The deployments' migration step (compose `migrate`, the Kubernetes Job): their
    services never run `bot run`, so `bot db upgrade --catalog` imports the catalog."""
    url = f"sqlite:///{tmp_path / 'deploy.sqlite3'}"
    folder = tmp_path / "snap"
    codes = small_snapshot(folder, lines=3)
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("CATALOG_SNAPSHOT", str(folder))
    assert main(["db", "upgrade"]) == 0
    with session_scope(url) as s:
        assert not {p.code for p in s.query(Procedure)} & set(codes)
    assert main(["db", "upgrade", "--catalog"]) == 0
    with session_scope(url) as s:
        assert set(codes) <= {p.code for p in s.query(Procedure)}

"""The shared portal exports that tests read by path (never copied into the repository)."""

from __future__ import annotations

import gzip
import json
from functools import cache
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "dvcqg"
CRAWL = DATA / "procedures_2026-06.jsonl.gz"
BQP = DATA / "procedures_bqp_207.jsonl.gz"
LISTS = DATA / "portal_lists"


@cache
def export_lines(path: Path) -> tuple[str, ...]:
    """Every non-blank line of a gzip JSON-lines export, as text (read once per session)."""
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return tuple(line.rstrip("\n") for line in f if line.strip())


@cache
def export_records(path: Path) -> tuple[dict[str, Any], ...]:
    """Every record of a gzip JSON-lines export, decoded."""
    return tuple(json.loads(line) for line in export_lines(path))

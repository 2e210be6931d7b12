"""Reading evaluation files: one JSON object per line, errors named by file and line.

`bot evaluate` (intents and resolution) and `bot eval search` (retrieval) read the same
kind of file; both report a bad line the same way instead of a traceback.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any


class JsonlError(ValueError):
    """A JSON-lines file that cannot be used; the message names the file and the line."""


def read_objects(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for every non-blank line; JsonlError at the first bad one."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise JsonlError(f"không đọc được {path}: {exc}") from exc
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise JsonlError(f"{path.name} dòng {n}: không phải JSON ({exc.msg})") from exc
        if not isinstance(obj, dict):
            raise JsonlError(f"{path.name} dòng {n}: cần một object JSON")
        yield n, obj

"""Replace a file so that readers see the old content or the new, never half of it.

Operators edit files the running services read (NLU corrections, fee overrides): a crash or
a refused edit must leave the previous file intact. One writer for both, so the temp-file,
fsync and clean-up rules live in one place.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def write_atomic(path: Path, content: str,
                 check: Callable[[Path], None] | None = None) -> None:
    """Write `content` (UTF-8) to a temp file beside `path`, let `check(temp)` refuse it by
    raising, then put it in place with `os.replace`; on any failure the temp file is removed
    and `path` is untouched. The temp name starts with a dot: folder scans skip it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(content)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o644)
        if check is not None:
            check(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise

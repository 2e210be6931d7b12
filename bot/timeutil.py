"""Time helpers every layer shares (a leaf module: it imports nothing of ours)."""

from __future__ import annotations

from datetime import datetime, timezone


def utcnow() -> datetime:
    """Naive UTC: the convention of every DateTime column of our database (timezone-less on
    SQLite and PostgreSQL alike)."""
    return datetime.now(timezone.utc).replace(tzinfo=None)

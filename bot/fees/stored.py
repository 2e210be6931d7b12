"""Fee overrides kept in the database: what the console saves, what every replica reads.

Readers cache the parsed rules (bot.fees.service.LiveFeeBook); a save bumps the counter
`fee_overrides` in the same transaction, so a reader looks at one integer per check instead
of re-reading every row (as the catalog's search index does with its revision).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.atomic_file import write_atomic
from bot.catalog.revision import bump_counter, get_counter
from bot.fees.models import FeeOverride
from bot.timeutil import utcnow

COUNTER = "fee_overrides"


def stored_revision(session: Session) -> int:
    """Grows with every saved override (0: none saved yet)."""
    return get_counter(session, COUNTER) or 0


def stored_texts(session: Session) -> dict[str, str]:
    """The saved overrides, file name → YAML text."""
    return {name: content for name, content in
            session.execute(select(FeeOverride.name, FeeOverride.content))}


def stored_text(session: Session, name: str) -> str | None:
    row = session.get(FeeOverride, name)
    return row.content if row is not None else None


def read_stored(database_url: str) -> dict[str, str]:
    """`stored_texts` in a session of its own (a reader reloading its rules). A reader
    reads `read_revision` before this, so a save made in between is seen again at its
    next check rather than missed."""
    from bot.catalog.db import session_scope

    with session_scope(database_url) as s:
        return stored_texts(s)


def read_revision(database_url: str) -> int:
    from bot.catalog.db import session_scope

    with session_scope(database_url) as s:
        return stored_revision(s)


def save_text(session: Session, name: str, province: str, text: str, by: str) -> str:
    """Insert or replace one override (already validated) in the caller's transaction;
    returns the text it replaced ('' if none)."""
    row = session.get(FeeOverride, name)
    old = row.content if row is not None else ""
    now = utcnow()
    digest = hashlib.sha256(text.encode()).hexdigest()
    if row is None:
        session.add(FeeOverride(name=name, province=province, content=text, sha256=digest,
                                updated_by=by[:64], updated_at=now))
    else:
        row.province, row.content, row.sha256 = province, text, digest
        row.updated_by, row.updated_at = by[:64], now
    session.flush()  # the one-file-per-province constraint, before the counter moves
    bump_counter(session, COUNTER)
    return old


def export(session: Session, folder: Path) -> list[Path]:
    """Write every saved override into `folder` as its file (what reviewers commit)."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in sorted(stored_texts(session).items()):
        path = folder / name
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            write_atomic(path, text)
            written.append(path)
    return written

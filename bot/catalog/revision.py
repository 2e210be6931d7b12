"""The catalog's revision number: bumped by every load that changed something.

Search indexes live in the memory of long-running processes (gateway, action server) and
are expensive to rebuild over thousands of procedures, so they check this one integer
instead of re-reading the catalog to find out whether an operator imported new data.
"""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.catalog.models import CatalogCounter

KEY = "revision"


def catalog_revision(session: Session) -> int:
    """The current revision (0 for a catalog no load has changed yet)."""
    number = session.execute(
        select(CatalogCounter.number).where(CatalogCounter.key == KEY)
    ).scalar_one_or_none()
    return int(number or 0)


def bump_revision(session: Session) -> None:
    """Add one to the revision inside the caller's transaction (atomic UPDATE)."""
    bump_counter(session, KEY)


def bump_counter(session: Session, key: str) -> None:
    """Add one to a named counter inside the caller's transaction (atomic UPDATE): how
    readers that cache something (the catalog index, the fee overrides) learn of a change."""
    result = session.execute(
        update(CatalogCounter).where(CatalogCounter.key == key)
        .values(number=CatalogCounter.number + 1)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount:
        return
    try:
        with session.begin_nested():
            session.add(CatalogCounter(key=key, number=1))
    except IntegrityError:  # another process created the row first
        session.execute(
            update(CatalogCounter).where(CatalogCounter.key == key)
            .values(number=CatalogCounter.number + 1)
            .execution_options(synchronize_session=False)
        )


def get_counter(session: Session, key: str) -> int | None:
    """Another named counter (e.g. the version of derived fee rules), None when unset."""
    number = session.execute(
        select(CatalogCounter.number).where(CatalogCounter.key == key)
    ).scalar_one_or_none()
    return None if number is None else int(number)


def set_counter(session: Session, key: str, value: int) -> None:
    """Set a named counter inside the caller's transaction."""
    row = session.get(CatalogCounter, key)
    if row is None:
        session.add(CatalogCounter(key=key, number=value))
    else:
        row.number = value

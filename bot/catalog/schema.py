"""Bring an existing catalog database up to the current model: add columns that are new.

The catalog only ever gains nullable columns between releases, so `create_all` plus
`ADD COLUMN` for what is missing keeps an operator's imported data across upgrades without
a migration framework. A change that is not purely additive must come with a real
migration (Alembic) instead of growing this module.
"""

from __future__ import annotations

import logging

from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine

from bot.catalog.models import Base


def _register_tables() -> None:
    """Import the packages that keep their own tables on the shared Base, for create_all."""
    import bot.console.inbox_models  # noqa: F401
    import bot.console.models  # noqa: F401
    import bot.handover.models  # noqa: F401
    import bot.registry.models  # noqa: F401

log = logging.getLogger(__name__)


def missing_columns(engine: Engine) -> list[tuple[str, str, str]]:
    """(table, column, SQL type) of model columns the database does not have yet."""
    insp = inspect(engine)
    out = []
    for table in Base.metadata.sorted_tables:
        if not insp.has_table(table.name):
            continue
        present = {c["name"] for c in insp.get_columns(table.name)}
        for col in table.columns:
            if col.name not in present:
                if not col.nullable or col.primary_key:
                    raise RuntimeError(
                        f"cột {table.name}.{col.name} mới nhưng không nullable: cần migration")
                out.append((table.name, col.name, col.type.compile(dialect=engine.dialect)))
    return out


def upgrade(engine: Engine) -> list[str]:
    """Create missing tables and add missing nullable columns; returns what was added."""
    _register_tables()
    Base.metadata.create_all(engine)
    added = []
    missing = missing_columns(engine)
    if missing:
        with engine.begin() as conn:
            for table, column, sqltype in missing:
                conn.execute(text(f'ALTER TABLE {table} ADD COLUMN "{column}" {sqltype}'))
                added.append(f"{table}.{column}")
        log.info("catalog schema: added columns %s", ", ".join(added))
    return added

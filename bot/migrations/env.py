"""Alembic's environment for our tables (see bot/migrations/__init__.py).

Run by `bot.catalog.schema.upgrade` (on every process start and by `bot db upgrade`) and by
`bot.migrations.new_revision`, never through a top-level alembic.ini: the configuration is
built in code (`bot.migrations.alembic_config`). The caller normally passes its connection in
`config.attributes["connection"]` (Alembic's recipe for sharing a connection), already in a
transaction that the caller commits after it took the migration lock; Alembic then neither
begins nor ends a transaction itself.
"""

from __future__ import annotations

from typing import Any

from alembic import context
from alembic.runtime.migration import MigrationContext, MigrationInfo
from sqlalchemy import create_engine
from sqlalchemy.engine import Connection
from sqlalchemy.engine.url import make_url
from sqlalchemy.pool import NullPool

from bot.catalog.schema import target_metadata
from bot.migrations import include_name

config = context.config


def _record(ctx: MigrationContext, step: MigrationInfo, heads: set, run_args: dict) -> None:
    """`on_version_apply`: note each applied step for the caller's list of changes."""
    verb = "stamp" if step.is_stamp else ("upgrade" if step.is_upgrade else "downgrade")
    target = ", ".join(step.up_revision_ids if step.is_upgrade else step.down_revision_ids)
    doc = step.up_revision.doc if step.is_upgrade and step.up_revision is not None else ""
    config.attributes.setdefault("applied", []).append(
        f"{verb} {target or 'base'}" + (f" ({doc})" if doc else ""))


def _options(dialect_name: str) -> dict[str, Any]:
    return {
        "target_metadata": target_metadata(),
        "include_name": include_name,
        # SQLite cannot ALTER most things: autogenerate writes batch operations for it
        # (copy the table, move the rows), which are plain ALTERs on PostgreSQL.
        "render_as_batch": dialect_name == "sqlite",
        "compare_type": True,
        "on_version_apply": _record,
    }


def run_migrations_offline() -> None:
    """`--sql` mode: write the SQL instead of running it (for a DBA to review)."""
    url = config.get_main_option("sqlalchemy.url")
    context.configure(url=url, literal_binds=True, dialect_opts={"paramstyle": "named"},
                      **_options(make_url(url).get_backend_name()))
    with context.begin_transaction():
        context.run_migrations()


def _run(connection: Connection) -> None:
    context.configure(connection=connection, **_options(connection.dialect.name))
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = create_engine(config.get_main_option("sqlalchemy.url"), future=True,
                           poolclass=NullPool)
    try:
        with engine.connect() as connection:
            _run(connection)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()

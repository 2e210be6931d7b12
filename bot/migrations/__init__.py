"""Alembic migrations of our own tables: every table on `bot.catalog.models.Base`.

The environment ships inside the package (this folder: `env.py`, `script.py.mako`,
`versions/`) and is configured in code (`alembic_config`), so an installed release can
migrate its database without an alembic.ini or the checkout.

Who runs the migrations:

* every process, when it opens the database (`bot.catalog.db.get_engine` calls
  `bot.catalog.schema.upgrade`): a database already at head costs one query; an empty one is
  created, one made by a release before migrations is adopted, an older one upgraded. This
  keeps the single-host profile (one SQLite file) working with no extra step.
* operators, before rolling out a release in the scaled-out profile (several gateways and
  action servers on one PostgreSQL): `bot db upgrade` (`upgrade_to_head`) migrates once,
  from one place, where it can be watched and, if it fails, fixed before any new process
  starts; the new processes then find the database at head. Processes of the previous
  release that are still running (or restart) keep working: a revision they do not know is
  reported, not "fixed" (see `bot.catalog.schema.upgrade`), so migrations must stay
  compatible with the release before them (add first, remove a release later).
  `bot db current` (`current`) and `bot db heads` (`heads`) show where the database and the
  code are.

Rasa's tracker store keeps its `events` table in the same database. It is Rasa's, not ours:
migrations never create, alter or drop it, and autogenerate does not see it
(`FOREIGN_TABLES`, `include_name`).

Changing a model therefore needs a migration: `new_revision("what changed")` writes one in
`versions/` from the difference between the models and a scratch database at head
(review it, then run ruff). tests/test_migrations.py fails while models and migrations
differ, on SQLite and on PostgreSQL. A migration must run on both; SQLite's ALTER TABLE is
limited, which is why the environment renders `batch_alter_table` operations for it.
"""

from __future__ import annotations

import functools
import logging
import tempfile
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import create_engine
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.engine.url import make_url
from sqlalchemy.pool import NullPool

HERE = Path(__file__).resolve().parent

# The revision that holds the whole schema as it was when migrations were introduced; a
# database made by `create_all` before that is brought up to it and stamped with it.
BASELINE = "3c6f1d2a9b0e"

# Tables in our database that belong to someone else: Rasa's SQLTrackerStore (`events`).
FOREIGN_TABLES = frozenset({"events"})


class _QuietStart(logging.Filter):
    """Drop the lines Alembic logs at INFO whenever it looks at a database ("Context impl
    SQLiteImpl.", "Will assume non-transactional DDL."): every process checks the revision
    when it starts. "Running upgrade …" stays."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(("Context impl", "Will assume"))


logging.getLogger("alembic.runtime.migration").addFilter(_QuietStart())


def include_name(name: str | None, type_: str, parent_names: dict) -> bool:
    """Alembic's `include_name` hook: autogenerate never reflects a foreign table."""
    return not (type_ == "table" and name in FOREIGN_TABLES)


def _ini_value(value: str) -> str:
    """Alembic's Config is a ConfigParser: a literal `%` (in a password) is written `%%`."""
    return value.replace("%", "%%")


def alembic_config(url: str | None = None, connection: Connection | None = None) -> Config:
    """Alembic's configuration for our environment, without an .ini file.

    Given a connection, env.py runs on it (Alembic's recipe for sharing a connection,
    `config.attributes["connection"]`) inside the caller's transaction; the URL is then the
    connection's. Without one, env.py connects to `url` itself.
    """
    cfg = Config()
    cfg.set_main_option("script_location", _ini_value(str(HERE)))
    cfg.set_main_option("path_separator", "os")
    if connection is not None:
        cfg.attributes["connection"] = connection
        if url is None:
            url = connection.engine.url.render_as_string(hide_password=False)
    if url is not None:
        cfg.set_main_option("sqlalchemy.url", _ini_value(url))
    return cfg


@functools.lru_cache(maxsize=1)
def script_directory() -> ScriptDirectory:
    """The revisions shipped with this release (read once per process)."""
    return ScriptDirectory.from_config(alembic_config())


def heads() -> list[str]:
    """The head revision(s) of this release: one, unless two branches each added a revision
    and nobody merged them (`alembic merge`); tests/test_migrations.py checks there is one."""
    return list(script_directory().get_heads())


def head() -> str:
    """The one head revision; raises if the history has several (merge them first)."""
    found = script_directory().get_current_head()
    if found is None:
        raise RuntimeError("bot/migrations/versions has no revision")
    return found


def known(revision: str) -> bool:
    """Whether this release has `revision` (a newer release's is unknown to it)."""
    try:
        return script_directory().get_revision(revision) is not None
    except CommandError:
        return False


def current_revision(connection: Connection) -> str | None:
    """The database's revision (None: never migrated) as stored in `alembic_version`."""
    return MigrationContext.configure(connection).get_current_revision()


def _engine(url: str) -> Engine:
    """A one-off engine for a command: no pool to keep, nothing else run on connect."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    return create_engine(url, future=True, poolclass=NullPool)


def current(url: str) -> str | None:
    """The database's revision, without changing anything (`bot db current`).

    Does not go through `get_engine`, which would upgrade the database first.
    """
    engine = _engine(url)
    try:
        with engine.connect() as conn:
            return current_revision(conn)
    finally:
        engine.dispose()


def upgrade_to_head(url: str) -> list[str]:
    """Migrate the database at `url` to head and say what changed (`bot db upgrade`).

    What every process does on start (`bot.catalog.schema.upgrade`), run once on purpose: in
    the scaled-out profile operators run it before starting a new release, so that a
    migration runs (and fails, if it does) in one visible place instead of in whichever
    gateway or action server starts first. Unlike the start-up upgrade it refuses a
    database at a revision this release does not know (a newer release migrated it).
    """
    from bot.catalog.schema import upgrade

    engine = _engine(url)
    try:
        return upgrade(engine, strict=True)
    finally:
        engine.dispose()


def new_revision(message: str, url: str | None = None) -> list[Path]:
    """Write a new revision with the difference between the models and the migrations.

    For developers, after changing a model. Autogenerate compares the models with a scratch
    SQLite database migrated to head (or with the database at `url`, which must be at
    head: use a PostgreSQL one to see PostgreSQL's details). Review what it wrote (Alembic
    does not see every change, e.g. a renamed column looks like a drop and an add), make it
    run on SQLite and PostgreSQL, run ruff, then tests/test_migrations.py.
    """
    with tempfile.TemporaryDirectory() as scratch:
        engine = _engine(url or f"sqlite:///{Path(scratch) / 'scratch.sqlite3'}")
        try:
            with engine.begin() as conn:
                cfg = alembic_config(connection=conn)
                if url is None:
                    command.upgrade(cfg, "head")
                written = command.revision(cfg, message=message, autogenerate=True)
        finally:
            engine.dispose()
    scripts = written if isinstance(written, list) else [written]
    script_directory.cache_clear()
    return [Path(s.path) for s in scripts if s is not None]

"""Engine and session factory for the catalog database (SQLite by default, PostgreSQL too)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.engine.url import make_url
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import QueuePool

from bot.catalog.schema import upgrade

_ENGINES: dict[str, Engine] = {}
SQLITE_BUSY_SECONDS = 30.0


def get_engine(database_url: str) -> Engine:
    """One engine per URL per process; creates the SQLite file's folder and the tables.

    It also migrates the schema to this release (Alembic, see `bot.catalog.schema`).
    """
    engine = _ENGINES.get(database_url)
    if engine is not None:
        return engine
    url = make_url(database_url)
    kwargs: dict = {"future": True}
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        # Several processes write one file (gateway, actions, Rasa's tracker store): wait up
        # to 30 s for another writer's lock instead of sqlite3's 5 s before "database is
        # locked" (seen under a full test run's load on 2 cores).
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": SQLITE_BUSY_SECONDS}
        if url.database and url.database != ":memory:":
            # SQLAlchemy 1.4 opens a new SQLite connection (and runs our PRAGMAs) for every
            # session of a file database; a pool of open connections, as 2.0 does by
            # default, took that out of every request (README "Performance").
            kwargs["poolclass"] = QueuePool
    else:
        kwargs["pool_pre_ping"] = True
    engine = create_engine(database_url, **kwargs)
    if url.get_backend_name() == "sqlite":

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record) -> None:  # noqa: ANN001 - DBAPI types
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.close()

    upgrade(engine)
    _ENGINES[database_url] = engine
    return engine


def forget_engines(database: str) -> None:
    """Close and forget this process's engines on database `database` (any host, user or
    password), so that it can be dropped and a later `get_engine` starts afresh."""
    for key in [k for k in _ENGINES if make_url(k).database == database]:
        _ENGINES.pop(key).dispose()


_FACTORIES: dict[str, sessionmaker] = {}


def session_factory(database_url: str) -> sessionmaker:
    """The `sessionmaker` bound to the engine for `database_url` (one per URL per process:
    the gateway opens a session or two per chat message, README "Performance")."""
    engine = get_engine(database_url)
    factory = _FACTORIES.get(database_url)
    if factory is None or factory.kw.get("bind") is not engine:  # a replaced engine
        factory = sessionmaker(bind=engine, future=True, expire_on_commit=False)
        _FACTORIES[database_url] = factory
    return factory


@contextmanager
def session_scope(database_url: str) -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    session = session_factory(database_url)()
    try:
        yield session
        session.commit()
    except Exception:
        session.rollback()
        raise
    finally:
        session.close()

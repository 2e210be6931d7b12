"""Bring the database up to the current models: Alembic migrations (bot/migrations).

`upgrade(engine)` runs for every engine (`bot.catalog.db.get_engine`), so in every process
when it opens the database, and by `bot db upgrade` (`bot.migrations.upgrade_to_head`):

* at head (every start but the first after a release): one query, nothing else;
* empty, or holding only Rasa's `events` table: all migrations, from the baseline on;
* made by a release before migrations (`create_all`, then `ALTER TABLE … ADD COLUMN` for
  new nullable columns; no `alembic_version` table): brought up to the baseline as that code
  did it (missing tables and indexes created, missing nullable columns added, rows kept),
  stamped with the baseline, then upgraded to head like any other;
* at a revision this release does not know: a newer release migrated it (a rolling
  upgrade); left alone with a warning (an error for `bot db upgrade`).

Several processes may open a new database at once (gateway, action server, training
worker, tests), so the upgrade runs under a lock and reads the revision again once it holds
it: on PostgreSQL a transaction-level advisory lock (`pg_advisory_xact_lock`), on SQLite the
database's write lock (`BEGIN IMMEDIATE`). The whole upgrade is one transaction on both (their
DDL is transactional): a failed upgrade leaves the database as it was.
"""

from __future__ import annotations

import logging
import threading
import time
import zlib
from collections.abc import Callable

from alembic import command
from alembic.operations import Operations
from alembic.operations.ops import AddColumnOp, CreateIndexOp, CreateTableOp, MigrateOperation
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Column, MetaData, inspect, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import OperationalError

from bot import migrations
from bot.catalog.models import Base

log = logging.getLogger(__name__)

# The pg_advisory_xact_lock key for "migrating this database" (advisory locks are per
# database, so two databases on one server do not wait for each other).
PG_LOCK_KEY = zlib.crc32(b"dvc-assistant:migrations")
# How long a process waits for another one's SQLite upgrade before giving up, in seconds.
SQLITE_LOCK_WAIT = 120.0
# Alembic's `op` and `context` are module-level proxies, shared by the threads of a process:
# one upgrade at a time per process, whatever the database (then the database's own lock).
_IN_PROCESS = threading.Lock()


def _register_tables() -> None:
    """Import the packages that keep their own tables on the shared Base."""
    import bot.console.inbox_models  # noqa: F401
    import bot.console.models  # noqa: F401
    import bot.fees.models  # noqa: F401
    import bot.handover.models  # noqa: F401
    import bot.registry.models  # noqa: F401


def target_metadata() -> MetaData:
    """All our tables (Alembic's autogenerate compares the migrations with these)."""
    _register_tables()
    return Base.metadata


def upgrade(engine: Engine, *, strict: bool = False) -> list[str]:
    """Migrate the database to head (see the module's docstring); returns what changed.

    `strict` (for `bot db upgrade`) turns "a revision this release does not know" from a
    warning into an error.
    """
    _register_tables()
    head = migrations.head()
    with engine.connect() as conn:
        now = migrations.current_revision(conn)
    if now == head:
        return []
    if now is not None and not migrations.known(now):
        return _unknown(now, strict)
    changes = _under_lock(engine, lambda conn: _migrate(conn, head, strict))
    if changes:
        log.info("database schema: %s", "; ".join(changes))
    return changes


def _unknown(revision: str, strict: bool) -> list[str]:
    message = (f"cơ sở dữ liệu ở phiên bản lược đồ {revision}, bản phát hành này không biết "
               "(một bản mới hơn đã nâng cấp nó)")
    if strict:
        raise RuntimeError(message)
    log.warning("database schema at revision %s, unknown to this release (a newer release "
                "migrated it): left as it is", revision)
    return []


def _under_lock(engine: Engine, work: Callable[[Connection], list[str]]) -> list[str]:
    """Run `work` in one transaction that holds this database's migration lock."""
    with _IN_PROCESS:
        if engine.dialect.name == "sqlite":
            return _under_sqlite_lock(engine, work)
        return _under_advisory_lock(engine, work)


def _under_advisory_lock(engine: Engine, work: Callable[[Connection], list[str]]) -> list[str]:
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            # Released by the commit or rollback: a crashed upgrade holds nothing.
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PG_LOCK_KEY})
        return work(conn)


def _under_sqlite_lock(engine: Engine, work: Callable[[Connection], list[str]]) -> list[str]:
    """SQLite: the write lock, taken at BEGIN (IMMEDIATE) rather than at the first write.

    Foreign keys are off meanwhile, as SQLite's procedure for schema changes asks: a batch
    migration copies a table and drops the old one, and a DROP with foreign keys on would
    delete (cascade) the rows that refer to it. The pragma is a no-op inside a transaction,
    hence before BEGIN; the check after the work reports what such a change broke.
    """
    with engine.connect() as conn:
        foreign_keys = conn.exec_driver_sql("PRAGMA foreign_keys").scalar()
        conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
        conn.commit()
        try:
            with conn.begin():  # pysqlite emits no BEGIN of its own: ours comes next
                _begin_immediate(conn)
                changes = work(conn)
                broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if broken:
                    log.warning("database schema: %d rows break a foreign key after the "
                                "upgrade, in %s", len(broken),
                                ", ".join(sorted({row[0] for row in broken})))
            return changes
        finally:
            conn.exec_driver_sql(f"PRAGMA foreign_keys={'ON' if foreign_keys else 'OFF'}")
            conn.commit()


def _begin_immediate(conn: Connection) -> None:
    """BEGIN IMMEDIATE, waiting while another process holds the write lock."""
    deadline = time.monotonic() + SQLITE_LOCK_WAIT
    waited = False
    while True:
        try:
            conn.exec_driver_sql("BEGIN IMMEDIATE")  # waits up to the busy timeout itself
            return
        except OperationalError as exc:
            if "locked" not in str(exc.orig) or time.monotonic() > deadline:
                raise
            if not waited:
                log.info("database schema: waiting for another process's upgrade")
                waited = True
            time.sleep(0.05)


def _migrate(conn: Connection, head: str, strict: bool) -> list[str]:
    """Under the lock: adopt a database from before migrations, then upgrade to head."""
    now = migrations.current_revision(conn)
    if now == head:
        return []  # another process upgraded it while this one waited for the lock
    if now is not None and not migrations.known(now):
        return _unknown(now, strict)
    cfg = migrations.alembic_config(connection=conn)
    changes: list[str] = []
    if now is None:
        adopted = _adopt(conn)
        if adopted is not None:
            changes += adopted
            command.stamp(cfg, migrations.BASELINE)
    command.upgrade(cfg, "head")
    return changes + cfg.attributes.get("applied", [])


def _adopt(conn: Connection) -> list[str] | None:
    """Bring a database made before migrations up to the baseline; None if it has none of
    our tables (empty, or only Rasa's `events`), which the baseline itself then creates.

    The baseline's own operations are replayed, each as the old code would have done it:
    a table that is missing is created, one that exists gets the nullable columns it lacks
    (a missing NOT NULL column means the database is not one of ours: an error), an index
    that is missing is created. The baseline, not today's models, is the reference, so that
    the migrations after it still find the database as they expect.
    """
    baseline = migrations.script_directory().get_revision(migrations.BASELINE).module
    insp = inspect(conn)
    present = set(insp.get_table_names())
    if not present & set(baseline.TABLES):
        return None
    changes: list[str] = []
    with Operations.context(MigrationContext.configure(conn)) as operations:
        run = operations.invoke

        def invoke(operation: MigrateOperation) -> object:
            if isinstance(operation, CreateTableOp):
                table = operation.table_name
                if table not in present:
                    changes.append(f"created table {table}")
                    return run(operation)
                have = {c["name"] for c in insp.get_columns(table)}
                for col in operation.columns:
                    if not isinstance(col, Column) or col.name in have:
                        continue
                    if not col.nullable or col.primary_key:
                        raise RuntimeError(
                            f"cột {table}.{col.name} mới nhưng không nullable: cần migration")
                    run(AddColumnOp(table, Column(col.name, col.type)))
                    changes.append(f"added column {table}.{col.name}")
                return None
            if isinstance(operation, CreateIndexOp):
                table = operation.table_name
                if table in present:
                    if operation.index_name in {i["name"] for i in insp.get_indexes(table)}:
                        return None
                    changes.append(f"created index {operation.index_name}")
                return run(operation)
            raise RuntimeError(f"the baseline may only create tables and indexes: {operation}")

        operations.invoke = invoke  # type: ignore[method-assign]
        baseline.upgrade()
    return changes

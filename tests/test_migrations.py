"""Alembic migrations of our tables (bot/migrations, bot.catalog.schema.upgrade), on SQLite
and on PostgreSQL.

PostgreSQL is required, not optional: a test fails when it is unreachable. The admin URL
comes from `DATABASE_ADMIN_URL` (CI: 127.0.0.1:5432, trust auth); every test makes its own
throw-away database and drops it.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Column, MetaData, Text, create_engine, inspect, text
from sqlalchemy.engine import Engine

from bot import migrations
from bot.catalog import schema
from tests.conftest import throwaway_postgres

BACKENDS = ["sqlite", "postgresql"]
RASA_EVENTS = "CREATE TABLE events (id integer primary key, sender_id text)"


class Db:
    """One throw-away database: its URL and the engines a test opened on it."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engines: list[Engine] = []

    def engine(self) -> Engine:
        engine = create_engine(self.url, future=True)
        self.engines.append(engine)
        return engine

    def dispose(self) -> None:
        for engine in self.engines:
            engine.dispose()


@contextlib.contextmanager
def database(backend: str, tmp_path: Path) -> Iterator[Db]:
    """An empty database (a SQLite file, or a new PostgreSQL database), dropped afterwards."""
    if backend == "sqlite":
        db = Db(f"sqlite:///{tmp_path / 'db.sqlite3'}")
        try:
            yield db
        finally:
            db.dispose()
        return
    with throwaway_postgres("dvc_mig") as url:
        db = Db(url)
        try:
            yield db
        finally:
            db.dispose()


def columns(engine: Engine) -> dict[str, set[str]]:
    """Every table of the database with its column names."""
    insp = inspect(engine)
    return {t: {c["name"] for c in insp.get_columns(t)} for t in insp.get_table_names()}


def model_columns() -> dict[str, set[str]]:
    return {name: {c.name for c in table.columns}
            for name, table in schema.target_metadata().tables.items()}


def revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def differences(engine: Engine, metadata: MetaData | None = None) -> list:
    """What autogenerate would write to make the database match the models (or `metadata`)."""
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={
            "include_name": migrations.include_name, "compare_type": True,
            "compare_server_default": True})
        return compare_metadata(ctx, metadata if metadata is not None
                                else schema.target_metadata())


def add_rasa_events(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text(RASA_EVENTS))
        conn.execute(text("INSERT INTO events (id, sender_id) VALUES (7, 'citizen-1')"))


def rasa_events(engine: Engine) -> tuple[set[str], list[tuple]]:
    with engine.connect() as conn:
        rows = [tuple(r) for r in conn.execute(text("SELECT id, sender_id FROM events"))]
    return columns(engine)["events"], rows


def test_one_head_and_a_baseline(tmp_path: Path) -> None:
    assert migrations.heads() == [migrations.head()]
    assert migrations.known(migrations.BASELINE)
    assert not migrations.known("ffffffffffff")
    base = migrations.script_directory().get_revision(migrations.BASELINE)
    assert base.down_revision is None
    with database("sqlite", tmp_path) as db:  # the baseline's TABLES are what it creates
        engine = db.engine()
        with engine.begin() as conn:
            command.upgrade(migrations.alembic_config(connection=conn), migrations.BASELINE)
        assert set(columns(engine)) == {*base.module.TABLES, "alembic_version"}


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_empty_database_gets_exactly_the_models_tables(backend: str, tmp_path: Path) -> None:
    with database(backend, tmp_path) as db:
        engine = db.engine()
        changes = schema.upgrade(engine)
        assert changes and changes[0].startswith(f"upgrade {migrations.BASELINE}")
        found = columns(engine)
        assert found.pop("alembic_version") == {"version_num"}
        assert found == model_columns()
        assert revision(engine) == migrations.head()
        assert schema.upgrade(engine) == []  # at head: nothing to do


@pytest.mark.parametrize("backend", BACKENDS)
def test_migrations_match_the_models(backend: str, tmp_path: Path) -> None:
    """Fails when a model changed without a migration: write one (bot.migrations.new_revision)."""
    with database(backend, tmp_path) as db:
        engine = db.engine()
        add_rasa_events(engine)  # Rasa's table is there in production, and is not ours
        schema.upgrade(engine)
        assert differences(engine) == []

        # ...and the comparison does see a model column that no migration added
        changed = MetaData()
        for table in schema.target_metadata().sorted_tables:
            table.to_metadata(changed)
        changed.tables["procedures"].append_column(Column("nickname", Text))
        found = differences(engine, changed)
        assert [(d[0], d[2], d[3].name) for d in found] == [
            ("add_column", "procedures", "nickname")]


def make_legacy(engine: Engine) -> None:
    """A database as the releases before migrations left it: what `create_all` made then
    (= the baseline; today's models may have more), without `alembic_version`, made by an
    older release still: `procedures.fee_set_by` (nullable, added later) and the table
    `registry_locks` are missing."""
    with engine.begin() as conn:
        command.upgrade(migrations.alembic_config(connection=conn), migrations.BASELINE)
        ops = Operations(MigrationContext.configure(conn))
        with ops.batch_alter_table("procedures") as batch:  # SQLite: copy and rename
            batch.drop_column("fee_set_by")
        ops.drop_table("registry_locks")
        ops.drop_table("alembic_version")
    assert "fee_set_by" not in columns(engine)["procedures"]
    assert revision(engine) is None


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_database_from_before_migrations_is_adopted_with_its_rows(
        backend: str, tmp_path: Path) -> None:
    with database(backend, tmp_path) as db:
        engine = db.engine()
        make_legacy(engine)
        add_rasa_events(engine)
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO procedures (code, name, name_folded, source) "
                              "VALUES ('9.000001', 'Thủ tục cũ', 'thu tuc cu', 'seed')"))
            conn.execute(text("INSERT INTO channels (procedure_code, position, channel, fee) "
                              "VALUES ('9.000001', 0, 'online', 50000)"))
        events_before = rasa_events(engine)
        assert revision(engine) is None

        changes = schema.upgrade(engine)
        assert "added column procedures.fee_set_by" in changes
        assert "created table registry_locks" in changes
        assert f"stamp {migrations.BASELINE}" in " ".join(changes)
        assert not any("events" in c for c in changes)

        assert revision(engine) == migrations.head()
        found = columns(engine)
        found.pop("alembic_version")
        assert found.pop("events") == {"id", "sender_id"}
        assert found == model_columns()
        assert differences(engine) == []  # adopted = made by the migrations
        assert rasa_events(engine) == events_before
        with engine.connect() as conn:
            row = conn.execute(text(
                "SELECT p.name, p.fee_set_by, c.fee FROM procedures p "
                "JOIN channels c ON c.procedure_code = p.code")).one()
        assert tuple(row) == ("Thủ tục cũ", None, 50000)
        assert schema.upgrade(engine) == []


def test_get_engine_adopts_a_very_old_sqlite_catalog(tmp_path: Path) -> None:
    """The real entry point on the single-host profile: an early release's catalog file (one
    table, half its columns), opened through `get_engine` (pool, pragmas)."""
    from bot.catalog.db import _ENGINES, get_engine

    path = tmp_path / "old.sqlite3"
    old = create_engine(f"sqlite:///{path}", future=True)
    with old.begin() as conn:
        conn.execute(text(
            "CREATE TABLE procedures (code VARCHAR(32) NOT NULL PRIMARY KEY, name TEXT NOT NULL,"
            " short_name TEXT, name_folded TEXT NOT NULL, field TEXT, level TEXT, agency TEXT,"
            " authority TEXT, url TEXT, summary TEXT, result TEXT, online_howto TEXT,"
            " source VARCHAR(64) NOT NULL)"))
        conn.execute(text("INSERT INTO procedures (code, name, name_folded, agency, source) "
                          "VALUES ('9.000001', 'Thủ tục cũ', 'thu tuc cu', 'Sở cũ', 'seed')"))
    old.dispose()
    url = f"sqlite:///{path}"
    try:
        engine = get_engine(url)
        assert revision(engine) == migrations.head()
        assert differences(engine) == []
        with engine.connect() as conn:
            assert conn.execute(text("SELECT agency FROM procedures")).scalar() == "Sở cũ"
            # the upgrade turned foreign keys off for itself only
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        engine = _ENGINES.pop(url, None)
        if engine is not None:
            engine.dispose()


def test_a_missing_not_null_column_is_refused_and_nothing_is_changed(tmp_path: Path) -> None:
    """Adoption only adds what the old code added: nullable columns. Tables the baseline
    creates before it meets the bad one are rolled back with it."""
    with database("sqlite", tmp_path) as db:
        engine = db.engine()
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE zalo_tokens (id INTEGER PRIMARY KEY)"))
        with pytest.raises(RuntimeError, match="zalo_tokens.access_token mới nhưng không"):
            schema.upgrade(engine)
        assert columns(engine) == {"zalo_tokens": {"id"}}
        assert revision(engine) is None


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("apart", "legacy"), [(False, False), (True, False), (True, True)],
                         ids=["threads-empty", "processes-empty", "processes-legacy"])
def test_processes_starting_at_once_upgrade_once(
        backend: str, apart: bool, legacy: bool, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Gateway, action server and the rest open a new database at the same moment.

    Threads of one process also share an in-process lock; with it switched off (`apart`) they
    stand for separate processes, which have only the database's lock between them.
    """
    if apart:
        monkeypatch.setattr(schema, "_IN_PROCESS", contextlib.nullcontext())
    with database(backend, tmp_path) as db:
        if legacy:
            make_legacy(db.engine())
        engines = [db.engine() for _ in range(4)]
        start = threading.Barrier(len(engines))
        results: list[list[str]] = []
        errors: list[BaseException] = []

        def open_database(engine: Engine) -> None:
            start.wait()
            try:
                results.append(schema.upgrade(engine))
            except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
                errors.append(exc)

        threads = [threading.Thread(target=open_database, args=(e,)) for e in engines]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert errors == []
        assert len(results) == len(engines)
        assert sum(1 for r in results if r) == 1  # one did the work, the others found it done
        assert revision(engines[0]) == migrations.head()
        assert differences(engines[0]) == []
        with engines[0].connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM alembic_version")).scalar() == 1


@pytest.mark.parametrize("backend", BACKENDS)
def test_rasa_events_table_is_never_touched(backend: str, tmp_path: Path) -> None:
    with database(backend, tmp_path) as db:
        engine = db.engine()
        add_rasa_events(engine)
        before = rasa_events(engine)
        changes = schema.upgrade(engine)  # only `events`: an empty database, not a legacy one
        assert not any("adopt" in c or "stamp" in c or "events" in c for c in changes)
        assert rasa_events(engine) == before
        assert differences(engine) == []  # autogenerate does not offer to drop it

        with engine.begin() as conn:  # down to nothing: every table of ours goes, not Rasa's
            command.downgrade(migrations.alembic_config(connection=conn), "base")
        assert set(columns(engine)) == {"alembic_version", "events"}
        assert rasa_events(engine) == before


def test_current_and_upgrade_to_head_for_the_command_line(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'new' / 'db.sqlite3'}"  # its folder is made too
    assert migrations.current(url) is None
    db = Db(url)
    try:
        assert columns(db.engine()) == {}  # `current` only looked
        changes = migrations.upgrade_to_head(url)
        assert changes and migrations.current(url) == migrations.head()
        assert migrations.upgrade_to_head(url) == []
    finally:
        db.dispose()


def test_a_revision_from_a_newer_release_is_left_alone(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with database("sqlite", tmp_path) as db:
        engine = db.engine()
        schema.upgrade(engine)
        with engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = 'ffffffffffff'"))
        assert schema.upgrade(engine) == []  # a process of the older release still starts
        assert "ffffffffffff" in caplog.text
        with pytest.raises(RuntimeError, match="ffffffffffff"):
            migrations.upgrade_to_head(db.url)  # but `bot db upgrade` says no
        assert revision(engine) == "ffffffffffff"


def test_sql_for_a_dba_never_mentions_rasa_events(capsys: pytest.CaptureFixture[str]) -> None:
    """Offline mode (`--sql`): the PostgreSQL script, without connecting."""
    cfg = migrations.alembic_config("postgresql+psycopg2://nobody@127.0.0.1:1/none")
    command.upgrade(cfg, "head", sql=True)
    sql = capsys.readouterr().out
    assert "CREATE TABLE procedures" in sql and "CREATE TABLE alembic_version" in sql
    assert "CREATE UNIQUE INDEX uq_handovers_open_sender" in sql
    assert "WHERE status != 'closed'" in sql
    assert " events " not in sql.replace("\n", " ")

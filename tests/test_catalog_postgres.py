"""The same catalog code on PostgreSQL (the scaled-out database); fails without one.

CI machines run PostgreSQL on 127.0.0.1:5432 with trust auth; `DATABASE_ADMIN_URL`
points elsewhere. Each run uses its own throw-away database.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text

from bot.catalog.db import session_scope
from bot.catalog.models import Procedure
from bot.catalog.search import CatalogIndex
from bot.catalog.seed import load_seed

ADMIN_URL = os.environ.get("DATABASE_ADMIN_URL",
                           "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")


@pytest.fixture()
def pg_url() -> Iterator[str]:
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT", future=True)
    try:
        with admin.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - any connection failure means "not here"
        pytest.fail(f"PostgreSQL is required at {ADMIN_URL} (.ci/services starts it): "
                    f"{exc.__class__.__name__}")
    name = f"dvc_test_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    try:
        yield url
    finally:
        from bot.catalog.db import _ENGINES

        engine = _ENGINES.pop(url, None)
        if engine is not None:
            engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


def test_seed_load_is_idempotent_and_searchable_on_postgres(pg_url: str) -> None:
    with session_scope(pg_url) as s:
        first = load_seed(s)
    assert first.new >= 30 and first.rejected == 0
    with session_scope(pg_url) as s:
        again = load_seed(s)
    assert (again.new, again.updated, again.unchanged) == (0, 0, first.new)
    with session_scope(pg_url) as s:
        assert s.query(Procedure).count() == first.new
        results = CatalogIndex.from_session(s).search("dang ky ket hon", limit=1)
    assert results and "kết hôn" in results[0].name.lower()

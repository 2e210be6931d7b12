"""The same catalog code on PostgreSQL (the scaled-out database); fails without one.

CI machines run PostgreSQL on 127.0.0.1:5432 with trust auth; `DATABASE_ADMIN_URL`
points elsewhere. Each run uses its own throw-away database.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bot.catalog.db import session_scope
from bot.catalog.models import Procedure
from bot.catalog.search import CatalogIndex
from bot.catalog.seed import load_seed
from tests.conftest import throwaway_postgres


@pytest.fixture()
def pg_url() -> Iterator[str]:
    with throwaway_postgres("dvc_test") as url:
        yield url


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

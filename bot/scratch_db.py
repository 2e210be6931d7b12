"""Throw-away PostgreSQL databases for `bot loadtest` and the test suite.

Why here and not in the tests: the load test (product code) and the PostgreSQL tests need
the same thing — a fresh database beside the server's admin database, this process's
engines closed and the database dropped (even with connections left open) afterwards —
and product code cannot import the tests.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, text
from sqlalchemy.engine.url import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from bot.catalog.db import forget_engines

log = logging.getLogger("bot.scratch_db")

DEFAULT_ADMIN_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"


@contextmanager
def scratch_postgres(admin_url: str, prefix: str, *, keep: bool = False) -> Iterator[str]:
    """Create database `<prefix>_<random>` on `admin_url`'s server, yield its URL (the admin
    URL's credentials, password included), then drop it unless `keep`.

    The admin engine pools nothing: a PostgreSQL restart in between (a fault the load test
    causes on purpose) would leave a pooled connection dead. A failed drop is logged, not
    raised: the caller's results matter more than the clean-up.
    """
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT", future=True,
                          poolclass=NullPool)
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        forget_engines(name)
        if not keep:
            try:
                with admin.connect() as conn:
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            except SQLAlchemyError as exc:
                log.warning("could not drop database %s (%s): drop it by hand", name,
                            type(exc).__name__)
        admin.dispose()

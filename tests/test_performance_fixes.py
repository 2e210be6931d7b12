"""The speed fixes that live outside Rasa (README "Performance"): each would silently come
back if reverted, so each has a test that fails then."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from sqlalchemy import event, text
from sqlalchemy.pool import QueuePool

from bot.config import ROOT


def test_sqlite_file_sessions_reuse_pooled_connections(tmp_path: Path) -> None:
    from bot.catalog.db import get_engine, session_scope

    url = f"sqlite:///{tmp_path / 'pool.sqlite3'}"
    engine = get_engine(url)
    assert isinstance(engine.pool, QueuePool)
    opened: list[object] = []
    event.listen(engine, "connect", lambda conn, _rec: opened.append(conn))
    for _ in range(20):
        with session_scope(url) as s:
            assert s.execute(text("PRAGMA foreign_keys")).scalar() == 1  # still set
    assert len(opened) <= 1  # one connection for twenty sessions, not twenty


def test_gateway_and_search_load_without_jax() -> None:
    code = ("import sys, bot.gateway.app, bot.catalog.search, bot.catalog.search_eval\n"
            "assert 'jax' not in sys.modules, 'jax was imported'\n"
            "from bot.catalog.bm25lib import bm25s\n"
            "assert not bm25s.selection.JAX_IS_AVAILABLE\n"
            "import jax  # still importable by whoever really needs it\n"
            "print('ok')")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


def test_one_session_factory_per_engine(tmp_path: Path) -> None:
    from bot.catalog.db import _ENGINES, get_engine, session_factory

    url = f"sqlite:///{tmp_path / 'f.sqlite3'}"
    first = session_factory(url)
    assert session_factory(url) is first
    _ENGINES.pop(url).dispose()  # what a test dropping its database does
    second = session_factory(url)
    assert second is not first and second.kw["bind"] is get_engine(url)

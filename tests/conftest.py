"""Shared fixtures: a real SQLite catalog per test, and the shipped seed catalog."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

# Keep TensorFlow quiet in test output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"


@pytest.fixture(scope="session", autouse=True)
def training_data_untouched() -> Iterator[None]:
    """No test may write into the checkout's training data (the console's corrections go to
    copies): data/nlu is the same after the session as before."""
    import hashlib

    def digest() -> str:
        h = hashlib.sha256()
        for path in sorted((ROOT / "data" / "nlu").glob("*.yml")):
            h.update(path.name.encode() + path.read_bytes())
        return h.hexdigest()

    before = digest()
    yield
    assert digest() == before, "a test changed data/nlu (use a copy: NLU_CORRECTIONS_FILE)"


@pytest.fixture()
def db_url(tmp_path: Path) -> str:
    """A fresh SQLite database file for one test."""
    return f"sqlite:///{tmp_path / 'catalog.sqlite3'}"


@pytest.fixture()
def seeded_db(db_url: str) -> Iterator[str]:
    """A database loaded with the shipped seed catalog (data/catalog/)."""
    from bot.catalog.db import session_scope
    from bot.catalog.seed import load_seed

    with session_scope(db_url) as s:
        report = load_seed(s)
    assert report.rejected == 0, report.errors
    yield db_url


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _session_settings(base: Path, seed: bool = True) -> Any:
    """The session model's settings: its own database (the seed catalog, loaded with
    `seed`) and models folder, on ports free now."""
    from bot.catalog.db import session_scope
    from bot.catalog.seed import load_seed
    from bot.config import Settings

    settings = Settings.from_env({
        "DATABASE_URL": f"sqlite:///{base / 'catalog.sqlite3'}",
        "MODELS_DIR": str(base / "models"),
        "BOT_PORT": str(free_port()), "RASA_PORT": str(free_port()),
        "ACTIONS_PORT": str(free_port()),
    })
    if seed:
        with session_scope(settings.database_url) as s:
            load_seed(s)
    return settings


class BackgroundTraining:
    """`bot train` for the session model, started as soon as the tests are collected.

    Training takes about a quarter of CI's time and mostly waits on TensorFlow while the
    fast tests use one core: the tests that need no model run first (see
    `pytest_collection_modifyitems`) while the model trains beside them.
    """

    def __init__(self, base: Path) -> None:
        self.base = base
        self.settings = _session_settings(base)
        self.log = base / "train.log"
        env = {**os.environ, "DATABASE_URL": self.settings.database_url,
               "MODELS_DIR": str(self.settings.models_dir),
               "CATALOG_SNAPSHOT": ""}  # the seed alone, as every module expects
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "bot", "train"], cwd=ROOT,
                                         env=env, stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True)

    def wait(self) -> Path:
        if self.proc.wait() != 0:
            tail = self.log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"training the session model failed:\n{tail}")
        models = sorted(self.settings.models_dir.glob("*.tar.gz"))
        assert models, self.log.read_text(errors="replace")[-3000:]
        return models[-1]

    def stop(self) -> None:
        if self.proc.poll() is None:  # the session ended early (-x, Ctrl-C)
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=60)


_TRAINING: list[BackgroundTraining] = []


@pytest.hookimpl(trylast=True)  # after -k / -m deselection
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Modules that need no model first (in their own order), then those that do; and the
    session model's training starts now, in the background."""
    late = {item.module.__name__ for item in items
            if "trained" in item.fixturenames and item.module is not None}
    items.sort(key=lambda item: item.module is not None and item.module.__name__ in late)
    if late and not os.environ.get("DVC_TEST_MODEL") and not config.option.collectonly:
        _TRAINING.append(BackgroundTraining(config._tmp_path_factory.mktemp("assistant")))


def pytest_sessionfinish(session: pytest.Session) -> None:
    for training in _TRAINING:
        training.stop()


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory):
    """A model trained once per test session from this checkout's data and seed catalog
    (by `bot train`, in the background from collection on: `BackgroundTraining`).

    DVC_TEST_MODEL=/path/model.tar.gz reuses a model (for quick local iterations only; CI
    always trains, so the tests cover the training path).
    """
    if _TRAINING:  # ports picked now, not at collection (they may be taken by then)
        model = _TRAINING[0].wait()
        return _session_settings(_TRAINING[0].base, seed=False), model
    settings = _session_settings(tmp_path_factory.mktemp("assistant"))
    reuse = os.environ.get("DVC_TEST_MODEL")
    if reuse:
        return settings, Path(reuse)
    from bot.training import train

    return settings, train(settings)


@contextmanager
def own_stack(trained, name: str, **env: str) -> Iterator[Any]:  # noqa: ANN001
    """A running stack of its own (fresh ports) on the session's model and catalog.

    Each integration module gets one, so a module that stops Rasa on purpose
    (test_integration.py) cannot disturb the others; `env` adds settings (PROVINCE…).
    """
    from bot.config import Settings
    from bot.stack import Stack

    settings, model = trained
    own = Settings.from_env({
        "DATABASE_URL": settings.database_url, "MODELS_DIR": str(settings.models_dir),
        "BOT_PORT": str(free_port()), "RASA_PORT": str(free_port()),
        "ACTIONS_PORT": str(free_port()), **env,
    })
    st = Stack(own, model, log_dir=model.parent / f"logs-{name}")
    st.start()
    try:
        yield st
    finally:
        st.stop()


@pytest.fixture(scope="session")
def shared_stack(trained) -> Iterator[Any]:  # noqa: ANN001
    """One running stack on default settings for every module that only talks to it (no
    stopped parts, no settings of its own): each start costs about 30-60 s of CI. The
    per-address limit is off since those modules all chat from 127.0.0.1 within minutes;
    per-conversation limits stay as configured."""
    with own_stack(trained, "shared", RATE_LIMIT_ADDRESS_PER_MINUTE="0") as st:
        yield st


@contextmanager
def throwaway_postgres(prefix: str) -> Iterator[str]:
    """A new PostgreSQL database on this machine's server (DATABASE_ADMIN_URL), dropped
    afterwards; FAILS (never skips) when the server is missing (.ci/services starts it)."""
    import os

    from sqlalchemy import create_engine, text

    from bot.scratch_db import DEFAULT_ADMIN_URL, scratch_postgres

    admin_url = os.environ.get("DATABASE_ADMIN_URL", DEFAULT_ADMIN_URL)
    admin = create_engine(admin_url, future=True)
    try:
        with admin.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - any connection failure means "not here"
        pytest.fail(f"PostgreSQL is required at {admin_url} (.ci/services starts it): "
                    f"{exc.__class__.__name__}")
    finally:
        admin.dispose()
    with scratch_postgres(admin_url, prefix) as url:
        yield url

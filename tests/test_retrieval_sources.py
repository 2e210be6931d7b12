"""The NLU's background warm-up of the search indexes, as one-shot commands wait for it."""
from __future__ import annotations

import threading
import time

import pytest

from bot.nlu import retrieval


def test_wait_ready_waits_for_a_warm_up_in_another_thread(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """`bot parse` must not answer (or exit) while the warm-up still builds the indexes."""
    sources = retrieval._Sources()
    release = threading.Event()

    def slow_build(self: retrieval._Sources) -> None:
        release.wait(5)

    monkeypatch.setattr(retrieval._Sources, "catalog", slow_build)
    monkeypatch.setattr(retrieval, "_faq_hits", lambda text: [])
    monkeypatch.setattr(retrieval, "_knowledge_hits", lambda text: [])
    warm = threading.Thread(target=sources.warm)
    warm.start()
    time.sleep(0.1)  # the warm-up holds the "warming" flag now
    threading.Timer(0.3, release.set).start()
    started = time.monotonic()
    assert sources.wait_ready(timeout=5)
    assert time.monotonic() - started >= 0.2 and sources.extras_ready.is_set()
    warm.join(1)


def test_wait_ready_builds_when_nobody_is_warming(monkeypatch: pytest.MonkeyPatch) -> None:
    sources = retrieval._Sources()
    built: list[str] = []
    monkeypatch.setattr(retrieval._Sources, "catalog", lambda self: built.append("catalog"))
    monkeypatch.setattr(retrieval, "_faq_hits", lambda text: built.append("faq") or [])
    monkeypatch.setattr(retrieval, "_knowledge_hits", lambda text: built.append("kb") or [])
    assert sources.wait_ready(timeout=5) and built == ["catalog", "faq", "kb"]


def test_wait_ready_gives_up_after_its_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    """A warm-up that keeps failing does not hang a command: it returns False in time."""
    sources = retrieval._Sources()

    def broken(self: retrieval._Sources) -> None:
        raise RuntimeError("database gone")

    monkeypatch.setattr(retrieval._Sources, "catalog", broken)
    started = time.monotonic()
    assert not sources.wait_ready(timeout=0.5)
    assert time.monotonic() - started < 3

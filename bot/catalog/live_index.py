"""A search index that follows the catalog: rebuilt in the background after an import.

The gateway and the action server keep the index in memory for fast queries. Building it
over thousands of procedures takes seconds, so a process checks the catalog revision (one
small query) at most every `check_every` seconds and, when an operator's import changed
it, rebuilds in a background thread while queries keep using the previous index.

Building includes the e5 vectors of the procedures' names (`CatalogIndex`, semantic): read
from the shared vector cache, so only procedures new since the last build are embedded.
"""

from __future__ import annotations

import logging
import threading
import time

from bot.catalog.db import session_factory
from bot.catalog.revision import catalog_revision
from bot.catalog.search import CatalogIndex
from bot.catalog.seed import ensure_seeded

log = logging.getLogger(__name__)


class LiveIndex:
    """The current `CatalogIndex` of a database, refreshed when its revision changes."""

    def __init__(self, database_url: str, check_every: float = 5.0,
                 semantic: bool = True) -> None:
        self.database_url = database_url
        self.check_every = check_every
        self.semantic = semantic  # False: lexical search only (no e5)
        self._factory = session_factory(database_url)
        self._lock = threading.Lock()
        self._first = threading.Lock()  # one initial build, however many callers wait
        self._index: CatalogIndex | None = None
        self._revision: int | None = None
        self._checked = 0.0
        self._building = False
        self.error: str | None = None

    def _build(self) -> tuple[CatalogIndex, int]:
        with self._factory() as s:
            revision = catalog_revision(s)
            index = CatalogIndex.from_session(s, semantic=self.semantic)
        return index, revision

    def load(self, seed: bool = True) -> CatalogIndex:
        """Seed the catalog if asked, then build the index now (blocking)."""
        if seed:
            with self._factory() as s:
                report = ensure_seeded(s)
                s.commit()
            if report.changed:
                log.info("catalog seeded: %s", report.summary())
        index, revision = self._build()
        with self._lock:
            self._index, self._revision, self._checked = index, revision, time.monotonic()
        return index

    def _rebuild_in_background(self) -> None:
        try:
            index, revision = self._build()
        except Exception as exc:  # keep serving the old index; the next check retries
            log.exception("catalog index rebuild failed")
            self.error = f"{type(exc).__name__}: {exc}"[:300]
        else:
            with self._lock:
                self._index, self._revision = index, revision
            self.error = None
            log.info("catalog index rebuilt: revision %d, %d procedures",
                     revision, len(index.entries))
        finally:
            with self._lock:
                self._building = False

    def get(self) -> CatalogIndex:
        """The index; starts a background rebuild when the catalog changed since."""
        with self._lock:
            index = self._index
            due = time.monotonic() - self._checked >= self.check_every
            if due:
                self._checked = time.monotonic()
        if index is None:
            with self._first:
                return self._index or self.load(seed=False)
        if due and not self._building:
            with self._factory() as s:
                revision = catalog_revision(s)
            with self._lock:
                start = revision != self._revision and not self._building
                if start:
                    self._building = True
            if start:
                threading.Thread(target=self._rebuild_in_background, name="catalog-index",
                                 daemon=True).start()
        return index

    @property
    def revision(self) -> int | None:
        return self._revision

    @property
    def size(self) -> int:
        """Procedures in the index now (no database check: safe on an event loop)."""
        index = self._index
        return len(index.entries) if index is not None else 0

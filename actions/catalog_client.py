"""The action server's access to the catalog: sessions, a cached search index, resolution.

Wrapping the database here keeps the actions about conversation, not SQL, and lets the
index be rebuilt only when the catalog actually changed (operators import new data).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from bot.catalog.db import session_factory
from bot.catalog.models import Alias, Procedure
from bot.catalog.search import CatalogIndex, SearchResult
from bot.catalog.seed import ensure_seeded
from bot.config import Settings

CONFIDENT = 0.6  # a search hit at or above this answers directly...
MARGIN = 0.12  # ...when the runner-up is at least this far behind
PLAUSIBLE = 0.3  # hits at or above this are offered as buttons
FULLTEXT_CONFIDENT = 0.75  # a whole-message search must be this sure to override context


@dataclass
class Resolution:
    """The outcome of working out which procedure a message is about."""

    procedure: Procedure | None = None
    candidates: list[SearchResult] = field(default_factory=list)
    from_context: bool = False
    mentioned: str | None = None  # the words the citizen used, when nothing matched


class CatalogClient:
    """Thread-safe catalog access for actions (rasa-sdk runs actions in one event loop)."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self._factory = session_factory(database_url)
        self._lock = threading.Lock()
        self._index: CatalogIndex | None = None
        self._version: tuple[int, int] | None = None
        with self.session() as s:
            ensure_seeded(s)
            s.commit()

    def session(self) -> Session:
        return self._factory()

    def _catalog_version(self, s: Session) -> tuple[int, int]:
        return (s.execute(select(func.count(Procedure.code))).scalar_one(),
                s.execute(select(func.count(Alias.id))).scalar_one())

    def index(self, s: Session) -> CatalogIndex:
        """The search index, rebuilt when the catalog's size changed since last build."""
        version = self._catalog_version(s)
        with self._lock:
            if self._index is None or version != self._version:
                self._index = CatalogIndex.from_session(s)
                self._version = version
            return self._index

    def get(self, s: Session, code: str) -> Procedure | None:
        return s.execute(
            select(Procedure).where(Procedure.code == code).options(
                selectinload(Procedure.channels), selectinload(Procedure.documents),
                selectinload(Procedure.steps), selectinload(Procedure.legal_basis),
            )
        ).scalar_one_or_none()

    def resolve(self, s: Session, entities: list[dict[str, Any]], text: str,
                context_code: str | None) -> Resolution:
        """Pick the procedure: entity code → entity words → whole message → context."""
        index = self.index(s)
        spans = [e for e in entities if e.get("entity") == "procedure"]
        for e in spans:
            value = str(e.get("value") or "")
            proc = self.get(s, value) if value else None
            if proc is not None:
                return Resolution(procedure=proc)
        for e in spans:
            words = str(e.get("text") or e.get("value") or "")
            hits = index.search(words, limit=5)
            allowed = set(e.get("candidates") or [])
            if allowed:
                hits = [h for h in hits if h.code in allowed] or [
                    SearchResult(c, self.get(s, c).display_name, 0.5)
                    for c in sorted(allowed) if self.get(s, c) is not None
                ]
            picked = self._pick(s, hits)
            if picked.procedure is not None or picked.candidates:
                return picked
        hits = index.search(text, limit=5)
        if hits and hits[0].score >= FULLTEXT_CONFIDENT and (
            len(hits) == 1 or hits[0].score - hits[1].score >= MARGIN
        ):
            return Resolution(procedure=self.get(s, hits[0].code))
        if context_code and not spans:
            proc = self.get(s, context_code)
            if proc is not None:
                return Resolution(procedure=proc, from_context=True)
        picked = self._pick(s, hits)
        if picked.procedure is None and not picked.candidates and spans:
            picked.mentioned = str(spans[0].get("text") or spans[0].get("value") or "")
        return picked

    def _pick(self, s: Session, hits: list[SearchResult]) -> Resolution:
        if not hits:
            return Resolution()
        top = hits[0]
        clear = len(hits) == 1 or top.score - hits[1].score >= MARGIN
        if top.score >= CONFIDENT and clear:
            return Resolution(procedure=self.get(s, top.code))
        plausible = [h for h in hits if h.score >= PLAUSIBLE][:3]
        return Resolution(candidates=plausible)


_CLIENT: CatalogClient | None = None
_CLIENT_LOCK = threading.Lock()


def get_client() -> CatalogClient:
    """The process-wide client for DATABASE_URL (created on first use)."""
    global _CLIENT
    with _CLIENT_LOCK:
        url = Settings.from_env().database_url
        if _CLIENT is None or _CLIENT.database_url != url:
            _CLIENT = CatalogClient(url)
        return _CLIENT

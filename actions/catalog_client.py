"""The action server's access to the catalog: sessions, a cached search index, resolution.

Wrapping the database here keeps the actions about conversation, not SQL, and lets the
index be rebuilt only when the catalog actually changed (operators import new data).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from bot.catalog.db import session_factory
from bot.catalog.live_index import LiveIndex
from bot.catalog.models import Procedure
from bot.catalog.search import CatalogIndex, SearchResult
from bot.catalog.seed import ensure_seeded
from bot.config import Settings

CONFIDENT = 0.55  # the best hit at or above this is answered...
MARGIN = 0.05  # ...as the clear answer when the runner-up is at least this far behind
PLAUSIBLE = 0.3  # hits at or above this are offered as buttons
ALTERNATIVES = 3  # runners-up offered as buttons beside an answer
CANDIDATES = 4  # procedures offered as buttons when none is likely enough to answer
FULLTEXT_CONFIDENT = 0.75  # a whole-message search must be this sure to override context


@dataclass
class Resolution:
    """The outcome of working out which procedure a message is about."""

    procedure: Procedure | None = None
    candidates: list[SearchResult] = field(default_factory=list)
    alternatives: list[SearchResult] = field(default_factory=list)  # close runners-up
    mentioned: str | None = None  # the words the citizen used, when nothing matched
    shared: list[Procedure] = field(default_factory=list)  # close variants answered alike
    # False: the runner-up is within MARGIN, so `procedure` is only the likeliest; the
    # answer says so and keeps the others offered (see CatalogClient._pick).
    clear: bool = True
    ranked: list[SearchResult] = field(default_factory=list)  # the hits it was picked from


class CatalogClient:
    """Thread-safe catalog access for actions (rasa-sdk runs actions in one event loop)."""

    def __init__(self, database_url: str, refresh: float = 5.0) -> None:
        self.database_url = database_url
        self._factory = session_factory(database_url)
        # Lexical only: the NLU's retrieval (bot/nlu/retrieval.py) ranks every message with
        # e5 already and the actions read its ranking; this index serves the rare message
        # that reaches an action unsearched, and e5 here cost the action server ~200 MiB.
        self._live = LiveIndex(database_url, check_every=refresh, semantic=False)
        with self.session() as s:
            ensure_seeded(s)
            s.commit()

    def session(self) -> Session:
        return self._factory()

    def index(self) -> CatalogIndex:
        """The search index, rebuilt in the background after the catalog changed."""
        return self._live.get()

    def get(self, s: Session, code: str) -> Procedure | None:
        return s.execute(
            select(Procedure).where(Procedure.code == code).options(
                selectinload(Procedure.channels), selectinload(Procedure.documents),
                selectinload(Procedure.steps), selectinload(Procedure.legal_basis),
            )
        ).scalar_one_or_none()

    def rank(self, s: Session, text: str) -> list[SearchResult]:
        """Rank procedures for a message by searching the whole message.

        The whole text carries the details that tell variants apart ("dưới 14 tuổi",
        "gia hạn", "sửa lại"). Blending in searches of the entity spans made it worse on
        ../shared/eval/citizen_dev.jsonl (`bot evaluate`: 0.65 answered right with a 40%
        span share, 0.71 with the whole text alone): DIET's spans are often fragments
        ("lại", "xin"), and an alias the matcher finds scores fully here anyway.
        """
        return self.index().search(text, limit=10)

    def resolve(self, s: Session, entities: list[dict[str, Any]], text: str,
                context_code: str | None,
                ranked: list[SearchResult] | None = None) -> Resolution:
        """Pick the procedure for this message, or offer candidates, or fall back on context.

        A procedure named in the message wins; a message that names none (a follow-up such
        as "mất phí không?") stays on the procedure of the conversation.
        """
        for e in entities:
            # A code chosen explicitly (a button payload) is the citizen's own choice.
            if e.get("entity") == "procedure" and "candidates" not in e and e.get("value"):
                proc = self.get(s, str(e["value"]))
                if proc is not None:
                    return Resolution(procedure=proc)
        if ranked is None:
            ranked = self.rank(s, text)
        named = any(e.get("entity") == "procedure" for e in entities)
        picked = self._pick(s, ranked)
        if picked.procedure is not None and picked.clear:
            return picked
        nothing = picked.procedure is None and not picked.candidates
        if context_code and (not named or nothing):
            proc = self.get(s, context_code)
            if proc is not None and (not ranked or ranked[0].score < FULLTEXT_CONFIDENT):
                return Resolution(procedure=proc)
        if nothing and named:
            span = next(e for e in entities if e.get("entity") == "procedure")
            picked.mentioned = str(span.get("text") or span.get("value") or "")
        return picked

    def follow_up(self, s: Session, pending: list[str], ranked: list[SearchResult]
                  ) -> Resolution | None:
        """A typed message after candidate buttons: pick, keep or switch.

        It picks the candidate it names (the best-scoring candidate among the search hits),
        switches to a new procedure the search is sure of, and otherwise answers for the most
        likely candidate (the first) with the others still offered.
        """
        if not pending:
            return None
        scores = {h.code: h for h in ranked}
        named = [scores[c] for c in pending if c in scores and scores[c].score >= PLAUSIBLE]
        top = ranked[0] if ranked else None
        if top is not None and top.code not in pending and top.score >= CONFIDENT and (
                not named or top.score - max(n.score for n in named) >= MARGIN):
            return None  # a new procedure: resolved like any other message
        chosen = max(named, key=lambda h: h.score).code if named else pending[0]
        proc = self.get(s, chosen)
        if proc is None:
            return None
        others = [SearchResult(c, p.display_name, 0.0) for c in pending if c != chosen
                  for p in [self.get(s, c)] if p is not None]
        return Resolution(procedure=proc, alternatives=others[:ALTERNATIVES])

    def _pick(self, s: Session, hits: list[SearchResult]) -> Resolution:
        """Answer the likeliest procedure, with the next ones offered beside it.

        Measured through the chat on the development sets, asking "which one?" whenever
        the runner-up was close answered the gold procedure first a sixth less often than
        answering the likeliest one, and put no more gold procedures within reach: the
        answer names the runners-up as buttons either way (README "How a message is
        answered"). Only when no hit is likely enough is the citizen asked to choose.
        """
        if not hits:
            return Resolution()
        top = hits[0]
        if top.score >= CONFIDENT:
            proc = self.get(s, top.code)
            if proc is not None:
                clear = len(hits) == 1 or top.score - hits[1].score >= MARGIN
                others = [h for h in hits[1:] if h.score >= PLAUSIBLE][:ALTERNATIVES]
                return Resolution(procedure=proc, alternatives=others, clear=clear,
                                  ranked=hits)
        plausible = [h for h in hits if h.score >= PLAUSIBLE][:CANDIDATES]
        return Resolution(candidates=plausible, ranked=hits)


_CLIENT: CatalogClient | None = None
_CLIENT_LOCK = threading.Lock()


def get_client() -> CatalogClient:
    """The process-wide client for DATABASE_URL (created on first use)."""
    global _CLIENT
    with _CLIENT_LOCK:
        settings = Settings.from_env()
        url = settings.database_url
        if _CLIENT is None or _CLIENT.database_url != url:
            _CLIENT = CatalogClient(url, settings.catalog_refresh)
        return _CLIENT

"""Retrieval first: every message is searched before the intent model decides anything.

The intent model was trained on a few hundred short chat messages; the catalog knows
thousands of procedures by name, and the citizen's whole question carries the details that
tell them apart. So the last component of the NLU pipeline (after the FallbackClassifier):

1. searches the catalog with the whole text (`bot.catalog.search`, lexical + e5), and the
   official Q&A and the general-knowledge file where they are available;
2. detects every aspect asked (`bot.aspects`: papers, fee, time, place, conditions…) and
   whether it is a yes/no question;
3. lets the intent model decide dialogue acts only: greet, thank, goodbye, affirm, deny,
   cancel, bot_challenge, request_human, check_status, out_of_scope, inform_province /
   inform_situation. A confident procedure match wins over an act unless the act has its own
   evidence (bot/nlu/act_guards.py): a hand-over needs an explicit request, a status look-up a
   receipt code or explicit status words, and a province or situation named inside a
   procedure question is context for that question. A message the FallbackClassifier gave up
   on, or called out of scope, is answered when the search is confident.

Everything found is put on the message as `retrieval` (kept in the tracker's
`latest_message`), so the actions answer from the same search and never repeat it; the
intent the model predicted is kept there as `intent_model`.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.nlu.constants import ENTITIES, INTENT, INTENT_RANKING_KEY, TEXT
from rasa.shared.nlu.training_data.message import Message

from bot.aspects import INTENT_ASPECT, detect
from bot.nlu.act_guards import explicit_handover, explicit_status
from bot.retrieval_result import RETRIEVAL

log = logging.getLogger(__name__)

# Procedure intents: the model's label only says which aspect to answer without a cue.
ASK_INTENTS = frozenset(INTENT_ASPECT)
ASPECT_INTENT = {aspect: intent for intent, aspect in INTENT_ASPECT.items()}
SMALL_TALK = frozenset({"greet", "goodbye", "thank", "affirm", "deny", "cancel",
                        "bot_challenge", "none_of_these"})
CONTEXT_ACTS = frozenset({"inform_province", "inform_situation"})
GIVE_UP = frozenset({"nlu_fallback", "out_of_scope"})

CONFIDENT = 0.55  # = actions/catalog_client.CONFIDENT: a hit the answer actions act on
PLAUSIBLE = 0.3  # a hit worth offering as a button
LONG_SMALL_TALK = 6  # folded words from which "chào bạn, cho hỏi …" is a question, not a greeting


class _Sources:
    """The search indexes this process answers from, built once, followed as they change."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._live: Any = None
        self._url: str | None = None
        # The Q&A and knowledge indexes embed thousands of texts when their vectors are not
        # cached yet: a message never waits for that (the gateway would time out); they
        # join once the warm-up built them.
        self.extras_ready = threading.Event()
        self._warming = False

    def catalog(self) -> Any:
        """The live catalog index of DATABASE_URL (bot.catalog.live_index.LiveIndex)."""
        from bot.catalog.live_index import LiveIndex
        from bot.config import Settings

        settings = Settings.from_env()
        with self._lock:
            if self._live is None or self._url != settings.database_url:
                self._live = LiveIndex(settings.database_url, settings.catalog_refresh)
                self._url = settings.database_url
            live = self._live
        return live.get()

    def warm(self) -> None:
        """Build every index now (a background thread at model load or first message)."""
        with self._lock:
            if self._warming or self.extras_ready.is_set():
                return
            self._warming = True
        try:
            self.catalog()
            _faq_hits("thủ tục hành chính")
            _knowledge_hits("thủ tục hành chính")
            self.extras_ready.set()
        except Exception:  # the next message starts another warm-up
            log.exception("retrieval warm-up failed")
        finally:
            with self._lock:
                self._warming = False

    def wait_ready(self, timeout: float = 900.0) -> bool:
        """Build every index now, or wait for the warm-up that is building them.

        One-shot commands (`bot parse`, `bot evaluate`) call this after loading the model:
        their results must not depend on how far the background warm-up got, and a process
        that exits while the warm-up runs inside the e5 engine's C++ threads can abort
        ("terminate called without an active exception", seen once in CI).
        """
        deadline = time.monotonic() + timeout
        while not self.extras_ready.is_set():
            self.warm()  # returns at once when another thread is warming
            left = deadline - time.monotonic()
            if left <= 0 or self.extras_ready.wait(min(left, 1.0)):
                break
        return self.extras_ready.is_set()

    def extras(self) -> bool:
        """Whether the Q&A and knowledge indexes are built; starts building them if not."""
        if self.extras_ready.is_set():
            return True
        threading.Thread(target=self.warm, name="retrieval-warmup", daemon=True).start()
        return False


SOURCES = _Sources()


def _faq_hits(text: str) -> list[dict[str, Any]]:
    """The official Q&A rows that match (bot.faq), best first; a confident one carries its
    quote and a related one its link line, worded once here so the action server needs
    neither the index nor the answers."""
    from bot.faq import match, quote, related_line

    out = []
    for hit in match(text, limit=3):
        row = hit.as_dict()
        if hit.confident:
            row["quote"] = quote(hit)
        if hit.related:
            row["line"] = related_line(hit)
        out.append(row)
    return out


def _knowledge_hits(text: str) -> list[dict[str, Any]]:
    """The general-knowledge entries that match (bot.knowledge), best first, rendered."""
    from bot.knowledge import match, render

    return [{"id": h.entry.id, "title": h.entry.title, "score": round(h.score, 4),
             "confident": h.confident, "text": render(h.entry)}
            for h in match(text, limit=2)]


def retrieve(text: str, intent: str | None) -> dict[str, Any]:
    """What the catalog, the Q&A and the knowledge file say about `text`."""
    hits = [h.as_dict() for h in SOURCES.catalog().search(text, limit=10)]
    asked = detect(text, intent)
    out: dict[str, Any] = {
        "procedures": hits,
        "aspects": list(asked.aspects),
        "aspects_from_cues": asked.from_cues,
        "yes_no": asked.yes_no,
        "faq": [],
        "knowledge": [],
    }
    if not SOURCES.extras():
        log.info("retrieval: official Q&A and knowledge still loading; catalog only")
        return out
    for key, find in (("faq", _faq_hits), ("knowledge", _knowledge_hits)):
        try:
            out[key] = find(text)
        except Exception:  # a broken optional source must not take the catalog down with it
            log.exception("retrieval: %s matching failed", key)
    return out


def _evidence(found: dict[str, Any]) -> float:
    """How sure the sources are that the message asks about something they hold."""
    best = found["procedures"][0]["score"] if found["procedures"] else 0.0
    for key in ("faq", "knowledge"):
        for hit in found[key]:
            if hit.get("confident"):
                best = max(best, float(hit.get("score") or 0.0), CONFIDENT)
    return best


def decide(intent: str, text: str, entities: list[dict[str, Any]],
           found: dict[str, Any]) -> str | None:
    """The intent to use instead of the model's, or None to keep it."""
    evidence = _evidence(found)
    question = _question_intent(found)
    if intent in ASK_INTENTS:
        # A procedure question either way; its own words say which point. The model's
        # label stands when the message asks that point (or names none); when it asks
        # only other points ("… phải chuẩn bị hồ sơ ra sao" labelled a how-to), the label
        # follows them, as the answer does.
        asked = found.get("aspects") or []
        if found.get("aspects_from_cues") and asked and INTENT_ASPECT[intent] not in asked:
            return question
        return None
    if intent == "request_human":
        return question if evidence >= CONFIDENT and not explicit_handover(text) else None
    if intent == "check_status":
        has_code = any(e.get("entity") == "receipt_code" for e in entities)
        if explicit_status(text, has_code):
            return None
        return question if evidence >= PLAUSIBLE else None
    if intent in CONTEXT_ACTS or intent in GIVE_UP:
        return question if evidence >= CONFIDENT else None
    if intent in SMALL_TALK:
        long_enough = len(text.split()) >= LONG_SMALL_TALK
        return question if evidence >= CONFIDENT and long_enough else None
    return None


def settled(intent: str, text: str, entities: list[dict[str, Any]]) -> bool:
    """Whether the model's act stands whatever the search finds, so searching is wasted:
    short small talk ("cảm ơn", "xin chào"), an explicit status look-up, an explicit
    request for a person (the same tests `decide` applies)."""
    if intent in SMALL_TALK:
        return len(text.split()) < LONG_SMALL_TALK
    if intent == "check_status":
        return explicit_status(text, any(e.get("entity") == "receipt_code" for e in entities))
    if intent == "request_human":
        return explicit_handover(text)
    return False


def _question_intent(found: dict[str, Any]) -> str:
    """The procedure intent whose rule leads to the answer (the first aspect asked)."""
    return ASPECT_INTENT.get(found["aspects"][0], "ask_procedure") if found["aspects"] \
        else "ask_procedure"


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=False)
class RetrievalFirst(GraphComponent):
    """Searches every message and keeps the intent model to dialogue acts (module doc)."""

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        return {}

    def __init__(self, config: dict[str, Any]) -> None:
        self._config = {**self.get_default_config(), **config}

    @classmethod
    def create(cls, config: dict[str, Any], model_storage: ModelStorage, resource: Resource,
               execution_context: ExecutionContext) -> RetrievalFirst:
        return cls(config)

    @classmethod
    def load(cls, config: dict[str, Any], model_storage: ModelStorage, resource: Resource,
             execution_context: ExecutionContext, **kwargs: Any) -> RetrievalFirst:
        """At serving time the indexes are built in the background right away, so the first
        citizen does not wait for an index over thousands of procedures."""
        threading.Thread(target=SOURCES.warm, name="retrieval-warmup", daemon=True).start()
        return cls(config)

    def process(self, messages: list[Message]) -> list[Message]:
        for message in messages:
            text = message.get(TEXT) or ""
            if not text.strip():
                continue
            intent = message.get(INTENT) or {}
            name = str(intent.get("name") or "")
            if settled(name, text, message.get(ENTITIES) or []):
                continue
            try:
                found = retrieve(text, name)
            except Exception:  # the catalog down: the intent model alone still answers acts
                log.exception("retrieval failed; keeping the intent model's decision")
                continue
            found["intent_model"] = {"name": name, "confidence": intent.get("confidence")}
            new = decide(name, text, message.get(ENTITIES) or [], found)
            found["overridden"] = new is not None
            if new is not None:
                confidence = max(_evidence(found), float(intent.get("confidence") or 0.0))
                message.set(INTENT, {"name": new, "confidence": confidence},
                            add_to_output=True)
                ranking = [r for r in message.get(INTENT_RANKING_KEY) or []
                           if r.get("name") != new]
                message.set(INTENT_RANKING_KEY,
                            [{"name": new, "confidence": confidence}, *ranking],
                            add_to_output=True)
            message.set(RETRIEVAL, found, add_to_output=True)
        return messages

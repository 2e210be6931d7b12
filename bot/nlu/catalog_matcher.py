"""Rasa entity extractor that finds catalog procedure names with a spaCy PhraseMatcher.

At training time it reads every procedure's colloquial aliases and short name from the
catalog database and stores them in the model, so a model always carries the catalog it
was trained with. At run time it builds a blank spaCy `vi` pipeline document from the
Underthesea tokens (split into syllables, so a different word segmentation of the same
phrase still matches) with accent-free norms, and matches the folded aliases. A match that
names exactly one procedure becomes a `procedure` entity whose value is the catalog code;
a phrase shared by several procedures ("căn cước") keeps its text and lists the
`candidates`, so the action can ask which one is meant.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from typing import Any

import spacy
from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.constants import TOKENS_NAMES
from rasa.nlu.extractors.extractor import EntityExtractorMixin
from rasa.shared.nlu.constants import ENTITIES, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData
from spacy.matcher import PhraseMatcher
from spacy.tokens import Doc
from spacy.util import filter_spans

from bot.text import fold_words

log = logging.getLogger(__name__)
PATTERNS_FILE = "catalog_patterns.json"
ENTITY = "procedure"


def load_catalog_phrases(database_url: str | None = None) -> dict[str, list[str]]:
    """Folded phrase → procedure codes, from the catalog database (seeded if empty)."""
    from sqlalchemy.orm import selectinload

    from bot.catalog.db import session_scope
    from bot.catalog.models import Procedure
    from bot.catalog.seed import ensure_seeded
    from bot.config import Settings

    url = database_url or Settings.from_env().database_url
    phrases: dict[str, set[str]] = defaultdict(set)
    with session_scope(url) as session:
        ensure_seeded(session)
        # One query for all aliases: the imported catalog has thousands of procedures.
        for p in session.query(Procedure).options(selectinload(Procedure.aliases)).all():
            names = [a.alias for a in p.aliases] + ([p.short_name] if p.short_name else [])
            for name in names:
                key = " ".join(fold_words(name))
                if len(key.split()) >= 1 and len(key) >= 4:
                    phrases[key].add(p.code)
    return {k: sorted(v) for k, v in sorted(phrases.items())}


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.ENTITY_EXTRACTOR, is_trainable=True)
class CatalogProcedureMatcher(GraphComponent, EntityExtractorMixin):
    """Fills the `procedure` entity with a catalog code from alias matches."""

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        return {"database_url": None, "drop_overlapping": True}

    def __init__(
        self,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        phrases: dict[str, list[str]] | None = None,
    ) -> None:
        self._config = {**self.get_default_config(), **config}
        self._model_storage = model_storage
        self._resource = resource
        self.phrases = phrases or {}
        self.nlp = spacy.blank("vi", config={"nlp": {"tokenizer": {"use_pyvi": False}}})
        self.matcher = PhraseMatcher(self.nlp.vocab, attr="NORM")
        for i, phrase in enumerate(self.phrases):
            words = phrase.split()
            self.matcher.add(str(i), [Doc(self.nlp.vocab, words=words)])
        self._keys = list(self.phrases)

    @classmethod
    def create(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> CatalogProcedureMatcher:
        return cls(config, model_storage, resource)

    @classmethod
    def load(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
        **kwargs: Any,
    ) -> CatalogProcedureMatcher:
        try:
            with model_storage.read_from(resource) as directory:
                phrases = json.loads((directory / PATTERNS_FILE).read_text(encoding="utf-8"))
        except (ValueError, FileNotFoundError):
            log.warning("CatalogProcedureMatcher: no stored catalog phrases; matching nothing")
            phrases = {}
        return cls(config, model_storage, resource, phrases)

    def train(self, training_data: TrainingData) -> Resource:
        """Snapshot the catalog's phrases into the model."""
        phrases = load_catalog_phrases(self._config["database_url"])
        with self._model_storage.write_to(self._resource) as directory:
            (directory / PATTERNS_FILE).write_text(
                json.dumps(phrases, ensure_ascii=False), encoding="utf-8"
            )
        return self._resource

    def _syllables(self, message: Message) -> list[tuple[str, int, int]]:
        """(folded syllable, start, end) from the message's Underthesea tokens.

        Matching runs on syllables, not words, so a phrase matches whatever way the
        segmenter grouped its syllables in this particular sentence.
        """
        text = message.get(TEXT) or ""
        out: list[tuple[str, int, int]] = []
        for tok in message.get(TOKENS_NAMES[TEXT]) or []:
            spans = tok.get("syllables") or [[tok.start, tok.end]]
            for start, end in spans:
                for word in fold_words(text[start:end]) or [text[start:end].lower()]:
                    out.append((word, start, end))
        return out

    def extract(self, message: Message) -> list[dict[str, Any]]:
        """Catalog matches in `message` as Rasa entity dicts (longest non-overlapping)."""
        if not self.phrases:
            return []
        sylls = self._syllables(message)
        if not sylls:
            return []
        doc = Doc(self.nlp.vocab, words=[s for s, _, _ in sylls])
        for token in doc:
            token.norm_ = token.text
        spans = [doc[a:b] for _, a, b in self.matcher(doc)]
        ids = {(a, b): self._keys[int(self.nlp.vocab.strings[m])] for m, a, b in self.matcher(doc)}
        text = message.get(TEXT) or ""
        entities = []
        for span in filter_spans(spans):
            start, end = sylls[span.start][1], sylls[span.end - 1][2]
            codes = self.phrases[ids[(span.start, span.end)]]
            value = codes[0] if len(codes) == 1 else text[start:end]
            entities.append({
                "entity": ENTITY, "start": start, "end": end, "value": value,
                "confidence_entity": 1.0, "candidates": codes, "text": text[start:end],
            })
        return entities

    def process(self, messages: list[Message]) -> list[Message]:
        for message in messages:
            found = self.add_extractor_name(self.extract(message))
            existing = message.get(ENTITIES, [])
            if found and self._config["drop_overlapping"]:
                existing = [
                    e for e in existing
                    if e.get("entity") != ENTITY
                    or not any(e["start"] < f["end"] and f["start"] < e["end"] for f in found)
                ]
            message.set(ENTITIES, existing + found, add_to_output=True)
        return messages


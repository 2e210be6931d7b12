"""Rasa entity extractor for receipt codes (mã hồ sơ), with the configurable patterns.

Rasa's RegexEntityExtractor bakes its patterns into the model and matches them literally;
citizens type codes in lower case, with spaces around dashes or with an en dash. This
component uses `bot.status.codes` (the same matcher the action server uses), emits the
canonical code as the entity value, and owns the `receipt_code` entity: DIET's guesses of
it (often a fragment of the code) and any other entity overlapping a code are dropped.
The patterns are read at run time from RECEIPT_CODE_PATTERNS, so adding a province's
code shape needs a restart, not a retraining.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.extractors.extractor import EntityExtractorMixin
from rasa.shared.nlu.constants import ENTITIES, TEXT
from rasa.shared.nlu.training_data.message import Message

from bot.status.codes import CodeMatcher, matcher_for

log = logging.getLogger(__name__)
ENTITY = "receipt_code"


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.ENTITY_EXTRACTOR, is_trainable=False)
class ReceiptCodeExtractor(GraphComponent, EntityExtractorMixin):
    """Fills the `receipt_code` entity with canonical codes found by the configured patterns."""

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        # patterns_file: None = RECEIPT_CODE_PATTERNS (default data/status/receipt_codes.yaml)
        return {"patterns_file": None}

    def __init__(self, config: dict[str, Any]) -> None:
        self._config = {**self.get_default_config(), **config}

    @classmethod
    def create(cls, config: dict[str, Any], model_storage: ModelStorage, resource: Resource,
               execution_context: ExecutionContext) -> ReceiptCodeExtractor:
        return cls(config)

    def _matcher(self) -> CodeMatcher:
        from bot.config import Settings

        path = self._config["patterns_file"] or Settings.from_env().receipt_code_patterns
        return matcher_for(Path(path))

    def extract(self, text: str) -> list[dict[str, Any]]:
        return [{"entity": ENTITY, "start": start, "end": end, "value": code,
                 "confidence_entity": 1.0}
                for code, start, end in self._matcher().find(text)]

    def process(self, messages: list[Message]) -> list[Message]:
        for message in messages:
            found = self.add_extractor_name(self.extract(message.get(TEXT) or ""))
            kept = [
                e for e in message.get(ENTITIES, [])
                if e.get("entity") != ENTITY
                and not any(e.get("start", -1) < f["end"] and f["start"] < e.get("end", -1)
                            for f in found)
            ]
            message.set(ENTITIES, kept + found, add_to_output=True)
        return messages

"""Rasa tokenizer component that segments Vietnamese words with Underthesea.

Each token keeps exact offsets into the original message (so entity annotations align),
its NFC surface as `text`, and a normalised form as `lemma` ("dang_ky"): featurizers read
the lemma, so "dang ky khai sinh" and "đăng ký khai sinh" look alike to the model and the
segmentation survives CountVectorsFeaturizer (which would re-split a text with spaces).
"""

from __future__ import annotations

from typing import Any

from rasa.engine.graph import ExecutionContext
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.tokenizers.tokenizer import Token, Tokenizer
from rasa.shared.nlu.training_data.message import Message

from bot.nlu.segment import segment

LEMMA_MODES = ("folded", "lower")


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.MESSAGE_TOKENIZER, is_trainable=False)
class VietnameseTokenizer(Tokenizer):
    """Underthesea word segmentation with offsets and accent-free lemmas."""

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        """The four keys every Rasa tokenizer needs, plus our lemma mode."""
        return {
            "intent_tokenization_flag": False,
            "intent_split_symbol": "_",
            "token_pattern": None,
            "prefix_separator_symbol": None,
            # "folded": lower-case, accent-free, teencode expanded, syllables joined by "_";
            # "lower": lower-case with diacritics, syllables joined by "_".
            "lemma": "folded",
        }

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        if self._config["lemma"] not in LEMMA_MODES:
            raise ValueError(f"lemma must be one of {LEMMA_MODES}, got {self._config['lemma']!r}")
        self.lemma_mode = self._config["lemma"]

    @classmethod
    def create(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> VietnameseTokenizer:
        return cls(config)

    def tokenize(self, message: Message, attribute: str) -> list[Token]:
        """Split the attribute's text into Vietnamese words (offsets into the raw text)."""
        text = message.get(attribute) or ""
        tokens = []
        for w in segment(text):
            lemma = w.folded if self.lemma_mode == "folded" else "_".join(w.text.lower().split())
            syllables = [[a, b] for a, b in w.syllables]
            tokens.append(Token(w.text, w.start, w.end, data={"syllables": syllables},
                                lemma=lemma))
        return self._apply_token_pattern(tokens)

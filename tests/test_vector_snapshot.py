"""The shipped vector snapshot covers what the shipped indexes embed (no embedding here).

Without it every process of a fresh install embeds thousands of texts before it answers
(minutes on two cores); `python -m bot.vector_snapshot` rebuilds it after the data changed.
"""

from __future__ import annotations

import numpy as np

from bot.catalog.db import session_scope
from bot.catalog.search import CatalogIndex, semantic_texts
from bot.embedding import DIM, text_key
from bot.faq import load_faq
from bot.faq.matcher import FaqIndex
from bot.knowledge import KnowledgeIndex, load_knowledge
from bot.vector_snapshot import SNAPSHOT


def snapshot_keys() -> set[str]:
    with np.load(SNAPSHOT, allow_pickle=False) as data:
        assert data["vectors"].shape[1] == DIM
        assert len(data["keys"]) == len(data["vectors"])
        return {str(k) for k in data["keys"]}


def test_official_qa_and_knowledge_are_covered() -> None:
    keys = snapshot_keys()
    faq = FaqIndex(load_faq(), None).index.semantic_texts()
    know = KnowledgeIndex(load_knowledge(), None).index.semantic_texts()
    missing = [t for t in faq + know if text_key(t) not in keys]
    assert not missing, f"{len(missing)} texts not in {SNAPSHOT.name}, e.g. {missing[:2]}"


def test_the_seed_catalog_is_covered(seeded_db: str) -> None:
    keys = snapshot_keys()
    with session_scope(seeded_db) as s:
        index = CatalogIndex.from_session(s, semantic=False)
    texts = [t for d in index.docs for t in semantic_texts(d)]
    missing = [t for t in texts if text_key(t) not in keys]
    assert not missing, f"{len(missing)} catalog texts not in {SNAPSHOT.name}: {missing[:3]}"

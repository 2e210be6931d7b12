"""The e5 vectors of everything the product ships, written to data/vectors/passages.npz.

Embedding the shipped catalog (~3,200 names and aliases), the official Q&A (~4,000 texts)
and the knowledge file takes minutes on two cores, and every process that builds an index
(gateway, Rasa, action server) would do it on a fresh install before the first answer. The
snapshot is read-only beside the writable cache in var/ (bot.embedding.DEFAULT_CACHE_PATHS),
so they start in seconds; texts that changed since are embedded as usual.

Rebuild it after changing the shipped data or the texts an index embeds:
`.venv/bin/python -m bot.vector_snapshot` (imports the shipped catalog into a temporary
database first; tests/test_vector_snapshot.py checks that the Q&A, the knowledge file and
the seed catalog are covered).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from bot.embedding import DEFAULT_CACHE_PATHS, default_cache, text_key

SNAPSHOT = DEFAULT_CACHE_PATHS[-1]


def shipped_texts(database_url: str) -> list[str]:
    """Every passage the shipped indexes embed: catalog of `database_url`, Q&A, knowledge."""
    from bot import knowledge
    from bot.catalog.db import session_scope
    from bot.catalog.search import CatalogIndex, semantic_texts
    from bot.faq import default_index

    with session_scope(database_url) as s:
        index = CatalogIndex.from_session(s, semantic=False)
    texts = [t for d in index.docs for t in semantic_texts(d)]
    texts += default_index().index.semantic_texts()
    texts += knowledge.default_index().index.semantic_texts()
    return texts


def build(out: Path = SNAPSHOT) -> int:
    """Import the shipped catalog into a temporary database, embed, write `out`."""
    from bot.catalog.db import session_scope
    from bot.catalog.snapshot import load_snapshot
    from bot.config import ROOT

    with tempfile.TemporaryDirectory(prefix="dvc-vectors-") as tmp:
        url = f"sqlite:///{tmp}/catalog.sqlite3"
        with session_scope(url) as s:
            load_snapshot(s, ROOT / "data" / "dvcqg", progress=True)
        texts = shipped_texts(url)
    cache = default_cache()
    cache.vectors(texts, progress=True)
    cache.save(path=out, only={text_key(t) for t in texts})
    print(f"{len(set(texts))} vectors → {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(build())

"""Regenerate data/lexicon/domain_words.txt from the NLU data and the seed catalog.

The accent-free segmenter prefers these words (see `bot.nlu.segment`). `bot train` runs
this first, so a model is always trained with the lexicon that ships beside it.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from bot.config import ROOT
from bot.nlu.segment import DOMAIN_LEXICON, build_domain_lexicon, domain_lexicon

_ANNOTATION = re.compile(r"\[([^\]]+)\]\([^)]*\)")


def source_texts(root: Path = ROOT) -> list[str]:
    """Diacritic texts whose segmentation defines the domain vocabulary."""
    texts: list[str] = []
    for path in sorted((root / "data" / "nlu").glob("*.yml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for item in data.get("nlu") or []:
            for line in str(item.get("examples") or "").splitlines():
                if line.strip().startswith("- "):
                    texts.append(_ANNOTATION.sub(r"\1", line.strip()[2:]))
    for path in sorted((root / "data" / "catalog").glob("*.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for rec in data.get("procedures") or []:
            texts.extend(str(x) for x in [rec.get("name"), rec.get("short_name")] if x)
            texts.extend(str(a) for a in rec.get("aliases") or [])
    return texts


def write_lexicon(path: Path = DOMAIN_LEXICON) -> tuple[Path, int, bool]:
    """Write the lexicon; returns (path, word count, whether the file changed)."""
    words = build_domain_lexicon(source_texts())
    content = "".join(f"{w}\n" for w in words)
    old = path.read_text(encoding="utf-8") if path.exists() else None
    changed = old != content
    if changed:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
        domain_lexicon.cache_clear()
    return path, len(words), changed

"""Training: augmented data, catalog-aware retraining, and locating the newest model.

The NLU sees each diacritic training example twice: as written and accent-stripped, since
a third of citizens type without diacritics (see README "NLU" for the measurement). The
accent-free copies are generated, not committed, so the data in `data/nlu/` stays the
single source of truth.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from bot.config import ROOT, Settings
from bot.text import nfc, strip_accents

AUGMENTED_DIR = ROOT / "var" / "train_data"


def accent_free_copies(nlu_dir: Path = ROOT / "data" / "nlu") -> dict:
    """An NLU document with an accent-free copy of every example that has diacritics."""
    docs = []
    for path in sorted(nlu_dir.glob("*.yml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        docs.extend(item for item in data.get("nlu") or [] if "intent" in item)

    def examples(item: dict) -> list[str]:
        return [nfc(line.strip()[2:]) for line in (item.get("examples") or "").splitlines()
                if line.strip().startswith("- ")]

    # Accent-free lines already written by hand must not be duplicated (Rasa rejects that).
    seen = {e.lower() for item in docs for e in examples(item) if strip_accents(e) == e}
    by_intent: dict[str, list[str]] = {}
    for item in docs:
        for text in examples(item):
            stripped = strip_accents(text)  # same length: entity annotations stay valid
            if stripped == text or stripped.lower() in seen:
                continue
            seen.add(stripped.lower())
            by_intent.setdefault(item["intent"], []).append(stripped)
    return {"version": "3.1", "nlu": [
        {"intent": intent, "examples": "".join(f"- {e}\n" for e in examples)}
        for intent, examples in by_intent.items()
    ]}


def write_augmented(out_dir: Path = AUGMENTED_DIR) -> Path:
    """Write the generated training data (overwritten each time)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "nlu_accent_free.yml"
    path.write_text(yaml.safe_dump(accent_free_copies(), allow_unicode=True, sort_keys=False),
                    encoding="utf-8")
    return path


def catalog_fingerprint(database_url: str) -> str:
    """A hash of the catalog phrases a model would learn (to retrain when they change)."""
    from bot.nlu.catalog_matcher import load_catalog_phrases

    phrases = load_catalog_phrases(database_url)
    return hashlib.sha256(json.dumps(phrases, sort_keys=True).encode()).hexdigest()


def latest_model(models_dir: Path) -> Path | None:
    """The newest `*.tar.gz` model in `models_dir`, if any."""
    models = sorted(models_dir.glob("*.tar.gz"), key=lambda p: p.stat().st_mtime)
    return models[-1] if models else None


def train(settings: Settings, force: bool = False, augment: bool = True,
          config: Path = ROOT / "config.yml", extra_args: list[str] | None = None) -> Path:
    """Train a model into settings.models_dir; returns its path. Raises on failure."""
    from bot.nlu.lexicon import write_lexicon

    settings.models_dir.mkdir(parents=True, exist_ok=True)
    write_lexicon()  # the accent-free segmenter's domain words, from the current data
    fp_file = settings.models_dir / ".catalog_fingerprint"
    fingerprint = catalog_fingerprint(settings.database_url)
    stale = not fp_file.exists() or fp_file.read_text().strip() != fingerprint
    data = [str(ROOT / "data")]
    if augment:
        data.append(str(write_augmented().parent))
    cmd = [sys.executable, "-m", "rasa", "train", "--config", str(config),
           "--domain", str(ROOT / "domain.yml"), "--data", *data,
           "--out", str(settings.models_dir)]
    if force or stale:
        cmd.append("--force")
    cmd += extra_args or []
    env = dict(os.environ, DATABASE_URL=settings.database_url)
    subprocess.run(cmd, check=True, cwd=ROOT, env=env)
    fp_file.write_text(fingerprint)
    model = latest_model(settings.models_dir)
    if model is None:
        raise RuntimeError("rasa train finished but no model was written")
    return model

"""Training: augmented data, catalog-aware retraining, and locating the newest model.

The NLU sees each diacritic training example twice: as written and accent-stripped, since
a third of citizens type without diacritics (see README "NLU" for the measurement). The
accent-free copies are generated, not committed, so the data in `data/nlu/` stays the
single source of truth for what is reviewed; the operators' corrections stored by the
console in the database (bot.console.corrections) are added beside it until they are
exported into `data/nlu/corrections.yml` and committed.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import yaml

from bot.config import ROOT, Settings
from bot.native_threads import unlimited_env
from bot.text import nfc, strip_accents

AUGMENTED_DIR = ROOT / "var" / "train_data"
NLU_DIR = ROOT / "data" / "nlu"
ACCENT_FREE = "nlu_accent_free.yml"
STORED_CORRECTIONS = "nlu_corrections_stored.yml"


def accent_free_copies(nlu_dir: Path = NLU_DIR, extra: Sequence[Path] = ()) -> dict:
    """An NLU document with an accent-free copy of every example that has diacritics, of
    the files of `nlu_dir` and the `extra` files (the stored corrections)."""
    docs = []
    for path in sorted(nlu_dir.glob("*.yml")) + list(extra):
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


def write_augmented(out_dir: Path = AUGMENTED_DIR, extra: Sequence[Path] = ()) -> Path:
    """Write the generated training data (overwritten each time)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / ACCENT_FREE
    path.write_text(yaml.safe_dump(accent_free_copies(NLU_DIR, extra), allow_unicode=True,
                                   sort_keys=False), encoding="utf-8")
    return path


def pending_corrections(database_url: str, nlu_dir: Path = NLU_DIR) -> str | None:
    """The console's corrections in the database that no file of `nlu_dir` holds yet, as a
    Rasa NLU file; None when there are none. Without them, a correction made on one gateway
    replica would never reach a model."""
    from bot.catalog.db import session_scope
    from bot.console.corrections import pending_document

    with session_scope(database_url) as s:
        return pending_document(s, nlu_dir)


def write_stored_corrections(database_url: str, out_dir: Path) -> Path | None:
    """Write `pending_corrections` into `out_dir` (a stale file is removed when none)."""
    path = out_dir / STORED_CORRECTIONS
    document = pending_corrections(database_url)
    if document is None:
        path.unlink(missing_ok=True)
        return None
    out_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(document, encoding="utf-8")
    return path


def training_data(settings: Settings, augment: bool = True) -> list[str]:
    """The `--data` folders of a training: the shipped data, and the generated folder with
    the stored corrections and (with `augment`) the accent-free copies of everything."""
    out_dir = AUGMENTED_DIR
    stored = write_stored_corrections(settings.database_url, out_dir)
    extra = [stored] if stored else []
    if augment:
        write_augmented(out_dir, extra)
    else:
        (out_dir / ACCENT_FREE).unlink(missing_ok=True)
    return [str(ROOT / "data")] + ([str(out_dir)] if augment or stored else [])


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
    data = training_data(settings, augment)
    cmd = [sys.executable, "-m", "rasa", "train", "--config", str(config),
           "--domain", str(ROOT / "domain.yml"), "--data", *data,
           "--out", str(settings.models_dir)]
    if force or stale:
        cmd.append("--force")
    cmd += extra_args or []
    env = unlimited_env(dict(os.environ, DATABASE_URL=settings.database_url))
    subprocess.run(cmd, check=True, cwd=ROOT, env=env)
    fp_file.write_text(fingerprint)
    model = latest_model(settings.models_dir)
    if model is None:
        raise RuntimeError("rasa train finished but no model was written")
    return model

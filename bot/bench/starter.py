"""Rasa's own starter bot (`rasa init`), the benchmark's yardstick.

The project is the one `rasa init` writes (copied from Rasa's `initial_project` folder in
site-packages, then `rasa train`, which is all `rasa init --no-prompt` does), trained once
and cached under var/bench/: its model depends only on the Rasa version, and the training
time measured then is kept beside it so every report can show it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bot.config import ROOT

CACHE_ROOT = ROOT / "var" / "bench"


def rasa_version() -> str:
    from importlib.metadata import version

    return version("rasa")


@dataclass(frozen=True)
class StarterBot:
    """A trained starter project: where it is and what training it cost."""

    directory: Path
    model: Path
    train_s: float
    cached: bool


def _initial_project() -> Path:
    import rasa.cli

    return Path(rasa.cli.__file__).parent / "initial_project"


def prepare(cache_root: Path = CACHE_ROOT, log=print) -> StarterBot:  # noqa: ANN001
    """The cached starter bot, creating and training it (timed) if it is not there yet."""
    directory = cache_root / f"starter-rasa-{rasa_version()}"
    meta_file = directory / "bench-train.json"
    models = sorted((directory / "models").glob("*.tar.gz")) if directory.exists() else []
    if meta_file.exists() and models:
        meta = json.loads(meta_file.read_text())
        return StarterBot(directory, models[-1], float(meta["train_s"]), cached=True)
    if directory.exists():
        shutil.rmtree(directory)  # an interrupted earlier attempt
    shutil.copytree(_initial_project(), directory)
    log(f"Huấn luyện bot mẫu của Rasa (rasa init) trong {directory} — chỉ lần đầu...")
    started = time.perf_counter()
    with open(directory / "train.log", "wb") as out:
        done = subprocess.run(
            [sys.executable, "-m", "rasa", "train", "--out", "models"],
            cwd=directory, stdout=out, stderr=subprocess.STDOUT, check=False)
    train_s = time.perf_counter() - started
    models = sorted((directory / "models").glob("*.tar.gz"))
    if done.returncode != 0 or not models:
        tail = (directory / "train.log").read_text(errors="replace")[-2000:]
        raise RuntimeError(f"training Rasa's starter bot failed:\n{tail}")
    meta_file.write_text(json.dumps({"train_s": round(train_s, 1),
                                     "rasa": rasa_version()}))
    return StarterBot(directory, models[-1], round(train_s, 1), cached=False)


def start(bot: StarterBot, port: int, log_file: Path) -> subprocess.Popen:
    """`rasa run --enable-api` on the starter's model, as its README says to serve it."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    out = open(log_file, "ab")  # noqa: SIM115 - owned by the child
    return subprocess.Popen(
        [sys.executable, "-m", "rasa", "run", "--enable-api", "--model", str(bot.model),
         "--port", str(port), "--interface", "127.0.0.1"],
        cwd=bot.directory, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

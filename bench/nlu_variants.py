"""Compare NLU variants (token normalisation x augmentation) on an evaluation set.

Trains each variant into a temporary folder with the same data, seed and catalog, then runs
`bot evaluate` on it, and prints a Markdown table of the results. This is how the choice in
config.yml (folded lemma + accent-free copies) was measured; see README "NLU".

    .venv/bin/python bench/nlu_variants.py [--data ../shared/eval/citizen_dev.jsonl]
        [--variants shipped,lower,no-augment]

Each variant trains a full model (about 5 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
VARIANTS = {
    "shipped": {"lemma": "folded", "augment": True,
                "label": "folded lemma + accent-free copies (shipped)"},
    "lower": {"lemma": "lower", "augment": True,
              "label": "lower-case lemma with diacritics + accent-free copies"},
    "no-augment": {"lemma": "folded", "augment": False,
                   "label": "folded lemma, no accent-free copies"},
}


def variant_config(lemma: str, out: Path) -> Path:
    config = yaml.safe_load((ROOT / "config.yml").read_text(encoding="utf-8"))
    for comp in config["pipeline"]:
        if comp["name"].endswith("VietnameseTokenizer"):
            comp["lemma"] = lemma
    out.write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return out


def run_variant(name: str, data: Path, work: Path) -> dict:
    spec = VARIANTS[name]
    vdir = work / name
    vdir.mkdir(parents=True)
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{vdir / 'catalog.sqlite3'}",
           "MODELS_DIR": str(vdir / "models")}
    cmd = [sys.executable, "-m", "bot", "train", "--force",
           "--config", str(variant_config(spec["lemma"], vdir / "config.yml"))]
    if not spec["augment"]:
        cmd.append("--no-augment")
    print(f"[{name}] training...", file=sys.stderr, flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
    model = sorted((vdir / "models").glob("*.tar.gz"))[-1]
    print(f"[{name}] evaluating...", file=sys.stderr, flush=True)
    out = subprocess.run([sys.executable, "-m", "bot", "evaluate", "--data", str(data),
                          "--model", str(model)], check=True, cwd=ROOT, env=env,
                         capture_output=True, text=True)
    report = json.loads(out.stdout)
    report["variant"] = spec["label"]
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "eval" /
                                              "citizen_dev.jsonl"))
    parser.add_argument("--variants", default=",".join(VARIANTS),
                        help=f"comma-separated, from {', '.join(VARIANTS)}")
    args = parser.parse_args()
    names = [v for v in args.variants.split(",") if v]
    unknown = [v for v in names if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variants: {', '.join(unknown)}")
    with tempfile.TemporaryDirectory(prefix="nlu-variants-") as tmp:
        reports = [run_variant(n, Path(args.data), Path(tmp)) for n in names]
    print("| variant | intent accuracy | with diacritics | without | procedure answered right "
          "| answered or offered |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in reports:
        d = r["intent_accuracy_by_diacritics"]
        print(f"| {r['variant']} | {r['intent_accuracy']:.3f} | {d.get('with', 0):.3f} | "
              f"{d.get('without', 0):.3f} | {r['procedure_answered_correctly']:.3f} | "
              f"{r['procedure_answered_or_offered']:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

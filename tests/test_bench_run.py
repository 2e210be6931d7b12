"""`bot bench` end to end, on short loads: the real stack, the real starter bot (trained once
and cached in var/bench/), the real evaluations. The numbers are not judged here (a test
machine is noisy; README "Performance" has a full run); what is checked is that every
measurement the issue asks for is taken, consistent, and written down."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.config import ROOT

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REQUIRED = ("p50_ms", "p95_ms", "starter_p50_ms", "starter_p95_ms", "gateway_overhead_ratio",
            "rss_mb", "starter_rss_mb", "ready_s", "starter_ready_s", "msgs_per_s",
            "intent_acc", "faq_top3")


def test_bench_measures_everything_and_writes_it_down(trained, tmp_path: Path) -> None:  # noqa: ANN001
    _, model = trained
    out = tmp_path / "results"
    done = subprocess.run(
        [sys.executable, "-m", "bot", "bench", "--json", "--model", str(model),
         "--levels", "1,3", "--headline", "3", "--duration", "3", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=1500,
        env={**os.environ, "CATALOG_SNAPSHOT": ""})  # the session model knows the seed only
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)  # stdout is one JSON object, nothing else

    for key in REQUIRED:
        assert isinstance(report[key], (int, float)), (key, report[key])
    assert report["errors"] == 0, [r["error_samples"] for r in report["loads"]]
    runs = {(r["target"], r["concurrency"]) for r in report["loads"]}
    assert runs == {(t, c) for t in ("starter", "gateway", "rasa") for c in (1, 3)}
    assert all(r["messages"] > 0 and r["p50_ms"] <= r["p95_ms"] <= r["p99_ms"]
               for r in report["loads"])

    # the headline numbers are the level-3 runs, and the ratios are theirs
    gateway3 = next(r for r in report["loads"] if r["target"] == "gateway"
                    and r["concurrency"] == 3)
    direct3 = next(r for r in report["loads"] if r["target"] == "rasa" and r["concurrency"] == 3)
    assert report["p50_ms"] == gateway3["p50_ms"]
    assert report["gateway_overhead_ratio"] == round(gateway3["p50_ms"] / direct3["p50_ms"], 3)
    assert report["ratios"]["p95_ratio"] == round(report["p95_ms"] / report["starter_p95_ms"], 3)

    # memory of each of our processes, and CPU per run
    assert set(report["rss_by_process_mb"]) == {"actions", "rasa", "gateway", "total"}
    assert all(v > 20 for v in report["rss_by_process_mb"].values())
    assert report["starter_rss_mb"] > 100
    assert report["cpu_cores"]["gateway@3"]["rasa"] > 0

    # quality from the evaluation commands, on the shared development sets
    assert 0.5 < report["intent_acc"] <= 1 and 0.3 < report["faq_top3"] <= 1
    assert report["quality"]["faq_questions"] > 300

    assert report["starter_train_s"] > 0 and report["train_s"] is None  # model was given
    files = list(out.glob("*.json"))
    assert len(files) == 1
    saved = json.loads(files[0].read_text(encoding="utf-8"))
    assert saved["p50_ms"] == report["p50_ms"] and saved["workload"]["levels"] == [1, 3]


def test_bench_refuses_bad_arguments_clearly() -> None:
    for args, message in ((["--levels", "1,x"], "1,10,50"), (["--levels", "0"], "từ 1"),
                          (["--headline", "7"], "--headline 7"),
                          (["--model", "/nope.tar.gz"], "Không thấy mô hình")):
        done = subprocess.run([sys.executable, "-m", "bot", "bench", *args], cwd=ROOT,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 2 and message in done.stderr, (args, done.stderr)

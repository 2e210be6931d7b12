"""Native thread pools of the serving processes (bot/native_threads.py).

Each check runs in a fresh interpreter: the pools are per process and a limit, once set,
would also slow the test run itself.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.config import Settings
from bot.native_threads import ENV_VARS

ROOT = Path(__file__).resolve().parent.parent


def _python(code: str, **env: str) -> dict:
    base = {k: v for k, v in os.environ.items() if k not in (*ENV_VARS, "NATIVE_THREADS")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**base, **env}, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


BLAS_THREADS = f"""
import json, os, threadpoolctl
blas = [p["num_threads"] for p in threadpoolctl.threadpool_info() if p["user_api"] == "blas"]
print(json.dumps({{"blas": blas, "env": {{k: os.environ.get(k) for k in {ENV_VARS!r}}}}}))
"""


def test_the_gateway_limits_numpy_already_loaded() -> None:
    """`bot gateway` imports numpy before it can set any variable: threadpoolctl limits
    the loaded OpenBLAS, and the variables are there for the libraries loaded later."""
    got = _python("import numpy\nimport bot.gateway.app as app\nimport bot.cli as cli\n"
                  "app.run_gateway = lambda settings: None\n"
                  "cli.cmd_gateway(None, cli.Settings.from_env())\n" + BLAS_THREADS)
    assert got["blas"] and set(got["blas"]) == {1}
    assert set(got["env"].values()) == {"1"}


def test_rasa_serving_sets_tensorflow_pools_but_training_does_not() -> None:
    def probe(command: str) -> str:
        return ("import sys, rasa.__main__ as rm, bot.rasa_runtime as rr\n"
                f"rm.main = lambda: None\nsys.argv = ['rasa', {command!r}, '--model', 'x']\n"
                "rr.main()\n" + BLAS_THREADS)

    served = _python(probe("run"))
    assert served["env"]["TF_INTRA_OP_PARALLELISM_THREADS"] == "1"
    assert served["env"]["TF_INTER_OP_PARALLELISM_THREADS"] == "1"
    assert set(served["blas"]) == {1}  # set before numpy loaded: OpenBLAS read it
    trained = _python(probe("train"))
    assert set(trained["env"].values()) == {None}


def test_the_operator_and_zero_win() -> None:
    mine = _python("from bot.native_threads import limit_native_threads\n"
                   "limit_native_threads(1)\n" + BLAS_THREADS, OPENBLAS_NUM_THREADS="2")
    assert mine["env"]["OPENBLAS_NUM_THREADS"] == "2" and mine["env"]["OMP_NUM_THREADS"] == "1"
    none = _python("from bot.native_threads import limit_native_threads\n"
                   "limit_native_threads(0)\n" + BLAS_THREADS)
    assert set(none["env"].values()) == {None}


def test_the_setting() -> None:
    assert Settings.from_env({}).native_threads == 1
    assert Settings.from_env({"NATIVE_THREADS": "0"}).native_threads == 0
    with pytest.raises(SystemExit, match="NATIVE_THREADS"):
        Settings.from_env({"NATIVE_THREADS": "-1"})


def test_a_training_started_by_a_serving_process_uses_every_core() -> None:
    """The console trains from the gateway: the child drops the pool sizes the gateway set
    for itself, and keeps one the operator set."""
    got = _python("import json, os\nfrom bot.native_threads import limit_native_threads, "
                  "unlimited_env\nlimit_native_threads(1)\n"
                  "print(json.dumps(unlimited_env(dict(os.environ))))",
                  OMP_NUM_THREADS="3")
    assert got["OMP_NUM_THREADS"] == "3"
    assert not set(got) & (set(ENV_VARS) - {"OMP_NUM_THREADS"})

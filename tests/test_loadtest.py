"""`bot loadtest` end to end, on short loads: the machine's PostgreSQL, a private Redis,
2 Rasa replicas and 2 action servers; load, a replica killed, the action servers killed,
Redis stopped, and the machine's PostgreSQL restarted (`PG_RESTART_CMD`, by default
Debian's `pg_ctlcluster … restart`). It fails (never skips) when PostgreSQL or
redis-server is missing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from bot.config import ROOT


def test_loadtest_passes_and_reports_its_figures(trained, tmp_path: Path) -> None:
    _, model = trained
    clusters = sorted(Path("/etc/postgresql").glob("*/main"))
    restart = os.environ.get("PG_RESTART_CMD") or (
        f"pg_ctlcluster --skip-systemctl-redirect {clusters[0].parent.name} main restart"
        if clusters else "")
    assert restart, "set PG_RESTART_CMD to a command that restarts this PostgreSQL"
    proc = subprocess.run(
        [sys.executable, "-m", "bot", "loadtest", "--model", str(model), "--conversations",
         "12", "--duration", "8", "--fault-conversations", "6", "--json",
         "--out", str(tmp_path), "--restart-postgres", restart],
        cwd=ROOT, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["ok"] and [p["name"] for p in report["phases"]] == [
        "load", "rasa replica killed", "action servers killed", "redis down",
        "postgresql restarted"]
    load = report["phases"][0]["load"]
    assert load["errors"] == 0 and load["messages"] > 12 and load["p95_ms"] > 0
    assert all(all(p["checks"].values()) for p in report["phases"])
    [written] = tmp_path.glob("loadtest-*.json")
    assert json.loads(written.read_text(encoding="utf-8"))["run"] == report["run"]

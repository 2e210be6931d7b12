"""`bot loadtest`: the scaled-out profile under load and under faults, with its figures.

On this machine's PostgreSQL (a throw-away database, seeded, dropped afterwards) and a
private `redis-server` (so it can be stopped), it starts 2 Rasa replicas and 2 action
servers behind the gateway (bot.stack, as `bot run` does) and then:

1. **load**: `--conversations` closed-loop users (200) for `--duration` seconds (60) through
   the gateway with the benchmark's Vietnamese conversations; zero errors required; p50,
   p95, p99 and messages/s reported; then every user message is looked up in PostgreSQL's
   `events` and must have exactly one bot turn (one `action_listen` after it).
2. **faults**, each under a lighter load (`--fault-conversations`, 40):
   a Rasa replica killed with SIGKILL (no error allowed: its conversations move), then
   restarted; both action servers killed (answers in that window must be the apology, the
   next message after the restart a real answer); Redis stopped (degraded mode: answers go
   on, /healthz says degraded), then started; optionally PostgreSQL restarted with
   `--restart-postgres "CMD"` (messages during the restart may get the apology; none may
   be answered twice or lost after it was answered).
Every phase ends with the one-turn-per-message count in PostgreSQL. Exit 0 only when all
checks pass; `--json` prints the report, which is also written to bench/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine.url import make_url

from bot.bench.load import Target, gateway_answered, gateway_payload, run_load
from bot.config import ROOT, Settings
from bot.scratch_db import DEFAULT_ADMIN_URL, scratch_postgres

if TYPE_CHECKING:
    from bot.bench.runner import Workload

APOLOGY = "Xin lỗi, hệ thống trợ lý đang bận"
# Answered by a custom action (the catalog), so it needs the action servers.
ACTION_QUESTION = "đăng ký khai sinh cần giấy tờ gì"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def consecutive_ports(n: int) -> int:
    """A port p with p .. p+n-1 all free (local replicas listen on consecutive ports)."""
    for _ in range(200):
        start, socks = _port(), []
        try:
            for i in range(n):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", start + i))
            return start
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no consecutive free ports")


def _say(message: str) -> None:
    print(f"[loadtest] {message}", file=sys.stderr, flush=True)


class PrivateRedis:
    """A redis-server of this run on a free loopback port (stoppable without harm)."""

    def __init__(self) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            raise SystemExit("redis-server not found (Debian package redis-server)")
        self.exe, self.port = exe, _port()
        self.dir = tempfile.mkdtemp(prefix="dvc-redis-")
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.dir],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(100):
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def bot_turns(url: str, prefix: str) -> tuple[int, dict[int, int]]:
    """(user messages of senders starting with `prefix`, {bot turns after one: how many
    user messages}) from Rasa's `events` in PostgreSQL."""
    engine = create_engine(url, future=True)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text(
                "SELECT sender_id, type_name, action_name FROM events "
                "WHERE sender_id LIKE :p ORDER BY sender_id, timestamp, id"),
                {"p": prefix + "%"}).all()
    finally:
        engine.dispose()
    per_message: list[int] = []
    last_sender = None
    for sender, kind, action in rows:
        if sender != last_sender:
            last_sender = sender
            current: list[int] = []
        if kind == "user":
            per_message.append(0)
            current.append(len(per_message) - 1)
        elif kind == "action" and action == "action_listen" and current:
            per_message[current[-1]] += 1
    histogram: dict[int, int] = {}
    for n in per_message:
        histogram[n] = histogram.get(n, 0) + 1
    return len(per_message), histogram


@dataclass
class Phase:
    name: str
    load: dict[str, Any]
    checks: dict[str, bool] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(self.checks.values())


def _load_in_background(target: Target, conversations: list[list[str]], n: int,
                        duration: float, run_id: str) -> tuple[threading.Thread, dict]:
    box: dict[str, Any] = {}

    def work() -> None:
        box["result"] = asyncio.run(run_load(target, conversations, n, duration, run_id))

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread, box


def _during_load(target: Target, conversations: list[list[str]], n: int, duration: float,
                 run_id: str, actions: list[tuple[float, Callable[[], None]]]
                 ) -> dict[str, Any]:
    """Run load for `duration` s and the (at seconds, action) faults during it."""
    thread, box = _load_in_background(target, conversations, n, duration, run_id)
    started = time.monotonic()
    for at, action in actions:
        time.sleep(max(0.0, started + at - time.monotonic()))
        action()
    thread.join()
    return box["result"].summary()


def _chat(settings: Settings, sender: str, message: str) -> tuple[int, str]:
    import urllib.error
    import urllib.request

    req = urllib.request.Request(
        f"http://{settings.bot_host}:{settings.bot_port}/api/v1/chat",
        data=json.dumps({"sender": sender, "text": message}).encode(),
        headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            body = json.loads(resp.read())
            return resp.status, " ".join(m["text"] for m in body.get("messages", []))
    except urllib.error.HTTPError as exc:
        body = json.loads(exc.read())
        return exc.code, " ".join(m["text"] for m in body.get("messages", []))


def _healthz(settings: Settings) -> dict[str, Any]:
    """/healthz with its checks' details: as monitoring asks, with HEALTH_TOKEN."""
    import urllib.error
    import urllib.request

    req = urllib.request.Request(f"http://{settings.bot_host}:{settings.bot_port}/healthz",
                                 headers={"Authorization": f"Bearer {settings.health_token}"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return json.loads(exc.read())


def _run_phases(args: argparse.Namespace, model: Path, url: str, run_id: str,
                workload: Workload) -> list[Phase]:
    """Start the scaled-out stack on `url`, run the load and then the fault phases."""
    from bot.stack import Stack

    conversations = [list(c) for c in workload.conversations_for("ours")]
    name = make_url(url).database
    redis = PrivateRedis()
    redis.start()
    stack: Stack | None = None
    phases: list[Phase] = []
    try:
        settings = Settings.from_env({
            "DATABASE_URL": url, "REDIS_URL": redis.url, "RASA_REPLICAS": "2",
            "ACTIONS_REPLICAS": "2", "RASA_PORT": str(consecutive_ports(2)),
            "ACTIONS_PORT": str(consecutive_ports(2)), "BOT_PORT": str(_port()),
            "MODELS_DIR": str(model.parent), "RATE_LIMIT_PER_MINUTE": "0",
            "RATE_LIMIT_ADDRESS_PER_MINUTE": "0", "RASA_TIMEOUT": "60",
            "LOG_LEVEL": "WARNING", "HEALTH_TOKEN": uuid.uuid4().hex})
        stack = Stack(settings, model, log_dir=ROOT / "var" / "loadtest" / run_id)
        _say(f"starting 2 Rasa replicas, 2 action servers and the gateway on {name}")
        started = time.monotonic()
        stack.start(timeout=300)
        _say(f"ready in {time.monotonic() - started:.0f} s; warming up")
        target = Target("gateway", f"http://{settings.bot_host}:{settings.bot_port}"
                        "/api/v1/chat", gateway_payload, gateway_answered)
        asyncio.run(run_load(target, conversations, 4, 5, f"warm{run_id}"))

        _say(f"load: {args.conversations} conversations for {args.duration:g} s")
        prefix = f"bench-load{run_id}"
        summary = asyncio.run(run_load(target, conversations, args.conversations,
                                       args.duration, f"load{run_id}"))
        summary = summary.summary()
        messages, histogram = bot_turns(url, prefix)
        phase = Phase("load", summary)
        phase.checks["zero errors"] = summary["errors"] == 0
        phase.checks["every answered message stored"] = messages == summary["messages"]
        phase.checks["one bot turn per user message"] = set(histogram) <= {1}
        phase.notes.append(f"{messages} user messages in PostgreSQL, turns {histogram}")
        phases.append(phase)

        if not args.no_faults:
            phases.extend(_faults(args, stack, settings, target, conversations, url, redis,
                                  run_id))
    finally:
        if stack is not None:
            stack.stop()
        redis.stop()
    return phases


def run_loadtest(args: argparse.Namespace) -> dict[str, Any]:
    from bot.bench.runner import load_workload
    from bot.catalog.db import session_scope
    from bot.catalog.seed import load_seed
    from bot.registry.registry import active_model

    model: Path | None = args.model or active_model(Settings.from_env())
    if model is None or not model.is_file():
        raise SystemExit("no model: train one (bot train) or pass --model PATH")
    run_id = uuid.uuid4().hex[:6]
    with scratch_postgres(args.admin_url, "dvc_load", keep=args.keep_database) as url:
        with session_scope(url) as s:
            load_seed(s)
        phases = _run_phases(args, model, url, run_id, load_workload())
    return {"run": run_id, "model": model.name, "replicas": 2, "action_servers": 2,
            "ok": all(p.ok for p in phases),
            "phases": [{"name": p.name, "ok": p.ok, "checks": p.checks, "notes": p.notes,
                        "load": p.load} for p in phases]}


def _faults(args: argparse.Namespace, stack: Any, settings: Settings, target: Target,
            conversations: list[list[str]], url: str, redis: PrivateRedis,
            run_id: str) -> list[Phase]:
    n, phases = args.fault_conversations, []

    _say("fault: a Rasa replica killed (SIGKILL) under load, restarted after")
    tag = f"kill{run_id}"
    summary = _during_load(target, conversations, n, 20, tag,
                           [(5, lambda: stack.kill("rasa-2"))])
    restart_started = time.monotonic()
    stack.restart("rasa-2", timeout=300)
    messages, histogram = bot_turns(url, f"bench-{tag}")
    phase = Phase("rasa replica killed", summary)
    phase.checks["zero errors"] = summary["errors"] == 0
    phase.checks["every answered message stored"] = messages == summary["messages"]
    phase.checks["one bot turn per user message"] = set(histogram) <= {1}
    phase.notes.append(f"replica back in {time.monotonic() - restart_started:.0f} s; "
                       f"turns {histogram}")
    phases.append(phase)

    _say("fault: both action servers killed, then restarted")
    sender = f"bench-actions{run_id}"
    for name in ("actions", "actions-2"):
        stack.kill(name)
    status_down, said_down = _chat(settings, sender, ACTION_QUESTION)
    for name in ("actions", "actions-2"):
        stack.restart(name)
    status_up, said_up = _chat(settings, sender, ACTION_QUESTION)
    phase = Phase("action servers killed", {"down": [status_down, said_down[:120]],
                                            "after": [status_up, said_up[:120]]})
    phase.checks["apology while down"] = APOLOGY in said_down
    phase.checks["real answer after restart"] = (status_up == 200 and APOLOGY not in said_up
                                                 and "Hồ sơ" in said_up)
    phases.append(phase)

    _say("fault: Redis stopped under load (degraded mode), then started")
    tag = f"redis{run_id}"
    health: dict[str, Any] = {}
    summary = _during_load(target, conversations, n, 20, tag, [
        (5, redis.stop), (8, lambda: health.update(_healthz(settings))),
        (15, redis.start)])
    messages, histogram = bot_turns(url, f"bench-{tag}")
    phase = Phase("redis down", summary)
    phase.checks["zero errors"] = summary["errors"] == 0
    phase.checks["every answered message stored"] = messages == summary["messages"]
    phase.checks["healthz says degraded"] = (
        health.get("status") == "degraded"
        and health.get("checks", {}).get("lock_store", {}).get("ok") is False)
    phase.checks["one bot turn per user message"] = set(histogram) <= {1}
    phase.notes.append(f"turns {histogram}")
    phases.append(phase)

    if args.restart_postgres:
        _say(f"fault: PostgreSQL restarted under load ({args.restart_postgres})")
        tag = f"pg{run_id}"

        def restart_pg() -> None:
            subprocess.run(args.restart_postgres, shell=True, check=False, timeout=120)  # noqa: S602

        # An apology is not an answer here: only real answers must all be stored.
        strict = Target(target.name, target.url, target.payload,
                        lambda d: gateway_answered(d) and APOLOGY not in json.dumps(
                            d, ensure_ascii=False))
        summary = _during_load(strict, conversations, n, 25, tag, [(5, restart_pg)])
        time.sleep(3)
        status, said = _chat(settings, f"bench-pgafter{run_id}", ACTION_QUESTION)
        messages, histogram = bot_turns(url, f"bench-{tag}")
        phase = Phase("postgresql restarted", summary)
        phase.checks["answers after the restart"] = status == 200 and APOLOGY not in said
        phase.checks["no message answered twice"] = all(k <= 1 for k in histogram)
        phase.checks["every answered message stored"] = (
            histogram.get(1, 0) >= summary["messages"])
        phase.notes.append(f"{summary['errors']} messages got the apology (or no answer) "
                           f"during the restart; turns {histogram}")
        phases.append(phase)
    return phases


def format_report(report: dict[str, Any]) -> str:
    lines = [f"loadtest {report['run']}: model {report['model']}, 2 Rasa replicas, "
             "2 action servers, PostgreSQL, Redis"]
    for p in report["phases"]:
        load = p["load"]
        figures = ""
        if "p95_ms" in load:
            figures = (f" — {load['concurrency']} conversations, {load['messages']} messages, "
                       f"{load['errors']} errors, p50 {load['p50_ms']} ms, p95 "
                       f"{load['p95_ms']} ms, {load['msgs_per_s']} msg/s")
        lines.append(f"[{'PASS' if p['ok'] else 'FAIL'}] {p['name']}{figures}")
        for check, ok in p["checks"].items():
            lines.append(f"    {'ok ' if ok else 'NO '} {check}")
        lines.extend(f"    · {n}" for n in p["notes"])
    lines.append("PASS" if report["ok"] else "FAIL")
    return "\n".join(lines)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "loadtest", help="the scaled-out profile under load and faults (README Scaling out)",
        description="Start 2 Rasa replicas + 2 action servers + the gateway on a throw-away "
        "PostgreSQL database and a private redis-server, run N concurrent conversations, "
        "count one bot turn per user message in PostgreSQL, then kill a replica, the action "
        "servers and Redis under load. Exit 1 when a check fails.")
    p.add_argument("--model", type=Path, help="model file (default: the active model)")
    p.add_argument("--conversations", type=int, default=200,
                   help="concurrent conversations in the load phase (default 200)")
    p.add_argument("--duration", type=float, default=60.0,
                   help="seconds of the load phase (default 60)")
    p.add_argument("--fault-conversations", type=int, default=40,
                   help="concurrent conversations while faults happen (default 40)")
    p.add_argument("--no-faults", action="store_true", help="only the load phase")
    p.add_argument("--restart-postgres", metavar="CMD", default="",
                   help="also restart PostgreSQL under load with this shell command, e.g. "
                   "\"pg_ctlcluster --skip-systemctl-redirect 15 main restart\"")
    p.add_argument("--admin-url", default=DEFAULT_ADMIN_URL,
                   help="PostgreSQL URL that may create databases (default: local postgres)")
    p.add_argument("--keep-database", action="store_true", help="do not drop it afterwards")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--out", type=Path, help="folder for the JSON report (default bench/results)")
    p.set_defaults(func=cmd_loadtest)


def cmd_loadtest(args: argparse.Namespace, settings: Settings) -> int:
    if args.conversations < 1 or args.fault_conversations < 1 or args.duration <= 0:
        print("--conversations, --fault-conversations and --duration must be positive",
              file=sys.stderr)
        return 2
    report = run_loadtest(args)
    out = args.out or ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"loadtest-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(report, ensure_ascii=False, indent=2), encoding="utf-8")
    print(json.dumps(report, ensure_ascii=False) if args.json else format_report(report))
    _say(f"report written to {path}")
    return 0 if report["ok"] else 1

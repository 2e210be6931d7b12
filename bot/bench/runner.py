"""`bot bench`: the whole assistant against Rasa's starter bot, measured in one run.

Order of work, chosen so that nothing timed shares the CPU with anything else we start:
clean state (fresh database, catalog as on a first start, status records) → our training
(timed) → the starter bot (trained once, cached) → start-to-ready of the starter, then of
our stack → the closed-loop workloads, interleaved per concurrency level (starter, our
gateway, our Rasa directly) so that machine noise hits all three alike → memory → the
quality evaluations.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from bot.bench import procs
from bot.bench.load import (
    LoadResult,
    Target,
    gateway_answered,
    gateway_payload,
    rasa_answered,
    rasa_payload,
    run_load,
    send_once,
)
from bot.config import ROOT, Settings

WORKLOAD = ROOT / "bench" / "workload.yaml"
RESULTS_DIR = ROOT / "bench" / "results"
QUALITY_FLOOR = ROOT / "bench" / "quality_floor.json"
SHARED = ROOT.parent / "shared"
CITIZEN_EVAL = SHARED / "eval" / "citizen_dev.jsonl"
FAQ_EVAL = SHARED / "data" / "dvcqg" / "faq_dev.jsonl"
NATIONAL_CATALOG = SHARED / "data" / "dvcqg" / "procedures_2026-06.jsonl.gz"

# The targets, as ratios of the starter bot measured in the same run.
TARGETS = {
    "p50_ratio": 1.0, "p95_ratio": 1.0, "gateway_overhead_ratio": 1.10,
    "rss_ratio": 1.2, "ready_ratio": 1.0,
}


@dataclass(frozen=True)
class BenchOptions:
    """What `bot bench` measures and how long each load runs."""

    levels: tuple[int, ...] = (1, 10, 50)
    headline: int = 10  # the concurrency whose latencies are compared with the targets
    duration: float = 10.0  # seconds of load per target and level
    rounds: int = 5  # the duration is split into this many slices, targets taken in turn
    model: Path | None = None  # skip training and benchmark this model
    quality: bool = True
    starter: bool = True
    out_dir: Path = RESULTS_DIR


@dataclass
class Workload:
    conversations: list[list[str]]
    starter_conversations: list[list[str]]
    status_csv: str
    digest: str

    def conversations_for(self, target: str) -> list[list[str]]:
        """The starter bot gets its own English conversations; our targets get ours."""
        return self.starter_conversations if target == "starter" else self.conversations


def load_workload(path: Path = WORKLOAD) -> Workload:
    """The fixed conversations; a clear error if the file is malformed."""
    try:
        raw = path.read_bytes()
        data = yaml.safe_load(raw.decode("utf-8")) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise SystemExit(f"{path}: không đọc được tệp kịch bản đo: {exc}") from exc
    if not isinstance(data, dict):
        raise SystemExit(f"{path}: tệp kịch bản đo phải là một bảng YAML")

    def convos(key: str) -> list[list[str]]:
        items = data.get(key)
        if not isinstance(items, list) or not items or not all(
                isinstance(c, list) and c and all(isinstance(t, str) and t.strip() for t in c)
                for c in items):
            raise SystemExit(f"{path}: '{key}' phải là danh sách các hội thoại (danh sách câu)")
        return [[t.strip() for t in c] for c in items]

    return Workload(convos("conversations"), convos("starter_conversations"),
                    str(data.get("status_csv") or ""), hashlib.sha256(raw).hexdigest()[:12])


@dataclass
class Run:
    """Everything one benchmark run measured."""

    options: BenchOptions
    started: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(
        timespec="seconds"))
    train_s: float | None = None
    starter_train_s: float | None = None
    starter_train_cached: bool = False
    ready_s: float | None = None
    starter_ready_s: float | None = None
    loads: list[LoadResult] = field(default_factory=list)
    cpu: dict[str, dict[str, float]] = field(default_factory=dict)
    rss: dict[str, float] = field(default_factory=dict)
    starter_rss: float | None = None
    quality: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def load(self, target: str, level: int) -> LoadResult | None:
        return next((r for r in self.loads if r.target == target and r.concurrency == level),
                    None)


def free_port() -> int:
    """A TCP port free on loopback now (the stacks started here and by `bot eval dialogue`
    bind their services to such ports, so a developer's running stack is never hit)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _prepare_state(work: Path, workload: Workload) -> Settings:
    """A fresh database (the catalog as a first `bot run` prepares it: the seed and the
    shipped national snapshot; status records) and settings on free ports."""
    from bot.catalog.db import session_scope
    from bot.catalog.snapshot import prepare_catalog
    from bot.status.codes import matcher_for
    from bot.status.importer import import_status_csv

    settings = Settings.from_env({
        **os.environ,
        "DATABASE_URL": f"sqlite:///{work / 'dvc.sqlite3'}",
        "MODELS_DIR": str(work / "models"),
        "BOT_PORT": str(free_port()), "RASA_PORT": str(free_port()),
        "ACTIONS_PORT": str(free_port()),
        # every virtual user comes from 127.0.0.1: the per-address limit would refuse the
        # load itself; the per-conversation limit stays as configured
        "RATE_LIMIT_ADDRESS_PER_MINUTE": "0",
    })
    prepare_catalog(settings)
    with session_scope(settings.database_url) as s:
        if workload.status_csv.strip():
            csv_path = work / "status.csv"
            csv_path.write_text(workload.status_csv, encoding="utf-8")
            import_status_csv(s, csv_path, matcher_for(settings.receipt_code_patterns))
        s.commit()
    return settings


def _train(settings: Settings, work: Path) -> tuple[Path, float]:
    """`bot train` from scratch into the run's folder (its output goes to a log file)."""
    env = {**os.environ, "DATABASE_URL": settings.database_url,
           "MODELS_DIR": str(settings.models_dir)}
    started = time.perf_counter()
    with open(work / "train.log", "wb") as out:
        done = subprocess.run([sys.executable, "-m", "bot", "train", "--force"], cwd=ROOT,
                              env=env, stdout=out, stderr=subprocess.STDOUT, check=False)
    elapsed = time.perf_counter() - started
    models = sorted(settings.models_dir.glob("*.tar.gz"))
    if done.returncode != 0 or not models:
        tail = (work / "train.log").read_text(errors="replace")[-2000:]
        raise RuntimeError(f"training failed (log: {work / 'train.log'}):\n{tail}")
    return models[-1], round(elapsed, 1)


async def wait_answer(target: Target, probe: str, proc_alive, timeout: float) -> bool:  # noqa: ANN001
    """Whether `target` answers `probe` before `timeout` while `proc_alive()`: a stack is
    ready when it answers, not when its ports open (Rasa binds before its model loads)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc_alive():
            return False
        ok, why = await send_once(target, f"bench-ready-{target.name}", probe, timeout=5)
        if ok:
            return True
        if why.startswith("HTTP 4"):  # up, but refusing what we send: waiting will not help
            raise RuntimeError(f"{target.name} refused the probe message: {why}")
        await asyncio.sleep(0.2)
    return False


def _targets(settings: Settings, starter_port: int | None) -> dict[str, Target]:
    targets = {
        "gateway": Target("gateway", f"http://{settings.bot_host}:{settings.bot_port}"
                          "/api/v1/chat", gateway_payload, gateway_answered),
        "rasa": Target("rasa", f"{settings.rasa_url}/webhooks/rest/webhook", rasa_payload,
                       rasa_answered),
    }
    if starter_port is not None:
        targets["starter"] = Target("starter", f"http://127.0.0.1:{starter_port}"
                                    "/webhooks/rest/webhook", rasa_payload, rasa_answered)
    return targets


async def _quality(settings: Settings, model: Path, work: Path) -> dict[str, Any]:
    """Intent accuracy (citizen_dev) and FAQ retrieval (faq_dev), run side by side."""
    missing = [str(p) for p in (CITIZEN_EVAL, FAQ_EVAL, NATIONAL_CATALOG) if not p.exists()]
    if missing:
        return {"skipped": f"missing evaluation data: {', '.join(missing)}"}
    env = {**os.environ, "DATABASE_URL": settings.database_url,
           "MODELS_DIR": str(settings.models_dir)}

    async def run(args: list[str], log: str) -> dict[str, Any]:
        with open(work / log, "wb") as err:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bot", *args, cwd=ROOT, env=env,
                stdout=asyncio.subprocess.PIPE, stderr=err)
            out, _ = await proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"bot {' '.join(args)} failed; see {work / log}")
        return json.loads(out.decode("utf-8"))

    intents, faq = await asyncio.gather(
        run(["evaluate", "--data", str(CITIZEN_EVAL), "--model", str(model)], "eval-nlu.log"),
        run(["eval", "search", str(FAQ_EVAL), "--catalog", str(NATIONAL_CATALOG), "--json"],
            "eval-faq.log"))
    search = faq["search"]
    return {
        "intent_acc": intents["intent_accuracy"],
        "procedure_answered_correctly": intents.get("procedure_answered_correctly"),
        "faq_top1": search.get("top1"), "faq_top3": search.get("top3"),
        "faq_questions": search.get("n"),
    }


def _git_commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True,
                              capture_output=True, check=True).stdout.strip() or None
    except (OSError, subprocess.CalledProcessError):
        return None


async def _measure(run: Run, workload: Workload, settings: Settings, model: Path,
                   starter_bot: Any, work: Path, progress: Any) -> None:  # noqa: ANN401
    from bot.bench import starter as starter_mod
    from bot.stack import Stack

    opts = run.options
    starter_port = free_port() if starter_bot is not None else None
    targets = _targets(settings, starter_port)
    pids: dict[str, int] = {}
    starter_proc = None
    stack = Stack(settings, model, log_dir=work / "logs")
    try:
        if starter_bot is not None:
            progress("khởi động bot mẫu của Rasa")
            started = time.perf_counter()
            starter_proc = starter_mod.start(starter_bot, starter_port, work / "logs" /
                                             "starter.log")
            if not await wait_answer(targets["starter"], "hello",
                                      lambda: starter_proc.poll() is None, 300):
                raise RuntimeError(f"the starter bot did not answer; see {work}/logs")
            run.starter_ready_s = round(time.perf_counter() - started, 2)
            pids["starter"] = starter_proc.pid
        progress("khởi động trợ lý (action server, Rasa, cổng)")
        started = time.perf_counter()
        await asyncio.to_thread(stack.start, 300.0)
        if not await wait_answer(targets["gateway"], "xin chào",
                                  lambda: all(p.poll() is None for p in stack.procs.values()),
                                  300):
            raise RuntimeError(f"the assistant did not answer; see {work}/logs")
        run.ready_s = round(time.perf_counter() - started, 2)
        pids.update({name: proc.pid for name, proc in stack.procs.items()})

        progress("làm nóng (mỗi hội thoại một lần)")
        for name, target in targets.items():
            for i, convo in enumerate(workload.conversations_for(name)):
                for text in convo:
                    ok, why = await send_once(target, f"bench-warm-{name}-{i}", text,
                                              timeout=60)
                    if not ok:
                        raise RuntimeError(f"{name} did not answer {text!r}: {why}")

        run_id = datetime.now().strftime("%H%M%S")
        names = [n for n in ("starter", "gateway", "rasa") if n in targets]
        for level in opts.levels:
            progress(f"{level} hội thoại đồng thời: {', '.join(names)}, "
                     f"{opts.duration:g} s mỗi bên")
            await _measure_level(run, workload, targets, names, level, pids, run_id)
        now = procs.usage_of(pids)
        run.rss = {name: u.rss_mb for name, u in now.items() if name != "starter"}
        run.rss["total"] = round(sum(run.rss.values()), 1)
        if "starter" in now:
            run.starter_rss = now["starter"].rss_mb
    finally:
        stack.stop()
        if starter_proc is not None and starter_proc.poll() is None:
            starter_proc.terminate()
            try:
                starter_proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                starter_proc.kill()


async def _measure_level(run: Run, workload: Workload, targets: dict[str, Target],
                         names: list[str], level: int, pids: dict[str, int],
                         run_id: str) -> None:
    """Load each target for `duration` at `level`, in `rounds` short slices taken in turn.

    These machines are shared: the speed of a core can change within a minute. Slicing
    the runs and alternating the targets (in a rotating order) spreads any such change
    over all targets alike, so their ratios stay meaningful.
    """
    opts = run.options
    slice_s = opts.duration / opts.rounds
    merged = {name: LoadResult(name, level) for name in names}
    cpu_s: dict[str, dict[str, float]] = {name: {} for name in names}
    for r in range(opts.rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            before = procs.usage_of(pids)
            part = await run_load(targets[name], workload.conversations_for(name), level,
                                  slice_s, f"{run_id}r{r}")
            after = procs.usage_of(pids)
            total = merged[name]
            total.latencies += part.latencies
            total.errors += part.errors
            total.error_samples += part.error_samples[:5 - len(total.error_samples)]
            total.wall_s += part.wall_s
            total.conversations += part.conversations
            for proc_name in after:
                used = after[proc_name].cpu_s - before[proc_name].cpu_s
                cpu_s[name][proc_name] = cpu_s[name].get(proc_name, 0.0) + used
            await asyncio.sleep(0.2)
    for name in names:
        run.loads.append(merged[name])
        wall = merged[name].wall_s or 1.0
        run.cpu[f"{name}@{level}"] = {p: round(v / wall, 2) for p, v in cpu_s[name].items()}


def run_bench(opts: BenchOptions, quiet: bool = False) -> dict[str, Any]:
    """Run the whole benchmark; return the report (also written to opts.out_dir)."""
    from tqdm import tqdm

    from bot.bench import starter as starter_mod

    workload = load_workload()
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    work = ROOT / "var" / "bench" / f"run-{stamp}"
    work.mkdir(parents=True, exist_ok=True)
    run = Run(opts)
    steps = 3 + (opts.model is None) + 2 * opts.starter \
        + len(opts.levels) + opts.quality
    bar = tqdm(total=steps, desc="bot bench", unit=" bước", file=sys.stderr,
               disable=quiet or not sys.stderr.isatty(), bar_format="{l_bar}{bar}| {n}/{total}"
               " [{elapsed}] {postfix}")

    done = [0]

    def progress(what: str) -> None:
        done[0] += 1
        bar.set_postfix_str(what)
        bar.update(1)
        if not quiet and not sys.stderr.isatty():  # a log file gets one line per step
            _say(f"[{done[0]}/{steps}] {what}")

    try:
        progress("dữ liệu sạch: cơ sở dữ liệu mới, danh mục như lần chạy đầu, hồ sơ mẫu")
        settings = _prepare_state(work, workload)
        if opts.model is None:
            progress("huấn luyện mô hình của trợ lý (đo thời gian)")
            model, run.train_s = _train(settings, work)
        else:
            model = opts.model
            run.notes.append(f"model given ({model}); training time not measured")
        starter_bot = None
        if opts.starter:
            progress("bot mẫu của Rasa (huấn luyện một lần, lưu lại)")
            starter_bot = starter_mod.prepare(log=_say if not quiet else (lambda _m: None))
            run.starter_train_s = starter_bot.train_s
            run.starter_train_cached = starter_bot.cached
        asyncio.run(_measure(run, workload, settings, model, starter_bot, work, progress))
        if opts.quality:
            progress("chất lượng: độ chính xác ý định, tìm thủ tục (FAQ)")
            run.quality = asyncio.run(_quality(settings, model, work))
    finally:
        bar.close()
    report = build_report(run, workload, model)
    opts.out_dir.mkdir(parents=True, exist_ok=True)
    path = opts.out_dir / f"{stamp}.json"
    path.write_text(json.dumps(report, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    report["result_file"] = str(path)
    return report


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None


def build_report(run: Run, workload: Workload, model: Path) -> dict[str, Any]:
    """The flat headline numbers the issue asks for, then every detail."""
    h = run.options.headline
    ours, direct, starter = run.load("gateway", h), run.load("rasa", h), run.load("starter", h)
    p50, p95 = (ours.percentile_ms(50), ours.percentile_ms(95)) if ours else (None, None)
    sp50, sp95 = (starter.percentile_ms(50), starter.percentile_ms(95)) if starter \
        else (None, None)
    overhead = _ratio(p50, direct.percentile_ms(50) if direct else None)
    saturated = max((r for r in run.loads if r.target == "gateway"),
                    key=lambda r: r.msgs_per_s, default=None)
    starter_sat = max((r for r in run.loads if r.target == "starter"),
                      key=lambda r: r.msgs_per_s, default=None)
    floor = json.loads(QUALITY_FLOOR.read_text()) if QUALITY_FLOOR.exists() else {}
    ratios = {
        "p50_ratio": _ratio(p50, sp50), "p95_ratio": _ratio(p95, sp95),
        "gateway_overhead_ratio": overhead,
        "rss_ratio": _ratio(run.rss.get("total"), run.starter_rss),
        "ready_ratio": _ratio(run.ready_s, run.starter_ready_s),
    }
    targets = {k: {"value": v, "target": f"≤ {TARGETS[k]}",
                   "met": None if v is None else v <= TARGETS[k]} for k, v in ratios.items()}
    for key in ("intent_acc", "faq_top3"):
        value, base = run.quality.get(key), floor.get(key)
        targets[key] = {"value": value, "target": f"≥ {base}",
                        "met": None if value is None or base is None else value >= base}
    errors = sum(r.errors for r in run.loads)
    return {
        "p50_ms": p50, "p95_ms": p95, "starter_p50_ms": sp50, "starter_p95_ms": sp95,
        "gateway_overhead_ratio": overhead,
        "rss_mb": run.rss.get("total"), "starter_rss_mb": run.starter_rss,
        "ready_s": run.ready_s, "starter_ready_s": run.starter_ready_s,
        "msgs_per_s": saturated.msgs_per_s if saturated else None,
        "starter_msgs_per_s": starter_sat.msgs_per_s if starter_sat else None,
        "intent_acc": run.quality.get("intent_acc"), "faq_top1": run.quality.get("faq_top1"),
        "faq_top3": run.quality.get("faq_top3"),
        "train_s": run.train_s, "starter_train_s": run.starter_train_s,
        "starter_train_cached": run.starter_train_cached,
        "errors": errors,
        "headline_concurrency": h,
        "ratios": ratios, "targets": targets,
        "all_targets_met": all(t["met"] for t in targets.values()),
        "loads": [r.summary() for r in run.loads],
        "cpu_cores": run.cpu, "rss_by_process_mb": run.rss,
        "quality": run.quality, "quality_floor": floor,
        "notes": run.notes,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform()},
        "rasa_version": _rasa_version(), "commit": _git_commit(), "model": model.name,
        "workload": {"file": str(WORKLOAD.relative_to(ROOT)), "sha256_12": workload.digest,
                     "conversations": len(workload.conversations),
                     "duration_s": run.options.duration, "rounds": run.options.rounds,
                     "levels": list(run.options.levels)},
        "started": run.started,
    }


def _rasa_version() -> str:
    from bot.bench.starter import rasa_version

    return rasa_version()


def format_table(report: dict[str, Any]) -> str:
    """The report as a Markdown table (what README's performance section shows)."""
    lines = ["| target | conc. | p50 ms | p95 ms | p99 ms | msg/s | errors |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for r in report["loads"]:
        lines.append(f"| {r['target']} | {r['concurrency']} | {r['p50_ms']} | {r['p95_ms']} | "
                     f"{r['p99_ms']} | {r['msgs_per_s']} | {r['errors']} |")
    lines += ["", "| measure | ours | starter | ratio | target | met |",
              "|---|---:|---:|---:|---|---|"]
    t = report["targets"]
    rows = [
        (f"p50 ms @{report['headline_concurrency']}", report["p50_ms"],
         report["starter_p50_ms"], "p50_ratio"),
        (f"p95 ms @{report['headline_concurrency']}", report["p95_ms"],
         report["starter_p95_ms"], "p95_ratio"),
        ("gateway ÷ direct Rasa, p50", None, None, "gateway_overhead_ratio"),
        ("memory MiB (all our processes)", report["rss_mb"], report["starter_rss_mb"],
         "rss_ratio"),
        ("start → first answer s", report["ready_s"], report["starter_ready_s"], "ready_ratio"),
    ]
    for label, ours, theirs, key in rows:
        lines.append(f"| {label} | {_fmt(ours)} | {_fmt(theirs)} | {_fmt(t[key]['value'])} | "
                     f"{t[key]['target']} | {_met(t[key]['met'])} |")
    lines.append(f"| intent accuracy (citizen_dev) | {_fmt(report['intent_acc'])} | | | "
                 f"{t['intent_acc']['target']} | {_met(t['intent_acc']['met'])} |")
    lines.append(f"| FAQ top-3 (top-1 {_fmt(report['faq_top1'])}) | {_fmt(report['faq_top3'])}"
                 f" | | | {t['faq_top3']['target']} | {_met(t['faq_top3']['met'])} |")
    lines.append(f"| saturation msg/s | {_fmt(report['msgs_per_s'])} | "
                 f"{_fmt(report['starter_msgs_per_s'])} | | | |")
    lines.append(f"| training s | {_fmt(report['train_s'])} | {_fmt(report['starter_train_s'])}"
                 f"{' (cached)' if report['starter_train_cached'] else ''} | | | |")
    lines += ["", "Memory by process (MiB): " + ", ".join(
        f"{k} {v}" for k, v in report["rss_by_process_mb"].items())]
    busiest = max(report["loads"], key=lambda r: r["concurrency"], default=None)
    if busiest is not None:
        key = f"gateway@{busiest['concurrency']}"
        if key in report["cpu_cores"]:
            lines.append(f"CPU cores in use at {busiest['concurrency']} conversations "
                         "(gateway run): " + ", ".join(
                             f"{k} {v}" for k, v in report["cpu_cores"][key].items()))
    return "\n".join(lines)


def _fmt(value: Any) -> str:  # noqa: ANN401
    return "—" if value is None else str(value)


def _met(value: bool | None) -> str:
    return "—" if value is None else ("yes" if value else "**no**")

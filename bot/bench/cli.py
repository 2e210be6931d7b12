"""`bot bench [--json] [--duration S] [--levels 1,10,50] [--model PATH] [--check]`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bot.config import Settings


def _levels(raw: str) -> tuple[int, ...]:
    try:
        levels = tuple(int(x) for x in raw.split(",") if x.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError("ví dụ: 1,10,50") from exc
    if not levels or any(not 1 <= n <= 500 for n in levels):
        raise argparse.ArgumentTypeError("mỗi mức từ 1 đến 500 hội thoại đồng thời")
    return levels


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench", help="performance benchmark against Rasa's starter bot (README Performance)",
        description="Start the whole assistant from a clean state, train it (timed), run a "
        "fixed mixed workload of Vietnamese conversations through the gateway and straight "
        "to Rasa at several concurrency levels, and Rasa's starter bot (rasa init, trained "
        "once and cached in var/bench/) on its own English messages in the same run. "
        "Prints a table (or --json) and writes bench/results/<time>.json.")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.add_argument("--duration", type=float, default=10.0,
                   help="seconds of load per target and level (default 10)")
    p.add_argument("--levels", type=_levels, default=(1, 10, 50),
                   help="concurrent conversations, comma-separated (default 1,10,50)")
    p.add_argument("--rounds", type=int, default=5,
                   help="slices each load is cut into, targets taken in turn (default 5)")
    p.add_argument("--headline", type=int, default=10,
                   help="level compared with the targets (default 10; must be in --levels)")
    p.add_argument("--model", type=Path,
                   help="benchmark this model instead of training one (training not timed)")
    p.add_argument("--no-quality", action="store_true",
                   help="skip the intent-accuracy and FAQ evaluations")
    p.add_argument("--out", type=Path, help="folder for the JSON result (default bench/results)")
    p.add_argument("--check", action="store_true",
                   help="exit with status 1 when a target is not met")
    p.set_defaults(func=cmd_bench)


def cmd_bench(args: argparse.Namespace, settings: Settings) -> int:
    from bot.bench.runner import RESULTS_DIR, BenchOptions, format_table, run_bench

    if args.headline not in args.levels:
        print(f"--headline {args.headline} phải là một trong --levels", file=sys.stderr)
        return 2
    if args.duration <= 0 or not 1 <= args.rounds <= 100:
        print("--duration phải lớn hơn 0 và --rounds từ 1 đến 100", file=sys.stderr)
        return 2
    if args.model is not None and not args.model.is_file():
        print(f"Không thấy mô hình {args.model}", file=sys.stderr)
        return 2
    opts = BenchOptions(levels=args.levels, headline=args.headline, duration=args.duration,
                        rounds=args.rounds,
                        model=args.model, quality=not args.no_quality,
                        out_dir=args.out or RESULTS_DIR)
    try:
        report = run_bench(opts)
    except RuntimeError as exc:
        print(f"bot bench: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(report, ensure_ascii=False))
    else:
        print(format_table(report))
        print(f"\nKết quả đầy đủ: {report['result_file']}")
    if args.check and not report["all_targets_met"]:
        return 1
    return 0

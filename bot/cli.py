"""Command-line interface: `bot run | train | shell | parse | search | evaluate | catalog…`.

Commands that read text (`parse`, `search`) take one text per line on stdin and print one
JSON object per line, so they compose with shell pipelines and evaluation scripts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from bot.config import ROOT, Settings
from bot.text import nfc

log = logging.getLogger("bot")


def _stdin_lines(stream: TextIO) -> Iterator[str]:
    """Non-empty NFC lines of a text stream; undecodable bytes are replaced, not fatal."""
    if hasattr(stream, "buffer"):
        stream = open(stream.fileno(), encoding="utf-8", errors="replace", closefd=False)  # noqa: SIM115
    for line in stream:
        text = nfc(line.rstrip("\r\n"))
        if text.strip():
            yield text


def _quiet_rasa() -> None:
    """Keep stdout for our JSON lines: Rasa's structlog would print debug lines there."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import warnings

    import structlog

    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=UserWarning)
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
    logging.getLogger("rasa").setLevel(logging.WARNING)
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )


def _model_or_train(settings: Settings, retrain: bool = False) -> Path:
    from bot.registry.registry import active_model, mark_started
    from bot.training import train

    model = active_model(settings)  # the registry's active model (README "Model registry")
    if model is None or retrain:
        print("Chưa có mô hình: đang huấn luyện (vài phút)...", file=sys.stderr)
        model = train(settings)
        mark_started(settings, model, by="cli:bot run")  # what runs is what the registry says
    return model


def stop_on_signals(stopping: threading.Event) -> None:
    """SIGTERM (systemd, Docker, `kill`) and SIGHUP (a closed terminal) stop `bot run` the way
    Ctrl-C does: the stack stops its children in order instead of leaving them orphaned."""

    def request_stop(signum: int, _frame: object) -> None:
        print(f"Nhận tín hiệu {signal.Signals(signum).name}: đang dừng trợ lý...",
              file=sys.stderr, flush=True)
        stopping.set()

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, request_stop)


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    from bot.fees.overrides import OverrideError
    from bot.fees.service import FeeInputError, check_fee_settings
    from bot.stack import Stack

    try:
        check_fee_settings(settings)
    except (OverrideError, FeeInputError) as exc:
        print(f"Cấu hình phí, lệ phí không hợp lệ:\n{exc}", file=sys.stderr)
        return 2
    from bot.status.codes import CodePatternError
    from bot.status.sources import StatusConfigError, check_status_settings
    from bot.status.workdays import CalendarError

    try:
        check_status_settings(settings)
    except (CodePatternError, StatusConfigError, CalendarError) as exc:
        print(f"Cấu hình tra cứu hồ sơ không hợp lệ:\n{exc}", file=sys.stderr)
        return 2
    from bot.handover.hours import HoursError, working_hours

    try:
        working_hours(settings.handover_hours, settings.work_calendar)
    except (HoursError, CalendarError) as exc:
        print(f"HANDOVER_HOURS không hợp lệ: {exc}", file=sys.stderr)
        return 2
    from bot.catalog.snapshot import prepare_catalog

    prepare_catalog(settings)
    model = _model_or_train(settings, retrain=args.retrain)
    print(f"Đang khởi động trợ lý với mô hình {model.name}...", file=sys.stderr)
    stack = Stack(settings, model)
    stop_on_signals(stack.stopping)
    try:
        stack.start()
    except RuntimeError as exc:
        print(exc, file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # Ctrl-C while starting: leave no orphan process behind
        stack.stop()
        return 130
    if stack.stopping.is_set():  # SIGTERM/SIGHUP while starting
        stack.stop()
        return 0
    print(f"Trợ lý đã sẵn sàng: http://{settings.bot_host}:{settings.bot_port}/  (Ctrl-C để dừng)",
          flush=True)
    print(f"Bảng điều khiển cho cán bộ: http://{settings.bot_host}:{settings.bot_port}/console/ "
          "(tạo tài khoản: bot operator add TÊN --role admin)", flush=True)
    return stack.wait()


def cmd_gateway(args: argparse.Namespace, settings: Settings) -> int:
    from bot.native_threads import limit_native_threads

    limit_native_threads(settings.native_threads)  # before the search indexes load
    from bot.gateway.app import run_gateway

    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(name)s %(message)s")
    run_gateway(settings)
    return 0


def cmd_train(args: argparse.Namespace, settings: Settings) -> int:
    from bot.catalog.snapshot import prepare_catalog
    from bot.training import train

    prepare_catalog(settings)
    model = train(settings, force=args.force, augment=not args.no_augment,
                  config=Path(args.config))
    print(f"Mô hình đã lưu: {model}")
    return 0


def _load_agent(settings: Settings, model: str | None):  # noqa: ANN202 - rasa Agent
    _quiet_rasa()
    from rasa.core.agent import Agent

    from bot.registry.registry import active_model

    path = Path(model) if model else active_model(settings)  # what `bot run` would serve
    if path is None or not path.exists():
        raise SystemExit("Chưa có mô hình. Chạy `bot train` trước (hoặc `make run`).")
    from bot.rasa_runtime import apply

    apply()  # the server's faster model loading, same predictions (bot/rasa_runtime.py)
    agent = Agent.load(str(path))
    from bot.nlu.retrieval import SOURCES

    if not SOURCES.wait_ready():  # answers as the server does once warm, and exits cleanly
        print("Cảnh báo: chỉ mục hỏi đáp chưa dựng xong; kết quả có thể thiếu phần hỏi đáp.",
              file=sys.stderr)
    return agent


def parse_result(text: str, data: dict[str, Any]) -> dict[str, Any]:
    """The stable JSON shape of `bot parse` for one message."""
    intent = data.get("intent") or {}
    return {
        "text": text,
        "intent": intent.get("name"),
        "confidence": round(float(intent.get("confidence") or 0.0), 4),
        "entities": [
            {"entity": e.get("entity"), "value": e.get("value"), "start": e.get("start"),
             "end": e.get("end")}
            for e in data.get("entities") or []
        ],
    }


def cmd_parse(args: argparse.Namespace, settings: Settings) -> int:
    agent = _load_agent(settings, args.model)

    async def go() -> None:
        for text in _stdin_lines(sys.stdin):
            data = await agent.parse_message(text)
            print(json.dumps(parse_result(text, data), ensure_ascii=False), flush=True)

    asyncio.run(go())
    return 0


def cmd_search(args: argparse.Namespace, settings: Settings) -> int:
    index = _index_for(settings, None)
    for text in _stdin_lines(sys.stdin):
        results = [r.as_dict() for r in index.search(text, limit=args.limit)]
        print(json.dumps({"text": text, "results": results}, ensure_ascii=False), flush=True)
    return 0


def cmd_evaluate(args: argparse.Namespace, settings: Settings) -> int:
    from bot.evaluation import evaluate_file

    agent = _load_agent(settings, args.model)
    report = asyncio.run(evaluate_file(agent, Path(args.data), settings))
    print(json.dumps(report, ensure_ascii=False, indent=2))
    if args.min_accuracy is not None and report["intent_accuracy"] < args.min_accuracy:
        print(f"intent accuracy {report['intent_accuracy']:.3f} < {args.min_accuracy}",
              file=sys.stderr)
        return 1
    return 0


def cmd_shell(args: argparse.Namespace, settings: Settings) -> int:
    from bot.shell import run_shell

    return run_shell(settings, start=args.start)


def cmd_catalog_load(args: argparse.Namespace, settings: Settings) -> int:
    from bot.catalog.db import session_scope
    from bot.catalog.seed import CatalogError, read_catalog_file, upsert_records

    path = Path(args.path)
    try:
        records = read_catalog_file(path)
    except CatalogError as exc:
        print(f"Lỗi: {exc}", file=sys.stderr)
        return 2
    with session_scope(settings.database_url) as s:
        report = upsert_records(s, records, source=f"file:{path.name}")
    for err in report.errors:
        print(f"Bỏ qua {err}", file=sys.stderr)
    print(report.summary())
    return 0


def cmd_catalog_import(args: argparse.Namespace, settings: Settings) -> int:
    from bot.catalog.db import session_factory
    from bot.catalog.importers.load import expand_paths, import_file
    from bot.catalog.seed import CatalogError, LoadReport, ensure_seeded

    paths = expand_paths([Path(p) for p in args.paths])
    if not paths:
        print("Lỗi: không có tệp nào để nhập", file=sys.stderr)
        return 2
    session = session_factory(settings.database_url)()
    failed = 0
    total = LoadReport()
    try:
        ensure_seeded(session)  # the curated seed first, so imports can leave it alone
        session.commit()
        for path in paths:
            try:
                shape, report = import_file(session, path, keep_curated=not args.replace_curated,
                                            progress=not args.no_progress)
            except CatalogError as exc:
                session.rollback()
                print(f"Lỗi: {exc}", file=sys.stderr)
                failed += 1
                continue
            total.add(report)
            print(f"{path.name} ({shape.kind}): {report.summary()}")
            for err in report.errors[: args.max_errors]:
                print(f"  bỏ qua {err}", file=sys.stderr)
            if len(report.errors) > args.max_errors:
                print(f"  … và {len(report.errors) - args.max_errors} lỗi khác", file=sys.stderr)
    finally:
        session.close()
    if len(paths) > 1:
        print(f"Tổng cộng: {total.summary()}")
    return 1 if failed else 0


def cmd_catalog_coverage(args: argparse.Namespace, settings: Settings) -> int:
    from bot.catalog.importers.coverage import coverage, format_coverage
    from bot.catalog.importers.load import detect, expand_paths, read_items
    from bot.catalog.seed import CatalogError

    records = []
    for path in expand_paths([Path(p) for p in args.paths]):
        try:
            shape = detect(path)
            records += [r for _, r in read_items(path, shape) if isinstance(r, dict)]
        except CatalogError as exc:
            print(f"Lỗi: {exc}", file=sys.stderr)
            return 2
    print(format_coverage(coverage(records)))
    return 0


def _index_for(settings: Settings, catalog: list[str] | None):  # noqa: ANN202 - CatalogIndex
    """The search index of the configured catalog, or of a temporary one built from files."""
    import tempfile

    from bot.catalog.db import session_scope
    from bot.catalog.importers.load import expand_paths, import_file
    from bot.catalog.search import CatalogIndex
    from bot.catalog.seed import ensure_seeded

    url = settings.database_url
    if catalog:
        tmp = tempfile.mkdtemp(prefix="dvc-eval-")
        url = f"sqlite:///{tmp}/catalog.sqlite3"
    with session_scope(url) as s:
        ensure_seeded(s)
        s.commit()
        for path in expand_paths([Path(p) for p in catalog or []]):
            import_file(s, path, progress=sys.stderr.isatty())
        return CatalogIndex.from_session(s)


def cmd_eval_search(args: argparse.Namespace, settings: Settings) -> int:
    import time

    from bot.catalog.importers.load import CatalogError
    from bot.catalog.search_eval import (
        KS,
        NameBM25,
        evaluate,
        index_rank,
        load_cases,
    )
    from bot.jsonl import JsonlError

    try:
        cases, skipped = load_cases(Path(args.file))
        index = _index_for(settings, args.catalog)
    except (JsonlError, CatalogError) as exc:
        print(f"Lỗi: {exc}", file=sys.stderr)
        return 2
    if not cases:
        print("Lỗi: tệp không có câu hỏi nào kèm mã thủ tục", file=sys.stderr)
        return 2
    baseline = NameBM25(index.docs)
    t0 = time.perf_counter()
    ours = evaluate(index_rank(index), cases)
    t1 = time.perf_counter()
    base = evaluate(baseline.rank, cases)
    if args.json:
        print(json.dumps({"file": args.file, "catalog_size": len(index.entries),
                          "skipped_without_codes": skipped, "search": ours.as_dict(),
                          "baseline_bm25_names": base.as_dict()}, ensure_ascii=False))
        return 0
    print(f"{args.file}: {ours.n} câu hỏi có mã thủ tục ({skipped} câu không có mã, bỏ qua); "
          f"danh mục {len(index.entries)} thủ tục")
    print(f"{'':24}" + "".join(f"{'top-' + str(k):>8}" for k in KS) + f"{'MRR':>8}")
    for label, m in (("tìm kiếm của bot", ours), ("BM25 trên tên (gốc)", base)):
        print(f"{label:24}" + "".join(f"{m.top(k):8.3f}" for k in KS) + f"{m.mrr:8.3f}")
    print(f"trung bình {1000 * (t1 - t0) / ours.n:.1f} ms/câu (chỉ để tham khảo; đo tốc độ: "
          "bench/search_latency.py)")
    for case, got in ours.misses[: args.misses]:
        print(f"- {case.question[:120]}\n    cần {', '.join(sorted(case.codes))}; "
              f"được {', '.join(got) or '(không có)'}")
    return 0


def cmd_lexicon(args: argparse.Namespace, settings: Settings) -> int:
    from bot.nlu.lexicon import write_lexicon

    path, count, changed = write_lexicon()
    print(f"{path}: {count} từ ({'đã cập nhật' if changed else 'không đổi'})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bot",
        description="dvc-assistant: trợ lý ảo thủ tục hành chính (Rasa 3.6 + Underthesea). "
                    "Settings come from environment variables; see .env.example.",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    r = sub.add_parser("run", help="start action server, Rasa and the gateway (trains if needed)")
    r.add_argument("--retrain", action="store_true", help="train a new model before starting")
    r.set_defaults(func=cmd_run)

    g = sub.add_parser("gateway", help="run only the aiohttp gateway (Rasa must be running)")
    g.set_defaults(func=cmd_gateway)

    t = sub.add_parser("train", help="train a model into MODELS_DIR")
    t.add_argument("--force", action="store_true", help="retrain even if nothing changed")
    t.add_argument("--no-augment", action="store_true",
                   help="do not add accent-free copies of the training examples")
    t.add_argument("--config", default=str(ROOT / "config.yml"), help="Rasa config file")
    t.set_defaults(func=cmd_train)

    sh = sub.add_parser("shell", help="chat with the assistant in the terminal")
    sh.add_argument("--start", action="store_true",
                    help="start the assistant first (otherwise talk to a running one)")
    sh.set_defaults(func=cmd_shell)

    pa = sub.add_parser("parse", help="stdin: one text per line → JSON lines with intent/entities")
    pa.add_argument("--model", help="model file (default: newest in MODELS_DIR)")
    pa.set_defaults(func=cmd_parse)

    se = sub.add_parser("search", help="stdin: one text per line → JSON lines of procedures")
    se.add_argument("--limit", type=int, default=5, help="results per line (default 5)")
    se.set_defaults(func=cmd_search)

    ev = sub.add_parser("evaluate", help="intent accuracy and procedure hits on a JSONL eval set")
    ev.add_argument("--data", default=str(ROOT.parent / "shared" / "eval" / "citizen_dev.jsonl"))
    ev.add_argument("--model", help="model file (default: newest in MODELS_DIR)")
    ev.add_argument("--min-accuracy", type=float, help="exit 1 below this intent accuracy")
    ev.set_defaults(func=cmd_evaluate)

    lx = sub.add_parser("lexicon", help="regenerate data/lexicon/domain_words.txt (train does it)")
    lx.set_defaults(func=cmd_lexicon)

    e = sub.add_parser("eval", help="evaluations: search, official Q&A, whole dialogues")
    esub = e.add_subparsers(dest="eval_command", required=True, metavar="WHAT")
    es = esub.add_parser(
        "search", help="top-1/3/10 and MRR of procedure search on a JSONL file, with a "
        "BM25-over-names baseline from the same run",
        description="FILE: JSON lines with `question` (or `text`) and `procedure_codes` (or "
        "`procedures`). Lines without codes are skipped.")
    es.add_argument("file")
    es.add_argument("--catalog", nargs="+", metavar="PATH",
                    help="evaluate on a temporary catalog: the seed plus these export files "
                    "(default: the configured DATABASE_URL)")
    es.add_argument("--misses", type=int, default=0, help="print this many missed questions")
    es.add_argument("--json", action="store_true", help="one JSON object instead of a table")
    es.set_defaults(func=cmd_eval_search)
    from bot.eval_dialogue import add_parser as add_dialogue_parser

    add_dialogue_parser(esub)
    from bot.faq.evaluate import add_parser as add_faq_eval_parser

    add_faq_eval_parser(esub)

    c = sub.add_parser("catalog", help="catalog management")
    csub = c.add_subparsers(dest="catalog_command", required=True, metavar="ACTION")
    cl = csub.add_parser("load", help="upsert a catalog YAML file (data/catalog format)")
    cl.add_argument("path")
    cl.set_defaults(func=cmd_catalog_load)
    ci = csub.add_parser(
        "import", help="import portal exports (crawl .jsonl.gz, Bộ Quốc phòng .jsonl.gz, "
        "portal list .xlsx, catalog .yaml); the shape is detected from the content",
        description="Idempotent upsert by procedure code. Procedures curated in the shipped "
        "seed are kept unless --replace-curated. Bad lines are reported and skipped.")
    ci.add_argument("paths", nargs="+", metavar="PATH", help="files or folders")
    ci.add_argument("--replace-curated", action="store_true",
                    help="also overwrite procedures curated in data/catalog (off by default)")
    ci.add_argument("--no-progress", action="store_true", help="no progress bar")
    ci.add_argument("--max-errors", type=int, default=20, help="rejected lines to print (20)")
    ci.set_defaults(func=cmd_catalog_import)
    cc = csub.add_parser("coverage", help="parsing coverage of export files (nothing is stored)")
    cc.add_argument("paths", nargs="+", metavar="PATH")
    cc.set_defaults(func=cmd_catalog_coverage)

    from bot.fees.explain import add_parser as add_fees_parser

    add_fees_parser(sub)
    from bot.status.cli import add_parser as add_status_parser

    add_status_parser(sub)
    from bot.registry.cli import add_parser as add_model_parser

    add_model_parser(sub)
    from bot.console.cli import add_parser as add_operator_parser

    add_operator_parser(sub)
    from bot.console.nlu_cli import add_parser as add_nlu_parser

    add_nlu_parser(sub)
    from bot.bench.cli import add_parser as add_bench_parser

    add_bench_parser(sub)
    from bot.bench.scale import add_parser as add_loadtest_parser

    add_loadtest_parser(sub)
    from bot.migrations.cli import add_parser as add_db_parser

    add_db_parser(sub)
    from bot.retention.cli import add_parser as add_retention_parser

    add_retention_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = Settings.from_env()
    if args.command == "search" and not 1 <= args.limit <= 50:
        print("--limit phải trong khoảng 1..50", file=sys.stderr)
        return 2
    try:
        return int(args.func(args, settings) or 0)
    except KeyboardInterrupt:
        return 130

"""`bot model list | show | train | job | evaluate | activate | rollback`: the registry by hand.

The same functions the operator console calls, for automation and for operators at a
terminal. Operator mistakes (an unknown id, a missing file, a refused model) are one
Vietnamese line or a short list and an exit code, never a traceback: 0 done, 1 refused or
failed (the gate said no, training failed, a server failed the swap), 2 bad input.
`--json` prints the console's own data shapes.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from bot.config import ROOT, Settings

VN_OFFSET = timedelta(hours=7)  # Việt Nam has no daylight saving time


def vn_time(value: datetime | None) -> str:
    """A stored UTC time as Vietnam time, for tables."""
    return (value + VN_OFFSET).strftime("%Y-%m-%d %H:%M") if value else "-"


def num(value: float | None) -> str:
    return f"{value:.3f}" if value is not None else "-"


def _print_json(value: Any) -> None:
    print(json.dumps(value, ensure_ascii=False, indent=2))


def _gate_word(gate: dict | None) -> str:
    if not gate:
        return "-"
    return "đạt" if gate.get("passed") else "không đạt"


def render_list(models: list, job: Any | None) -> str:
    """The model table of `bot model list` (newest first, * = serving)."""
    if not models:
        return "Chưa có mô hình nào. Huấn luyện: bot model train"
    width = max(len(m.id) for m in models)
    lines = [f"  {'mô hình':<{width}}  {'trạng thái':<10}  {'tạo lúc (giờ VN)':<16}  "
             f"{'người huấn luyện':<18}  {'độ chính xác':>12}  {'F1 (trọng số)':>13}  ngưỡng"]
    for m in models:
        status = m.status if m.file_exists else f"{m.status}, mất tệp"
        lines.append(f"{'*' if m.active else ' '} {m.id:<{width}}  {status:<10}  "
                     f"{vn_time(m.created_at):<16}  {m.trained_by[:18]:<18}  "
                     f"{num(m.accuracy):>12}  {num(m.weighted_f1):>13}  {_gate_word(m.gate)}")
    active = next((m for m in models if m.active), None)
    if active is not None and active.status != "active":
        lines.append("* đang dùng: chưa kích hoạt mô hình nào, bot run dùng mô hình mới nhất "
                     "có sẵn trong MODELS_DIR")
    else:
        lines.append("* đang dùng")
    if job is not None:
        lines.append(f"Đang huấn luyện: lượt {job.id} của {job.requested_by}, "
                     f"{job.percent:.0f}% — {job.phase}")
    return "\n".join(lines)


def render_gate(gate: dict | None) -> list[str]:
    """The gate's verdict with what got better and worse."""
    if not gate:
        return ["Ngưỡng so sánh: chưa kiểm tra."]
    base = gate.get("baseline_id")
    verdict = "ĐẠT" if gate.get("passed") else "KHÔNG ĐẠT"
    lines = [f"Ngưỡng so sánh (biên {gate.get('margin', 0):.3f}"
             + (f", với mô hình đang dùng {base}" if base else "") + f"): {verdict}"]
    lines += [f"  {line}" for line in gate.get("summary") or []]
    lines += [f"  - {reason}" for reason in gate.get("reasons") or []]
    for key, label in (("better", "Tốt hơn"), ("worse", "Kém hơn")):
        items = gate.get(key) or []
        if items:
            lines.append(f"{label} (F1 theo ý định): " + ", ".join(
                f"{i['intent']} {i['before']:.2f}→{i['after']:.2f}" for i in items))
    return lines


def render_metrics(title: str, metrics: dict, deltas: dict[str, float] | None = None,
                   max_errors: int = 10) -> list[str]:
    """Per-intent table of one report, with the F1 change against the serving model."""
    lines = [f"{title}: {metrics.get('support', 0)} câu",
             f"Độ chính xác {num(metrics.get('accuracy'))} · F1 có trọng số "
             f"{num(metrics.get('weighted_f1'))} · F1 trung bình {num(metrics.get('macro_f1'))}"]
    intents = metrics.get("intents") or {}
    if intents:
        width = max(len(n) for n in intents)
        lines.append(f"  {'ý định':<{width}}  precision  recall     F1  số câu"
                     + ("  ΔF1 so với đang dùng" if deltas is not None else ""))
        for name in sorted(intents, key=lambda n: intents[n]["f1"]):
            r = intents[name]
            delta = ""
            if deltas is not None and name in deltas:
                delta = f"  {deltas[name]:+.3f}"
            lines.append(f"  {name:<{width}}  {r['precision']:9.3f}  {r['recall']:6.3f}  "
                         f"{r['f1']:5.3f}  {r['support']:6d}{delta}")
    if metrics.get("confusion_matrix"):
        lines.append(f"Ma trận nhầm lẫn: {metrics['confusion_matrix']}")
    errors = metrics.get("errors") or []
    if errors and max_errors:
        lines.append(f"Câu bị nhận nhầm ({len(errors)}; {min(len(errors), max_errors)} câu đầu):")
        for e in errors[:max_errors]:
            lines.append(f"  «{e['text']}» → {e['predicted']} ({e['confidence']:.2f}), "
                         f"đúng là {e['intent']}")
    return lines


def render_evaluation(model: Any, baseline: Any | None) -> str:
    """What `bot model evaluate` prints."""
    deltas = None
    if baseline is not None and baseline.metrics and model.metrics:
        base = baseline.metrics.get("intents") or {}
        deltas = {n: r["f1"] - (base.get(n) or {}).get("f1", 0.0)
                  for n, r in (model.metrics.get("intents") or {}).items()}
    lines = []
    if model.metrics:
        lines += render_metrics(f"Mô hình {model.id} trên {model.metrics.get('test_file')}",
                                model.metrics, deltas)
    if model.cv_metrics:
        cv = model.cv_metrics
        lines += [""] + render_metrics(f"Kiểm định chéo {cv.get('folds')} phần trên "
                                       f"{cv.get('data')}", cv, max_errors=0)
    lines += [""] + render_gate(model.gate)
    if model.gate and model.gate.get("passed") and not model.active:
        lines.append(f"Kích hoạt: bot model activate {model.id}")
    return "\n".join(lines)


def _fail(message: str, code: int = 2) -> int:
    print(f"Lỗi: {message}", file=sys.stderr)
    return code


def _guard(run: Callable[[], int]) -> int:
    """Operator mistakes as one message and an exit code, not a traceback."""
    from bot.registry.activation import ActivationError, GateRefused
    from bot.registry.registry import RegistryError
    from bot.registry.training_job import TrainingBusy

    try:
        return run()
    except GateRefused as exc:
        print(str(exc), file=sys.stderr)  # the reasons are in the message
        for line in render_gate({**exc.gate, "reasons": []})[1:]:
            print(line, file=sys.stderr)
        return 1
    except (ActivationError, TrainingBusy) as exc:
        return _fail(str(exc), 1)
    except RegistryError as exc:
        return _fail(str(exc), 2)


def cmd_model_list(args: argparse.Namespace, settings: Settings) -> int:
    from bot.registry.registry import list_models
    from bot.registry.training_job import current_job

    def run() -> int:
        models = list_models(settings)
        job = current_job(settings)
        if args.json:
            active = next((m.id for m in models if m.active), None)
            _print_json({"active": active, "models": [m.as_dict() for m in models],
                         "training": job.as_dict() if job else None})
        else:
            print(render_list(models, job))
        return 0

    return _guard(run)


def cmd_model_show(args: argparse.Namespace, settings: Settings) -> int:
    from bot.registry.registry import get_model

    def run() -> int:
        model = get_model(settings, args.id)
        if args.json:
            _print_json(model.as_dict())
            return 0
        print(f"{model.id}{' (đang dùng)' if model.active else ''} — {model.status}, "
              f"{model.source}; huấn luyện bởi {model.trained_by} lúc "
              f"{vn_time(model.created_at)}")
        print(f"Tệp: {model.path}{'' if model.file_exists else ' (KHÔNG CÒN)'}")
        if model.activated_at:
            print(f"Kích hoạt lần cuối: {vn_time(model.activated_at)} bởi {model.activated_by}")
        if model.previous_active_id:
            print(f"Thay thế: {model.previous_active_id}")
        if model.error:
            print(f"Lỗi tệp: {model.error}")
        print(render_evaluation(model, None) if model.metrics
              else f"Chưa đánh giá: bot model evaluate {model.id}")
        return 0

    return _guard(run)


def _progress_printer() -> tuple[Callable[[Any], None], Callable[[], None]]:
    """A tqdm bar on a terminal; one line per phase otherwise (logs of automation)."""
    if sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(total=100, desc="Huấn luyện", unit="%", file=sys.stderr,
                   bar_format="{desc}: {percentage:3.0f}%|{bar}| {postfix}")

        def update(job: Any) -> None:
            bar.n = job.percent
            bar.set_postfix_str(job.phase or "", refresh=False)
            bar.refresh()

        return update, bar.close
    last = {"phase": None}

    def line(job: Any) -> None:
        phase = (job.phase or "").split(": vòng")[0]
        if phase != last["phase"]:
            last["phase"] = phase
            print(f"[{job.percent:5.1f}%] {phase}", file=sys.stderr, flush=True)

    return line, lambda: None


def cmd_model_trainer(args: argparse.Namespace, settings: Settings) -> int:
    from bot.registry.trainer import alive, trainer_main

    if args.alive:
        return 0 if alive() else 1
    return trainer_main(settings, once=args.once)


def cmd_model_train(args: argparse.Namespace, settings: Settings) -> int:
    from bot.registry.registry import get_model, operator_name
    from bot.registry.training_job import start_training, train_model

    config = Path(args.config)
    if not config.is_file():
        return _fail(f"Không có tệp cấu hình {config}")
    by = operator_name(args.by)
    options = {"evaluate": not args.no_evaluate, "cross_validation": args.cross_validation,
               "folds": args.folds}

    def run() -> int:
        if args.background:
            job_id = start_training(settings, by, config, **options)
            if args.json:
                _print_json({"job": job_id})
            else:
                print(f"Đã bắt đầu huấn luyện nền: lượt {job_id}. Theo dõi: bot model job "
                      f"{job_id}")
            return 0
        update, close = _progress_printer()
        try:
            job = train_model(settings, by, config, on_progress=update, **options)
        except KeyboardInterrupt:
            close()
            print("Đã dừng huấn luyện.", file=sys.stderr)
            return 130
        close()
        if args.json:
            out = {"job": job.as_dict()}
            if job.model_id:
                out["model"] = get_model(settings, job.model_id).as_dict()
            _print_json(out)
        if job.status != "succeeded":
            return _fail(f"Huấn luyện thất bại.\n{job.error or ''}\nNhật ký: {job.log_path}", 1)
        if not args.json:
            model = get_model(settings, job.model_id)
            print(f"Mô hình mới: {model.id}")
            if model.metrics or model.gate:
                print(render_evaluation(model, None))
        if job.error:
            print(job.error, file=sys.stderr)
            return 1
        return 0

    return _guard(run)


def cmd_model_job(args: argparse.Namespace, settings: Settings) -> int:
    from bot.registry.training_job import get_job, list_jobs

    def run() -> int:
        if args.job_id:
            jobs = [get_job(settings, args.job_id)]
        else:
            jobs = list_jobs(settings, limit=args.limit)
        if args.json:
            _print_json([j.as_dict() for j in jobs] if not args.job_id else jobs[0].as_dict())
            return 0
        if not jobs:
            print("Chưa có lượt huấn luyện nào.")
        for j in jobs:
            print(f"{j.id}  {j.status:<9}  {vn_time(j.created_at)}  {j.requested_by}  "
                  f"{j.percent:5.1f}%  {j.phase or ''}"
                  + (f"  → {j.model_id}" if j.model_id else ""))
            if j.error and args.job_id:
                print(j.error)
        return 0

    return _guard(run)


def cmd_model_evaluate(args: argparse.Namespace, settings: Settings) -> int:
    from bot.registry.evaluation import evaluate

    if args.folds < 2:
        return _fail("--folds phải từ 2 trở lên")

    def say(message: str) -> None:
        print(f"{message}…", file=sys.stderr, flush=True)

    def run() -> int:
        result = evaluate(args.id, settings, cross_validation=args.cross_validation,
                          folds=args.folds, on_progress=None if args.json else say)
        if args.json:
            _print_json(result.as_dict())
        else:
            print(render_evaluation(result.model, result.baseline))
        return 0

    return _guard(run)


def _render_activation(result: Any) -> str:
    lines = [f"Đang dùng: {result.model.id}"
             + (f" (thay {result.previous_id})" if result.previous_id else "")]
    outcome = {"swapped": "đã nạp mô hình mới", "unchanged": "đã dùng mô hình này",
               "unreachable": "không trả lời"}
    for s in result.servers:
        lines.append(f"  {s.url}: {outcome.get(s.outcome, s.outcome)}")
    if result.kind == "force":
        lines.append("Lưu ý: kích hoạt bắt buộc (--force) dù không qua ngưỡng so sánh.")
    lines += [f"Lưu ý: {w}" for w in result.warnings]
    return "\n".join(lines)


def cmd_model_activate(args: argparse.Namespace, settings: Settings) -> int:
    from bot.registry.activation import activate
    from bot.registry.registry import operator_name

    def run() -> int:
        result = activate(args.id, settings, by=operator_name(args.by), force=args.force,
                          skip_unreachable=args.skip_unreachable)
        _print_json(result.as_dict()) if args.json else print(_render_activation(result))
        return 0

    return _guard(run)


def cmd_model_rollback(args: argparse.Namespace, settings: Settings) -> int:
    from bot.registry.activation import rollback
    from bot.registry.registry import operator_name

    def run() -> int:
        result = rollback(settings, by=operator_name(args.by))
        _print_json(result.as_dict()) if args.json else print(_render_activation(result))
        return 0

    return _guard(run)


def add_parser(sub: argparse._SubParsersAction) -> None:
    """`bot model …` (README "Model registry")."""
    m = sub.add_parser("model", help="model registry: list, train, evaluate, activate, rollback")
    msub = m.add_subparsers(dest="model_command", required=True, metavar="ACTION")

    ls = msub.add_parser("list", help="every model with status, trainer and scores (* = serving)")
    ls.add_argument("--json", action="store_true", help="JSON instead of a table")
    ls.set_defaults(func=cmd_model_list)

    sh = msub.add_parser("show", help="one model's record and its stored evaluation")
    sh.add_argument("id", help="model id, a unique prefix of it, or 'active'")
    sh.add_argument("--json", action="store_true")
    sh.set_defaults(func=cmd_model_show)

    tr = msub.add_parser(
        "train", help="train a candidate model (one training at a time), then evaluate it",
        description="Runs `bot train --force` with a progress bar, registers the model as a "
        "candidate (it does not serve until activated), evaluates it on tests/nlu_test.yml "
        "and compares it with the serving model. Exit 1 if training fails.")
    tr.add_argument("--by", help="who trains (default: cli:<login user>)")
    tr.add_argument("--config", default=str(ROOT / "config.yml"), help="Rasa config file")
    tr.add_argument("--no-evaluate", action="store_true", help="only train")
    tr.add_argument("--cross-validation", action="store_true",
                    help="also cross-validate the config (slow: trains --folds more models)")
    tr.add_argument("--folds", type=int, default=3, help="cross-validation folds (3)")
    tr.add_argument("--background", action="store_true",
                    help="start in the background, print the job id and return")
    tr.add_argument("--json", action="store_true")
    tr.set_defaults(func=cmd_model_train)

    tn = msub.add_parser(
        "trainer", help="the trainer service: run the trainings the console queues "
        "(TRAINING_MODE=queue)",
        description="Claims queued training jobs one at a time and runs them here (train, "
        "register, evaluate), so that the gateway never trains. Stops on SIGTERM (a training "
        "in progress is recorded as cancelled).")
    tn.add_argument("--once", action="store_true", help="run what is queued, then exit")
    tn.add_argument("--alive", action="store_true",
                    help="liveness probe: exit 0 when this container's trainer is running")
    tn.set_defaults(func=cmd_model_trainer)

    jb = msub.add_parser("job", help="progress of training jobs (the latest ones, or one)")
    jb.add_argument("job_id", nargs="?")
    jb.add_argument("--limit", type=int, default=10)
    jb.add_argument("--json", action="store_true")
    jb.set_defaults(func=cmd_model_job)

    ev = msub.add_parser(
        "evaluate", help="intent precision/recall/F1 on tests/nlu_test.yml vs the serving model",
        description="Runs `rasa test nlu` on the held-out test file (and the serving model too "
        "when it has no report on this file), stores the report and the regression gate's "
        "verdict, and prints what got better and worse.")
    ev.add_argument("id", help="model id, a unique prefix of it, or 'active'")
    ev.add_argument("--cross-validation", action="store_true",
                    help="also cross-validate its config on data/nlu (slow)")
    ev.add_argument("--folds", type=int, default=3, help="cross-validation folds (3)")
    ev.add_argument("--json", action="store_true")
    ev.set_defaults(func=cmd_model_evaluate)

    ac = msub.add_parser(
        "activate", help="hot-swap a model into the running Rasa server(s)",
        description="Refuses a model that is worse than the serving one by more than "
        "MODEL_GATE_MARGIN, or that was not evaluated (exit 1), unless --force.")
    ac.add_argument("id", help="model id or a unique prefix of it")
    ac.add_argument("--force", action="store_true", help="activate even if the gate refuses")
    ac.add_argument("--skip-unreachable", action="store_true",
                    help="swap the servers that answer even if some do not")
    ac.add_argument("--by", help="who activates (default: cli:<login user>)")
    ac.add_argument("--json", action="store_true")
    ac.set_defaults(func=cmd_model_activate)

    rb = msub.add_parser("rollback", help="serve again the model that served before this one")
    rb.add_argument("--by", help="who rolls back (default: cli:<login user>)")
    rb.add_argument("--json", action="store_true")
    rb.set_defaults(func=cmd_model_rollback)

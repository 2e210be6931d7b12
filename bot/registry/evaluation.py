"""Evaluating a model on the operators' held-out test file, and the regression gate.

Rasa's own `rasa test nlu` does the measuring, so the numbers are the ones the Rasa
documentation explains; we keep its `intent_report.json` (per-intent precision, recall, F1,
support), the misclassified messages and its confusion-matrix picture, under
`MODELS_DIR/<id>-eval/`. Cross-validation (`rasa test nlu --cross-validation`) measures the
training data and config rather than one model file, takes minutes per fold on 2 cores, and
is therefore optional and stored apart.

The gate compares a candidate with the model that serves, on the same test file (its SHA-256
is stored with every report; a changed file makes the registry re-evaluate the serving model
before comparing): the candidate passes iff its weighted-average intent F1 and its accuracy
are each at least the serving model's minus `MODEL_GATE_MARGIN`. When both have a
cross-validation report with the same number of folds, that report must pass the same test.
Per-intent F1 changes beyond `CHANGE_EPSILON` are listed as better / worse: what an operator
reads before deciding.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from bot.catalog.db import session_factory
from bot.config import ROOT, Settings
from bot.registry import locks
from bot.registry.models import ModelVersion
from bot.registry.registry import (
    ModelInfo,
    RegistryError,
    dumps,
    effective_active,
    file_of,
    info_of,
    iso,
    loads,
    resolve,
    sync,
)
from bot.timeutil import utcnow

TEST_FILE = ROOT / "tests" / "nlu_test.yml"
CHANGE_EPSILON = 0.01  # per-intent F1 moves smaller than this are noise on ~10 examples
MAX_ERRORS_KEPT = 200
TEST_TIMEOUT = 1800.0  # seconds for `rasa test nlu` on the test file (about 40 s here)

Progress = Callable[[str], None]


class EvaluationError(RegistryError):
    """`rasa test nlu` failed or wrote no report; the message names its log."""


def file_sha256(path: Path) -> str:
    """Content hash of the test file: reports are comparable only on identical files."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def display_path(path: Path) -> str:
    """A path relative to the checkout when inside it (shorter in tables and JSON)."""
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def eval_dir(settings: Settings, model_id: str) -> Path:
    """Where a model's evaluation files live: beside the model, removed with it by hand."""
    return settings.models_dir / f"{model_id}-eval"


def read_intent_report(out_dir: Path) -> dict[str, Any]:
    """Our metrics from the files `rasa test nlu --out out_dir` wrote.

    `intent_report.json` is scikit-learn's classification report plus Rasa's `confused_with`;
    the averages' keys ("weighted avg", "macro avg", "accuracy" or "micro avg" when some
    predicted label is not in the test file) are normalised here, once.
    """
    report_file = out_dir / "intent_report.json"
    if not report_file.is_file():
        raise EvaluationError(f"Rasa không ghi báo cáo ý định ({report_file})")
    report = json.loads(report_file.read_text(encoding="utf-8"))
    intents = {}
    for name, row in report.items():
        if not isinstance(row, dict) or name.endswith(" avg") or "f1-score" not in row:
            continue
        intents[name] = {"precision": row["precision"], "recall": row["recall"],
                         "f1": row["f1-score"], "support": int(row["support"]),
                         "confused_with": row.get("confused_with") or {}}
    weighted = report.get("weighted avg") or {}
    macro = report.get("macro avg") or {}
    accuracy = report.get("accuracy")
    if accuracy is None:  # sklearn reports micro avg instead when labels and targets differ
        accuracy = (report.get("micro avg") or {}).get("recall", 0.0)
    errors = []
    errors_file = out_dir / "intent_errors.json"
    if errors_file.is_file():
        for item in json.loads(errors_file.read_text(encoding="utf-8"))[:MAX_ERRORS_KEPT]:
            prediction = item.get("intent_prediction") or {}
            errors.append({"text": item.get("text"), "intent": item.get("intent"),
                           "predicted": prediction.get("name"),
                           "confidence": round(float(prediction.get("confidence") or 0), 4)})
    pictures = {name: str(out_dir / f"{name}.png") for name in
                ("intent_confusion_matrix", "intent_histogram")
                if (out_dir / f"{name}.png").is_file()}
    return {
        "accuracy": float(accuracy),
        "weighted_f1": float(weighted.get("f1-score", 0.0)),
        "weighted_precision": float(weighted.get("precision", 0.0)),
        "weighted_recall": float(weighted.get("recall", 0.0)),
        "macro_f1": float(macro.get("f1-score", 0.0)),
        "support": int(weighted.get("support") or sum(i["support"] for i in intents.values())),
        "intents": intents,
        "errors": errors,
        "confusion_matrix": pictures.get("intent_confusion_matrix"),
        "histogram": pictures.get("intent_histogram"),
        "report_dir": str(out_dir),
    }


def _run_rasa(settings: Settings, args: list[str], out_dir: Path, timeout: float | None) -> None:
    """`python -m rasa <args>` with the services' environment, its output in out_dir."""
    from bot.stack import service_env

    if out_dir.exists():
        shutil.rmtree(out_dir)  # never read a previous run's report by mistake
    out_dir.mkdir(parents=True)
    log_path = out_dir / "rasa.log"
    with open(log_path, "wb") as log_file:
        try:
            proc = subprocess.run([sys.executable, "-m", "rasa", *args, "--out", str(out_dir)],
                                  cwd=ROOT, env=service_env(settings), stdout=log_file,
                                  stderr=subprocess.STDOUT, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raise EvaluationError(f"Đánh giá quá {timeout:.0f} giây; nhật ký: {log_path}") from exc
    if proc.returncode != 0:
        tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-15:])
        raise EvaluationError(f"rasa {args[0]} {args[1]} thất bại (mã {proc.returncode}); "
                              f"nhật ký: {log_path}\n{tail}")


def run_test(settings: Settings, model_file: Path, out_dir: Path,
             test_file: Path = TEST_FILE, timeout: float | None = TEST_TIMEOUT) -> dict[str, Any]:
    """Evaluate one model file on the test file; the metrics with the file's hash."""
    if not test_file.is_file():
        raise EvaluationError(f"Không có tệp kiểm thử {test_file}")
    _run_rasa(settings, ["test", "nlu", "--nlu", str(test_file), "--model", str(model_file)],
              out_dir, timeout)
    metrics = read_intent_report(out_dir)
    metrics.update(test_file=display_path(test_file), test_sha256=file_sha256(test_file),
                   evaluated_at=iso(utcnow()))
    return metrics


def run_cross_validation(settings: Settings, config: Path, out_dir: Path, folds: int = 3,
                         nlu: Path = ROOT / "data" / "nlu",
                         timeout: float | None = None) -> dict[str, Any]:
    """K-fold cross-validation of a config on the hand-written NLU data.

    Only `data/nlu` is used, not the generated accent-free copies: a fold would otherwise test
    on the copy of a training sentence and report a flattering score.
    """
    if folds < 2:
        raise EvaluationError("Số phần (--folds) phải từ 2 trở lên")
    if not config.is_file():
        raise EvaluationError(f"Không có tệp cấu hình {config} để kiểm định chéo")
    _run_rasa(settings, ["test", "nlu", "--cross-validation", "--folds", str(folds),
                         "--config", str(config), "--nlu", str(nlu)], out_dir, timeout)
    metrics = read_intent_report(out_dir)
    metrics.update(folds=folds, config=display_path(config), data=display_path(nlu),
                   evaluated_at=iso(utcnow()))
    return metrics


def _headline(metrics: dict[str, Any]) -> dict[str, float]:
    return {"accuracy": metrics.get("accuracy"), "weighted_f1": metrics.get("weighted_f1")}


def _not_worse(label: str, candidate: dict, baseline: dict, margin: float,
               reasons: list[str], summary: list[str]) -> None:
    for key, name in (("weighted_f1", "F1 có trọng số"), ("accuracy", "Độ chính xác")):
        c, b = float(candidate[key]), float(baseline[key])
        summary.append(f"{label}{name}: {c:.3f} (đang dùng {b:.3f}, {c - b:+.3f})")
        if c < b - margin - 1e-9:
            reasons.append(f"{label}{name} {c:.3f} thấp hơn mô hình đang dùng ({b:.3f}) "
                           f"quá biên cho phép {margin:.3f}")


def intent_changes(candidate: dict, baseline: dict,
                   epsilon: float = CHANGE_EPSILON) -> tuple[list[dict], list[dict]]:
    """Per-intent F1 that rose / fell by more than `epsilon` (largest change first)."""
    better, worse = [], []
    before_all, after_all = baseline.get("intents") or {}, candidate.get("intents") or {}
    for intent in sorted(set(before_all) | set(after_all)):
        before = (before_all.get(intent) or {}).get("f1", 0.0)
        after = (after_all.get(intent) or {}).get("f1", 0.0)
        delta = after - before
        item = {"intent": intent, "before": round(before, 4), "after": round(after, 4),
                "delta": round(delta, 4)}
        if delta > epsilon:
            better.append(item)
        elif delta < -epsilon:
            worse.append(item)
    better.sort(key=lambda i: -i["delta"])
    worse.sort(key=lambda i: i["delta"])
    return better, worse


def compare(candidate: dict, baseline: dict | None, margin: float,
            baseline_id: str | None = None, candidate_cv: dict | None = None,
            baseline_cv: dict | None = None, epsilon: float = CHANGE_EPSILON) -> dict[str, Any]:
    """The gate's verdict: a JSON-ready dict with `passed`, the reasons and what changed."""
    reasons: list[str] = []
    summary: list[str] = []
    better: list[dict] = []
    worse: list[dict] = []
    if baseline is None:
        summary.append("Chưa có mô hình đang dùng để so sánh: mô hình đầu tiên được chấp nhận.")
    elif baseline.get("test_sha256") != candidate.get("test_sha256"):
        reasons.append("Hai mô hình được đánh giá trên hai tệp kiểm thử khác nhau: không so "
                       "sánh được. Chạy lại bot model evaluate.")
    else:
        _not_worse("", candidate, baseline, margin, reasons, summary)
        better, worse = intent_changes(candidate, baseline, epsilon)
        if candidate_cv and baseline_cv and candidate_cv.get("folds") == baseline_cv.get("folds"):
            _not_worse("Kiểm định chéo: ", candidate_cv, baseline_cv, margin, reasons, summary)
    return {
        "passed": not reasons,
        "margin": margin,
        "baseline_id": baseline_id,
        "test_sha256": candidate.get("test_sha256"),
        "candidate": _headline(candidate),
        "baseline": _headline(baseline) if baseline else None,
        "reasons": reasons,
        "summary": summary,
        "better": better,
        "worse": worse,
        "checked_at": iso(utcnow()),
    }


def gate_for(session: Any, settings: Settings, row: ModelVersion,
             test_file: Path = TEST_FILE) -> dict[str, Any]:
    """The gate of `row` against the serving model, from stored metrics only (no Rasa run).

    Activation calls this, so a click in the console answers at once; evaluating is a
    separate, slow step (`evaluate`).
    """
    sha = file_sha256(test_file) if test_file.is_file() else None
    candidate = loads(row.metrics)
    base_row = effective_active(session, settings)
    base_id = base_row.id if base_row is not None and base_row.id != row.id else None

    def verdict(reason: str | None, note: str | None = None) -> dict[str, Any]:
        return {"passed": reason is None, "margin": settings.model_gate_margin,
                "baseline_id": base_id, "test_sha256": sha,
                "candidate": _headline(candidate) if candidate else None, "baseline": None,
                "reasons": [reason] if reason else [], "summary": [note] if note else [],
                "better": [], "worse": [], "checked_at": iso(utcnow())}

    if base_row is not None and base_row.id == row.id:
        # What serves already (perhaps only as the newest file, never activated): making it
        # explicit cannot make anything worse.
        return verdict(None, "Đây là mô hình đang dùng.")
    if not candidate or candidate.get("test_sha256") != sha:
        return verdict(f"Mô hình {row.id} chưa được đánh giá trên tệp kiểm thử hiện tại "
                       f"({display_path(test_file)}): chạy bot model evaluate {row.id}")
    if base_id is None:
        return compare(candidate, None, settings.model_gate_margin)
    baseline = loads(base_row.metrics)
    if not baseline or baseline.get("test_sha256") != sha:
        return verdict(f"Mô hình đang dùng {base_id} chưa được đánh giá trên tệp kiểm thử hiện "
                       f"tại: chạy bot model evaluate {row.id} (đánh giá lại cả hai)")
    return compare(candidate, baseline, settings.model_gate_margin, base_id,
                   loads(row.cv_metrics), loads(base_row.cv_metrics))


@dataclass(frozen=True)
class Evaluation:
    """What `evaluate` found: the model (with its stored metrics and gate), and the baseline."""

    model: ModelInfo
    baseline: ModelInfo | None

    @property
    def gate(self) -> dict[str, Any]:
        return self.model.gate or {}

    def as_dict(self) -> dict[str, Any]:
        """The shape of `bot model evaluate --json`."""
        return {"model": self.model.as_dict(),
                "baseline": self.baseline.as_dict() if self.baseline else None,
                "gate": self.gate}


def _store(settings: Settings, model_id: str, **values: Any) -> None:
    with session_factory(settings.database_url)() as s:
        row = s.get(ModelVersion, model_id)
        for key, value in values.items():
            setattr(row, key, value)
        s.commit()


def evaluate(ref: str, settings: Settings, cross_validation: bool = False, folds: int = 3,
             test_file: Path = TEST_FILE, on_progress: Progress | None = None,
             training_lock_held: bool = False) -> Evaluation:
    """Evaluate a model on the test file (and optionally by cross-validation), then gate it.

    The serving model is evaluated too when it has no report on this exact test file, so
    the comparison is always like for like. Cross-validation trains `folds` models, so it
    takes the training lock (unless the calling training job already holds it).
    """
    say = on_progress or (lambda _msg: None)
    sync(settings)
    factory = session_factory(settings.database_url)
    with factory() as s:
        row = resolve(s, settings, ref)
        model_id, path = row.id, file_of(settings, row)
        config = Path(row.config_path) if row.config_path else ROOT / "config.yml"
        base_row = effective_active(s, settings)
        base = (base_row.id, file_of(settings, base_row), loads(base_row.metrics)) \
            if base_row is not None and base_row.id != model_id else None
    if not path.is_file():
        raise RegistryError(f"Thiếu tệp mô hình {path}")
    if not test_file.is_file():
        raise EvaluationError(f"Không có tệp kiểm thử {test_file}")
    sha = file_sha256(test_file)

    say(f"Đánh giá {model_id} trên {display_path(test_file)}")
    metrics = run_test(settings, path, eval_dir(settings, model_id) / "test", test_file)
    _store(settings, model_id, metrics=dumps(metrics), evaluated_at=utcnow())
    if cross_validation:
        holder = f"cv:{model_id}"
        if not training_lock_held:
            try:
                locks.acquire(settings.database_url, locks.TRAINING, holder)
            except locks.LockBusy as exc:
                raise RegistryError(busy_message(exc.info)) from exc
        try:
            say(f"Kiểm định chéo {folds} phần với {display_path(config)} (lâu: huấn luyện "
                f"{folds} lần)")
            cv = run_cross_validation(settings, config, eval_dir(settings, model_id) / "cv",
                                      folds)
        finally:
            if not training_lock_held:
                locks.release(settings.database_url, locks.TRAINING, holder)
        _store(settings, model_id, cv_metrics=dumps(cv))
    if base is not None and (not base[2] or base[2].get("test_sha256") != sha):
        base_id, base_path, _ = base
        if base_path.is_file():
            say(f"Đánh giá mô hình đang dùng {base_id} trên cùng tệp kiểm thử")
            base_metrics = run_test(settings, base_path, eval_dir(settings, base_id) / "test",
                                    test_file)
            _store(settings, base_id, metrics=dumps(base_metrics), evaluated_at=utcnow())
    with factory() as s:
        row = s.get(ModelVersion, model_id)
        row.gate = dumps(gate_for(s, settings, row, test_file))
        s.commit()
        model = info_of(s, settings, row)
        base_row = s.get(ModelVersion, base[0]) if base is not None else None
        baseline = info_of(s, settings, base_row) if base_row is not None else None
    return Evaluation(model=model, baseline=baseline)


def busy_message(info: locks.LockInfo) -> str:
    """Why a training cannot start now, for operators."""
    started = (info.acquired_at + timedelta(hours=7)).strftime("%H:%M %d/%m/%Y")  # giờ VN
    return (f"Đang có một lượt huấn luyện khác ({info.holder}, bắt đầu lúc {started}, máy "
            f"{info.host}): mỗi lần chỉ huấn luyện một mô hình.")

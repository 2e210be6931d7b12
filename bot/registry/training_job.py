"""Training through the registry: one at a time, in the background or in the terminal.

A job runs `python -m bot train --force` (the very command operators know, so the data
preparation is the same: lexicon, accent-free copies, catalog) as a child process, reads its
output and turns Rasa's lines into a progress row that the console polls (percent, a
Vietnamese phase, epoch k of n). When the model is saved it is registered as a candidate and,
unless asked not to, evaluated and gated against the serving model (evaluation.py); it never
starts serving by itself.

Only one training runs at a time: a `registry_locks` row (locks.py) that the running job
refreshes every 10 s. A background job runs in its own process group (`start_training`
spawns `python -m bot.registry.training_job JOB_ID`), so the console's request returns at
once, the gateway may restart meanwhile, and `cancel_training` stops the whole tree.

With TRAINING_MODE=queue (Docker Compose, Kubernetes) the gateway only writes a `queued`
row (`request_training`); the trainer service (bot.registry.trainer) claims it and runs it
in its own container, sized for `rasa train` (the gateway's limit, 1 GiB, is not).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from bot.catalog.db import session_factory
from bot.config import ROOT, Settings
from bot.registry import locks
from bot.registry.evaluation import busy_message, display_path, evaluate
from bot.registry.models import CANCELLED, FAILED, QUEUED, RUNNING, SUCCEEDED, TrainingJob
from bot.registry.registry import (
    RegistryError,
    active_info,
    dumps,
    iso,
    loads,
    register_trained,
)
from bot.timeutil import utcnow

HEARTBEAT_SECONDS = 10.0
WRITE_EVERY = 1.0  # seconds between progress writes (a phase change is written at once)
TRAIN_SHARE = 85.0  # percent of a job spent training when it also evaluates

QUEUED_PHASE = "Đang chờ máy huấn luyện (dịch vụ trainer) nhận việc"
CANCEL_KEY = "cancel_requested_by"  # in a queued-mode job's options: stop it (the trainer)

ANSI_RE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
EPOCHS_RE = re.compile(r"Epochs:\s*(\d+)%\|[^|]*\|\s*(\d+)/(\d+)")
COMPONENT_RE = re.compile(r"Starting to train component '([^']+)'")
FINISHED_RE = re.compile(r"Finished training component '([^']+)'")
SAVED_RE = re.compile(r"Your Rasa model is trained and saved at '([^']+)'")
VALIDATING = "Started validating domain and training data"


class TrainingBusy(RegistryError):
    """Another training holds the lock."""


@dataclass
class TrainingProgress:
    """Progress of one `rasa train`, from its output lines (tqdm bars included).

    `fraction` only grows: DIET's epoch bar spans 5 %–95 %, the steps around it the rest.
    A second epoch bar (a TEDPolicy, a ResponseSelector) cannot move it backwards.
    """

    fraction: float = 0.0
    phase: str = "Chuẩn bị dữ liệu huấn luyện"
    component: str | None = None
    epoch: int | None = None
    epochs: int | None = None
    model_path: str | None = None

    def feed(self, line: str) -> bool:
        """Take one output line (a `\\r`-separated tqdm update counts as a line)."""
        line = ANSI_RE.sub("", line).strip()
        if not line:
            return False
        before = (round(self.fraction, 3), self.phase)
        if m := EPOCHS_RE.search(line):
            self.epoch, self.epochs = int(m.group(2)), int(m.group(3))
            if self.epochs:
                self._advance(0.05 + 0.90 * self.epoch / self.epochs)
            name = self.component or "mô hình"
            self.phase = f"Huấn luyện {name}: vòng {self.epoch}/{self.epochs}"
        elif VALIDATING in line:
            self._advance(0.02)
            self.phase = "Kiểm tra miền hội thoại và dữ liệu huấn luyện"
        elif m := COMPONENT_RE.search(line):
            self.component = m.group(1).rsplit(".", 1)[-1]
            self._advance(0.05 if self.fraction < 0.05 else self.fraction)
            self.phase = f"Huấn luyện {self.component}"
        elif (m := FINISHED_RE.search(line)) and m.group(1).endswith("DIETClassifier"):
            self._advance(0.95)
        elif m := SAVED_RE.search(line):
            self.model_path = m.group(1)
            self._advance(1.0)
            self.phase = "Đã lưu mô hình"
        return (round(self.fraction, 3), self.phase) != before

    def _advance(self, value: float) -> None:
        self.fraction = max(self.fraction, min(value, 1.0))


@dataclass(frozen=True)
class JobInfo:
    """A training job as the console polls it."""

    id: str
    status: str
    requested_by: str
    config_path: str
    options: dict = field(default_factory=dict)
    background: bool = False
    created_at: Any = None
    updated_at: Any = None
    finished_at: Any = None
    percent: float = 0.0
    phase: str | None = None
    epoch: int | None = None
    epochs: int | None = None
    pid: int | None = None
    host: str | None = None
    log_path: str | None = None
    model_id: str | None = None
    error: str | None = None

    @property
    def running(self) -> bool:
        return self.status == RUNNING

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("created_at", "updated_at", "finished_at"):
            out[key] = iso(out[key])
        return out


def _job_info(row: TrainingJob) -> JobInfo:
    return JobInfo(id=row.id, status=row.status, requested_by=row.requested_by,
                   config_path=row.config_path, options=loads(row.options) or {},
                   background=bool(row.background), created_at=row.created_at,
                   updated_at=row.updated_at, finished_at=row.finished_at,
                   percent=round(row.percent or 0.0, 1), phase=row.phase, epoch=row.epoch,
                   epochs=row.epochs, pid=row.pid, host=row.host, log_path=row.log_path,
                   model_id=row.model_id, error=row.error)


def data_fingerprint(settings: Settings, config: Path) -> str:
    """SHA-256 of what a model learns from: NLU/rules/stories, domain, config, catalog phrases,
    the operators' corrections stored in the database.

    Two models with the same fingerprint were trained on the same inputs, so a difference
    between them is training noise, not a data change.
    """
    from bot.training import catalog_fingerprint, pending_corrections

    digest = hashlib.sha256()
    files = [ROOT / "domain.yml", config]
    for folder in ("nlu", "rules", "stories"):
        files += sorted((ROOT / "data" / folder).rglob("*.yml"))
    for path in files:
        if path.is_file():
            digest.update(display_path(path).encode() + b"\0" + path.read_bytes() + b"\0")
    try:
        digest.update(catalog_fingerprint(settings.database_url).encode())
    except Exception:  # noqa: BLE001 - an unreadable catalog must not stop the fingerprint
        digest.update(b"catalog:unavailable")
    try:
        pending = pending_corrections(settings.database_url) or ""
        digest.update(b"corrections\0" + pending.encode())
    except Exception:  # noqa: BLE001 - likewise
        digest.update(b"corrections:unavailable")
    return digest.hexdigest()


def _update(settings: Settings, job_id: str, **values: Any) -> None:
    with session_factory(settings.database_url)() as s:
        row = s.get(TrainingJob, job_id)
        if row is not None:
            for key, value in values.items():
                setattr(row, key, value)
            row.updated_at = utcnow()
            s.commit()


def _reap_stale(settings: Settings, replaced: locks.LockInfo | None) -> None:
    """Mark the job of a lock that was taken over as failed (its process is gone)."""
    if replaced is None:
        return
    with session_factory(settings.database_url)() as s:
        row = s.get(TrainingJob, replaced.holder)
        if row is not None and row.status == RUNNING:
            row.status, row.finished_at = FAILED, utcnow()
            row.error = ("Tiến trình huấn luyện đã dừng bất thường (máy khởi động lại hoặc "
                         "tiến trình bị tắt).")
            s.commit()


def _create_job(settings: Settings, by: str, config: Path, options: dict[str, Any],
                background: bool) -> str:
    """Take the training lock and write the job row; TrainingBusy when another one runs."""
    if not config.is_file():
        raise RegistryError(f"Không có tệp cấu hình {config}")
    job_id = uuid.uuid4().hex[:12]
    try:
        replaced = locks.acquire(settings.database_url, locks.TRAINING, job_id)
    except locks.LockBusy as exc:
        raise TrainingBusy(busy_message(exc.info)) from exc
    _reap_stale(settings, replaced)
    log_dir = settings.models_dir / "jobs"
    log_dir.mkdir(parents=True, exist_ok=True)
    now = utcnow()
    with session_factory(settings.database_url)() as s:
        s.add(TrainingJob(id=job_id, status=RUNNING, requested_by=by,
                          config_path=str(config.resolve()), options=dumps(options),
                          background=background, created_at=now, updated_at=now, percent=0.0,
                          phase="Đang chờ bắt đầu", pid=os.getpid(), host=socket.gethostname(),
                          log_path=str(log_dir / f"{job_id}.log")))
        s.commit()
    return job_id


class _Cancelled(Exception):
    """SIGTERM from `cancel_training` reached a background worker."""


def _heartbeat_loop(settings: Settings, job_id: str, stop: threading.Event) -> None:
    while not stop.wait(HEARTBEAT_SECONDS):
        try:
            locks.heartbeat(settings.database_url, locks.TRAINING, job_id)
            _update(settings, job_id)
        except Exception:  # noqa: BLE001 - a database hiccup must not kill the training
            pass


def _train_child(settings: Settings, job: TrainingJob, log_file: Any,
                 report: Callable[[TrainingProgress, bool], None]) -> Path:
    """Run `bot train --force` and follow its output; the saved model's path."""
    from bot.stack import service_env

    before = set(settings.models_dir.glob("*.tar.gz"))
    cmd = [sys.executable, "-m", "bot", "train", "--force", "--config", job.config_path]
    env = {**service_env(settings), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    progress = TrainingProgress()
    pending = b""
    try:
        assert proc.stdout is not None
        while chunk := proc.stdout.read1(65536):
            log_file.write(chunk)
            pending += chunk
            *lines, pending = re.split(rb"[\r\n]", pending)
            changed = False
            for line in lines:
                changed |= progress.feed(line.decode("utf-8", errors="replace"))
            if changed:
                report(progress, False)
        if pending:
            progress.feed(pending.decode("utf-8", errors="replace"))
        code = proc.wait()
    except BaseException:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        raise
    finally:
        log_file.flush()
    if code != 0:
        raise RegistryError(f"Huấn luyện thất bại (mã thoát {code}); nhật ký: {job.log_path}")
    report(progress, True)
    if progress.model_path and Path(progress.model_path).is_file():
        return Path(progress.model_path)
    new = sorted(set(settings.models_dir.glob("*.tar.gz")) - before,
                 key=lambda p: p.stat().st_mtime)
    if not new:
        raise RegistryError(f"Huấn luyện xong nhưng không thấy tệp mô hình mới trong "
                            f"{settings.models_dir}")
    return new[-1]


def _log_tail(path: str | None, lines: int = 12) -> str:
    if not path or not Path(path).is_file():
        return ""
    text = ANSI_RE.sub("", Path(path).read_text(encoding="utf-8", errors="replace"))
    kept = [ln for ln in re.split(r"[\r\n]", text) if ln.strip() and "Epochs:" not in ln]
    return "\n".join(kept[-lines:])


def _execute(settings: Settings, job_id: str,
             on_progress: Callable[[JobInfo], None] | None = None) -> JobInfo:
    """Run a created job to its end (this process holds the lock until it returns)."""
    factory = session_factory(settings.database_url)
    with factory() as s:
        job = s.get(TrainingJob, job_id)
        s.expunge(job)
    options = loads(job.options) or {}
    evaluate_after = options.get("evaluate", True)
    share = TRAIN_SHARE if evaluate_after else 100.0
    state = {"last": 0.0, "percent": 0.0, "phase": job.phase}

    def publish(force: bool = False, **values: Any) -> None:
        state.update({k: v for k, v in values.items() if k in ("percent", "phase")})
        now = time.monotonic()
        if force or now - state["last"] >= WRITE_EVERY:
            state["last"] = now
            _update(settings, job_id, **values)
        if on_progress is not None:
            on_progress(JobInfo(id=job_id, status=RUNNING, requested_by=job.requested_by,
                                config_path=job.config_path, percent=state["percent"],
                                phase=state["phase"], epoch=values.get("epoch"),
                                epochs=values.get("epochs")))

    def report(progress: TrainingProgress, final: bool) -> None:
        phase_changed = progress.phase != state["phase"]
        publish(force=final or phase_changed, percent=round(progress.fraction * share, 1),
                phase=progress.phase, epoch=progress.epoch, epochs=progress.epochs)

    stop = threading.Event()
    beat = threading.Thread(target=_heartbeat_loop, args=(settings, job_id, stop), daemon=True)
    beat.start()
    status, error, model_id = FAILED, None, None
    try:
        parent = active_info(settings)
        publish(force=True, percent=0.0, phase="Chuẩn bị dữ liệu huấn luyện")
        config = Path(job.config_path)
        fingerprint = data_fingerprint(settings, config)
        with open(job.log_path, "ab") as log_file:
            path = _train_child(settings, job, log_file, report)
        model = register_trained(settings, path, job.requested_by, job_id=job_id,
                                 parent_id=parent.id if parent else None,
                                 config_path=str(config), data_fingerprint=fingerprint)
        model_id = model.id
        status = SUCCEEDED
        _update(settings, job_id, model_id=model_id)
        if evaluate_after:
            steps = iter(range(1, 10))

            def say(message: str) -> None:
                publish(force=True, percent=min(TRAIN_SHARE + 5 * next(steps), 99.0),
                        phase=message)

            try:
                result = evaluate(model_id, settings,
                                  cross_validation=options.get("cross_validation", False),
                                  folds=int(options.get("folds", 3)), on_progress=say,
                                  training_lock_held=True)
                verdict = "đạt" if result.gate.get("passed") else "KHÔNG đạt"
                final_phase = f"Xong: {model_id} ({verdict} so với mô hình đang dùng)"
            except RegistryError as exc:
                error = f"Mô hình đã lưu nhưng đánh giá thất bại: {exc}"
                final_phase = f"Xong: {model_id} (chưa đánh giá được)"
        else:
            final_phase = f"Xong: {model_id}"
        publish(force=True, percent=100.0, phase=final_phase)
    except (_Cancelled, KeyboardInterrupt):
        status, error = CANCELLED, "Đã hủy trong lúc huấn luyện."
        raise
    except RegistryError as exc:
        error = str(exc)
        tail = _log_tail(job.log_path)
        if tail:
            error += "\n" + tail
    except Exception as exc:  # noqa: BLE001 - recorded for the console, then re-raised
        error = f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=5)}"
        raise
    finally:
        stop.set()
        _update(settings, job_id, status=status, error=error, model_id=model_id,
                finished_at=utcnow())
        locks.release(settings.database_url, locks.TRAINING, job_id)
    return get_job(settings, job_id)


def train_model(settings: Settings, by: str, config: Path | None = None,
                evaluate: bool = True, cross_validation: bool = False, folds: int = 3,
                on_progress: Callable[[JobInfo], None] | None = None) -> JobInfo:
    """Train in this process (the CLI, tests); the finished job. TrainingBusy if one runs.

    A failed training returns the job with status `failed` and the reason in `error`;
    Ctrl-C records `cancelled` and re-raises.
    """
    config = (config or ROOT / "config.yml").resolve()
    options = {"evaluate": evaluate, "cross_validation": cross_validation, "folds": folds}
    job_id = _create_job(settings, by, config, options, background=False)
    return _execute(settings, job_id, on_progress)


def start_training(settings: Settings, by: str, config: Path | None = None,
                   evaluate: bool = True, cross_validation: bool = False,
                   folds: int = 3) -> str:
    """Start a background training and return its job id at once (TrainingBusy if one runs).

    With TRAINING_MODE=queue only the request is written (`request_training`): this process
    never trains. Poll `get_job(settings, job_id)` for its progress.
    """
    from bot.stack import service_env

    config = (config or ROOT / "config.yml").resolve()
    options = {"evaluate": evaluate, "cross_validation": cross_validation, "folds": folds}
    if settings.training_mode == "queue":
        return request_training(settings, by, config, options)
    job_id = _create_job(settings, by, config, options, background=True)
    log_path = settings.models_dir / "jobs" / f"{job_id}.log"
    try:
        with open(log_path, "ab") as log_file:
            proc = subprocess.Popen(
                [sys.executable, "-m", "bot.registry.training_job", job_id], cwd=ROOT,
                env={**service_env(settings), "PYTHONUNBUFFERED": "1"}, stdout=log_file,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    except OSError as exc:
        _update(settings, job_id, status=FAILED, error=str(exc), finished_at=utcnow())
        locks.release(settings.database_url, locks.TRAINING, job_id)
        raise RegistryError(f"Không khởi động được tiến trình huấn luyện: {exc}") from exc
    # The worker owns the lock from now on; reap it when it ends (no zombie in a gateway).
    locks.heartbeat(settings.database_url, locks.TRAINING, job_id, pid=proc.pid)
    _update(settings, job_id, pid=proc.pid)
    threading.Thread(target=proc.wait, daemon=True).start()
    return job_id


def request_training(settings: Settings, by: str, config: Path, options: dict[str, Any]) -> str:
    """Queue mode: write a `queued` job for the trainer service and return its id at once;
    TrainingBusy while another one waits or runs (one at a time, as inline)."""
    if not config.is_file():
        raise RegistryError(f"Không có tệp cấu hình {config}")
    busy = current_job(settings)
    if busy is not None:
        raise TrainingBusy(f"Đã có một lượt huấn luyện ({busy.id}, do {busy.requested_by} yêu "
                           f"cầu) đang {'chờ' if busy.status == QUEUED else 'chạy'}: hãy đợi "
                           "lượt đó xong.")
    job_id = uuid.uuid4().hex[:12]
    now = utcnow()
    with session_factory(settings.database_url)() as s:
        s.add(TrainingJob(id=job_id, status=QUEUED, requested_by=by,
                          config_path=str(config), options=dumps({**options, "queued": True}),
                          background=True, created_at=now, updated_at=now, percent=0.0,
                          phase=QUEUED_PHASE))
        s.commit()
    return job_id


def claim_next(settings: Settings) -> str | None:
    """The trainer's side of `request_training`: take the oldest queued job (the training
    lock first, then the row from `queued` to `running`); None when there is none, or when
    a training holds the lock (a `bot model train` in a terminal, say)."""
    factory = session_factory(settings.database_url)
    with factory() as s:
        row = (s.query(TrainingJob).filter(TrainingJob.status == QUEUED)
               .order_by(TrainingJob.created_at).first())
        job_id = row.id if row is not None else None
    if job_id is None:
        return None
    try:
        replaced = locks.acquire(settings.database_url, locks.TRAINING, job_id)
    except locks.LockBusy:
        return None
    _reap_stale(settings, replaced)
    log_dir = settings.models_dir / "jobs"
    log_dir.mkdir(parents=True, exist_ok=True)
    with factory() as s:
        taken = s.query(TrainingJob).filter(
            TrainingJob.id == job_id, TrainingJob.status == QUEUED).update(
            {"status": RUNNING, "pid": os.getpid(), "host": socket.gethostname(),
             "log_path": str(log_dir / f"{job_id}.log"), "updated_at": utcnow(),
             "phase": "Chuẩn bị dữ liệu huấn luyện"}, synchronize_session=False)
        s.commit()
    if taken != 1:  # cancelled meanwhile
        locks.release(settings.database_url, locks.TRAINING, job_id)
        return None
    return job_id


def cancel_requested(settings: Settings, job_id: str) -> str | None:
    """Who asked to stop a job the trainer runs (`cancel_training` in queue mode), if any."""
    with session_factory(settings.database_url)() as s:
        row = s.get(TrainingJob, job_id)
        return (loads(row.options) or {}).get(CANCEL_KEY) if row is not None else None


def _cancel_queued(settings: Settings, job: JobInfo, by: str, wait: float) -> JobInfo:
    """Cancel in queue mode: a waiting job at once; a running one by asking its trainer
    (another container: no signal reaches it), which stops it within seconds."""
    if job.status == QUEUED:
        with session_factory(settings.database_url)() as s:
            s.query(TrainingJob).filter(TrainingJob.id == job.id,
                                        TrainingJob.status == QUEUED).update(
                {"status": CANCELLED, "error": f"Đã hủy bởi {by}.", "finished_at": utcnow(),
                 "updated_at": utcnow()}, synchronize_session=False)
            s.commit()
        if get_job(settings, job.id).status != RUNNING:
            return get_job(settings, job.id)
    _update(settings, job.id, options=dumps({**job.options, CANCEL_KEY: by}))
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline and get_job(settings, job.id).running:
        time.sleep(0.5)
    return get_job(settings, job.id)


def _check_alive(settings: Settings, row: TrainingJob) -> None:
    """A `running` job whose lock is gone or stale ended abnormally: say so in its row."""
    if row.status != RUNNING:
        return
    info = locks.read_lock(settings.database_url, locks.TRAINING)
    if info is not None and info.holder == row.id and not locks.is_stale(info):
        return
    if info is None and utcnow() - row.created_at < timedelta(seconds=5):
        return  # the row is being created: the lock comes first, but be lenient on clocks
    row.status, row.finished_at = FAILED, utcnow()
    row.error = ("Tiến trình huấn luyện đã dừng bất thường (máy khởi động lại hoặc tiến trình "
                 "bị tắt).")
    if info is not None and info.holder == row.id:
        locks.release(settings.database_url, locks.TRAINING, row.id)


def get_job(settings: Settings, job_id: str) -> JobInfo:
    """A job's progress (what the console polls); RegistryError for an unknown id."""
    with session_factory(settings.database_url)() as s:
        row = s.get(TrainingJob, job_id)
        if row is None:
            raise RegistryError(f"Không có lượt huấn luyện '{job_id}'")
        _check_alive(settings, row)
        s.commit()
        return _job_info(row)


def current_job(settings: Settings) -> JobInfo | None:
    """The training running now, else the one waiting for the trainer service, if any."""
    with session_factory(settings.database_url)() as s:
        rows = s.query(TrainingJob).filter(TrainingJob.status.in_((RUNNING, QUEUED)))\
            .order_by(TrainingJob.created_at).all()
        for row in rows:
            _check_alive(settings, row)
        s.commit()
        alive = sorted((r for r in rows if r.status in (RUNNING, QUEUED)),
                       key=lambda r: r.status != RUNNING)
        return _job_info(alive[0]) if alive else None


def list_jobs(settings: Settings, limit: int = 20) -> list[JobInfo]:
    """Recent training jobs, newest first."""
    current_job(settings)  # settles jobs whose process died
    with session_factory(settings.database_url)() as s:
        rows = (s.query(TrainingJob).order_by(TrainingJob.created_at.desc()).limit(limit).all())
        return [_job_info(r) for r in rows]


def group_alive(pgid: int) -> bool:
    """Whether a process of this group still runs (zombies, awaiting their reaper, do not)."""
    proc = Path("/proc")
    if not proc.is_dir():
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        return True
    for stat in proc.glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # the process ended while we looked
        if len(fields) > 2 and fields[2] == str(pgid) and fields[0] != "Z":
            return True
    return False


def cancel_training(settings: Settings, job_id: str, by: str, wait: float = 30.0) -> JobInfo:
    """Stop a background training (its whole process group) and free the lock."""
    job = get_job(settings, job_id)
    if job.status == QUEUED or (job.running and job.options.get("queued")):
        return _cancel_queued(settings, job, by, wait)
    if not job.running:
        raise RegistryError(f"Lượt huấn luyện {job_id} không còn chạy ({job.status}).")
    if not job.background:
        raise RegistryError("Lượt huấn luyện này chạy trong một cửa sổ dòng lệnh: dừng nó ở đó "
                            "(Ctrl-C).")
    if job.host != socket.gethostname():
        raise RegistryError(f"Lượt huấn luyện chạy trên máy {job.host}: hãy hủy từ máy đó.")
    if job.pid:
        try:
            os.killpg(job.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline and get_job(settings, job_id).running:
        time.sleep(0.5)
    while job.pid and group_alive(job.pid) and time.monotonic() < deadline:
        time.sleep(0.2)  # Rasa needs a moment to exit
    if job.pid and group_alive(job.pid):  # still there: no more asking
        try:
            os.killpg(job.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if get_job(settings, job_id).running:  # the worker did not clean up: do it for it
        locks.release(settings.database_url, locks.TRAINING, job_id)
    _update(settings, job_id, status=CANCELLED, error=f"Đã hủy bởi {by}.",
            finished_at=utcnow())
    return get_job(settings, job_id)


def worker_main(argv: list[str]) -> int:
    """`python -m bot.registry.training_job JOB_ID`: the background side of start_training."""
    if len(argv) != 1:
        print("usage: python -m bot.registry.training_job JOB_ID", file=sys.stderr)
        return 2

    def on_term(_signum: int, _frame: Any) -> None:
        raise _Cancelled()

    signal.signal(signal.SIGTERM, on_term)
    settings = Settings.from_env()
    job_id = argv[0]
    locks.heartbeat(settings.database_url, locks.TRAINING, job_id, pid=os.getpid())
    try:
        job = _execute(settings, job_id)
    except _Cancelled:
        return 143
    print(json.dumps(job.as_dict(), ensure_ascii=False), flush=True)
    return 0 if job.status == SUCCEEDED and not job.error else 1


if __name__ == "__main__":
    sys.exit(worker_main(sys.argv[1:]))

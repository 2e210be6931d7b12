"""The trainer service: runs the trainings the console asks for in queue mode.

With TRAINING_MODE=queue the gateway only writes a `queued` job (training_job.
request_training). This loop, `bot model trainer`, runs in a container of its own (Docker
Compose service `trainer`, Kubernetes Deployment `trainer`) with the memory `rasa train`
needs and the models volume: it claims the oldest queued job, runs it exactly as an inline
training does (`_execute`: train, register, evaluate, progress rows the console polls), and
waits for the next. One training at a time, across trainers and terminals: the training
lock in the database.

Stopping: SIGTERM ends the loop; a training in progress is stopped and recorded as
cancelled (the console shows why). An operator's "Dừng huấn luyện" reaches this process
through the job's row (`cancel_requested`): the watcher thread turns it into SIGUSR1,
which stops the training the same way without stopping the service.
"""

from __future__ import annotations

import logging
import os
import signal
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from bot.config import Settings
from bot.registry import training_job

log = logging.getLogger("bot.trainer")

POLL_SECONDS = 5.0  # between looks at the queue when it is empty
WATCH_SECONDS = 2.0  # between looks for a cancel request while a job runs
ALIVE_EVERY = 10.0  # the liveness file is touched this often
ALIVE_FILE = Path(tempfile.gettempdir()) / "dvc-trainer.alive"
ALIVE_WITHIN = 60.0  # `--alive`: the file must be this fresh


def _touch_alive(stop: threading.Event, path: Path = ALIVE_FILE) -> None:
    """Keep the liveness file fresh while the process answers (a probe reads its age)."""
    while True:
        try:
            path.touch()
        except OSError:
            pass
        if stop.wait(ALIVE_EVERY):
            return


def alive(path: Path = ALIVE_FILE, within: float = ALIVE_WITHIN) -> bool:
    """Whether a trainer in this container touched the liveness file lately (the probe)."""
    try:
        return time.time() - path.stat().st_mtime < within
    except OSError:
        return False


def _watch_cancel(settings: Settings, job_id: str, done: threading.Event) -> None:
    """Signal this process (SIGUSR1) when an operator asks to stop the running job."""
    while not done.wait(WATCH_SECONDS):
        try:
            by = training_job.cancel_requested(settings, job_id)
        except SQLAlchemyError:
            continue
        if by:
            log.info("training %s: stop asked by %s", job_id, by)
            os.kill(os.getpid(), signal.SIGUSR1)
            return


def run_job(settings: Settings, job_id: str, watch: bool = False) -> None:
    """Run one claimed job to its end; its row records how it ended, so nothing is raised
    for a failed or cancelled training (the loop goes on with the next). `watch`: follow
    cancel requests (only where SIGUSR1 is handled: `trainer_main`)."""
    done = threading.Event()
    if watch:
        threading.Thread(target=_watch_cancel, args=(settings, job_id, done),
                         name="trainer-cancel", daemon=True).start()
    try:
        job = training_job._execute(settings, job_id)
        log.info("training %s: %s %s", job_id, job.status, job.model_id or job.error or "")
    except training_job._Cancelled:
        log.info("training %s: cancelled", job_id)
    except Exception:  # noqa: BLE001 - recorded in the job's row by _execute
        log.exception("training %s failed", job_id)
    finally:
        done.set()


def run_trainer(settings: Settings, stop: threading.Event | None = None, *,
                poll: float = POLL_SECONDS, once: bool = False,
                runner: Callable[[Settings, str], None] = run_job) -> int:
    """Claim and run queued trainings until `stop` is set (or, with `once`, until the queue
    is empty); returns how many ran."""
    stop = stop or threading.Event()
    ran = 0
    while not stop.is_set():
        try:
            job_id = training_job.claim_next(settings)
        except SQLAlchemyError as exc:  # the database is away: try again later
            log.warning("trainer: queue not readable: %s", exc)
            job_id = None
        if job_id is not None:
            log.info("training %s: claimed", job_id)
            runner(settings, job_id)
            ran += 1
            continue
        if once:
            break
        stop.wait(poll)
    return ran


def trainer_main(settings: Settings, once: bool = False) -> int:
    """`bot model trainer`: the service's main loop, with its signals and liveness file."""
    logging.basicConfig(level=settings.log_level,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = threading.Event()
    running = {"job": False}

    def on_term(_signum: int, _frame: Any) -> None:
        stop.set()
        if running["job"]:
            raise training_job._Cancelled()

    def on_cancel(_signum: int, _frame: Any) -> None:
        if running["job"]:
            raise training_job._Cancelled()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGUSR1, on_cancel)
    threading.Thread(target=_touch_alive, args=(stop,), name="trainer-alive",
                     daemon=True).start()
    log.info("trainer: waiting for trainings (models in %s)", settings.models_dir)

    def tracked(settings_: Settings, job_id: str) -> None:
        running["job"] = True
        try:
            run_job(settings_, job_id, watch=True)
        finally:
            running["job"] = False

    run_trainer(settings, stop, once=once, runner=tracked)
    return 0

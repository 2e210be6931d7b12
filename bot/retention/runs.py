"""When retention runs: under a lock shared by every process, recorded in the audit log,
daily in each gateway (`retention_ctx`) and by hand (`bot retention run`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import threading
from collections.abc import AsyncIterator, Callable
from datetime import timedelta

from aiohttp import web
from sqlalchemy import select

from bot.catalog.db import session_scope
from bot.config import Settings
from bot.retention.purge import BATCH, RetentionReport, purge

log = logging.getLogger(__name__)

LOCK_NAME = "retention"
LOCK_STALE_AFTER = 600.0  # seconds without a heartbeat (one per batch) before a takeover
AUDIT_ACTION = "retention.run"  # a completed run; a stopped one is "retention.stopped"
RUN_EVERY = timedelta(hours=23)  # a gateway runs it when no run completed for this long
CHECK_EVERY = 3600.0  # seconds between a gateway's checks
FIRST_CHECK_AFTER = 60.0  # seconds after the gateway started: not during its start-up
PAUSE = 0.05  # seconds between batches of a gateway's run: other writers get the lock


def _holder() -> str:
    return f"retention:{socket.gethostname()}:{os.getpid()}"


def ran_recently(database_url: str, within: timedelta = RUN_EVERY) -> bool:
    """Whether a run completed within `within` (the audit log's clock: local time)."""
    from bot.console.accounts import now as audit_now
    from bot.console.models import AuditEntry

    with session_scope(database_url) as s:
        return s.execute(select(AuditEntry.id).where(
            AuditEntry.action == AUDIT_ACTION,
            AuditEntry.at >= audit_now() - within).limit(1)).first() is not None


def _record(database_url: str, actor: str, report: RetentionReport) -> None:
    """The run's audit entry: deleting citizen data is a change to account for."""
    from bot.console.accounts import audit

    action = AUDIT_ACTION if report.complete else "retention.stopped"
    with session_scope(database_url) as s:
        audit(s, actor[:64], action, f"{report.days} ngày", report.as_dict())


def locked_run(database_url: str, days: int, actor: str, *,
               stop: threading.Event | None = None, pause: float = 0.0,
               if_due: bool = False, batch: int = BATCH) -> RetentionReport | None:
    """Purge under the "retention" lock and record it in the audit log.

    Raises bot.registry.locks.LockBusy when another process runs it. `if_due` (the gateway):
    None, doing nothing, when a run completed within RUN_EVERY. `stop` ends the run between
    two batches; the lock's heartbeat is renewed after every batch, and a lost lock ends it.
    """
    from bot.registry import locks

    holder = _holder()
    locks.acquire(database_url, LOCK_NAME, holder, stale_after=LOCK_STALE_AFTER)
    try:
        if if_due and ran_recently(database_url):
            return None
        stop = stop or threading.Event()

        def keep_going() -> bool:
            stopped = stop.wait(pause) if pause else stop.is_set()
            return not stopped and locks.heartbeat(database_url, LOCK_NAME, holder)

        report = purge(database_url, days, batch=batch, keep_going=keep_going)
        if report.complete or report.total:
            _record(database_url, actor, report)
        return report
    finally:
        locks.release(database_url, LOCK_NAME, holder)


def scheduled_run(database_url: str, days: int, stop: threading.Event) -> RetentionReport | None:
    """The gateway's periodic check: a run when due and no other process is running one."""
    from bot.registry.locks import LockBusy

    try:
        report = locked_run(database_url, days, "system:retention", stop=stop, pause=PAUSE,
                            if_due=True)
    except LockBusy:
        return None
    if report is not None:
        log.info("retention (%d days): deleted %d rows (%d conversations)%s", days,
                 report.total, report.conversations, "" if report.complete else ", stopped")
    return report


async def _periodic(database_url: str, days: int, stop: threading.Event) -> None:
    await asyncio.sleep(FIRST_CHECK_AFTER)
    while not stop.is_set():
        try:
            await asyncio.to_thread(scheduled_run, database_url, days, stop)
        except Exception:  # a database outage must not end the loop: next check retries
            log.exception("retention run failed")
        await asyncio.sleep(CHECK_EVERY)


def retention_ctx(settings: Settings) -> Callable[[web.Application], AsyncIterator[None]]:
    """Cleanup context: the periodic retention task (none with RETENTION_DAYS=0)."""

    async def retention(app: web.Application) -> AsyncIterator[None]:
        if settings.retention_days <= 0:
            yield
            return
        stop = threading.Event()
        task = asyncio.create_task(_periodic(settings.database_url, settings.retention_days,
                                             stop), name="retention")
        try:
            yield
        finally:
            stop.set()  # a batch in the worker thread is the last one
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    return retention

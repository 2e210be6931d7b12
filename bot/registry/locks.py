"""Named locks as database rows: one training at a time, one activation at a time.

Training takes both cores of the machine for minutes, so two operators starting two trainings
would make both crawl; two activations racing would leave Rasa servers on different models.
A row keyed by the lock's name is portable (SQLite, PostgreSQL) and visible to every process
and host on the database. Its holder refreshes `heartbeat_at`; a lock is stale, and may be
taken over, when the heartbeat is older than `stale_after` seconds or when its process no
longer exists on this host (a crash, a reboot, `kill -9`).
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, update
from sqlalchemy.exc import IntegrityError

from bot.catalog.db import session_factory
from bot.registry.models import RegistryLock
from bot.timeutil import utcnow

TRAINING = "training"
ACTIVATION = "activation"
DEFAULT_STALE_AFTER = 120.0  # seconds without a heartbeat (holders beat every 10 s)


def pid_alive(pid: int | None) -> bool:
    """Whether a process with this id exists on this host (True when we cannot tell)."""
    if not pid:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    return True


@dataclass(frozen=True)
class LockInfo:
    """Who holds a lock, for the refusal message and the console."""

    name: str
    holder: str
    pid: int | None
    host: str | None
    acquired_at: datetime
    heartbeat_at: datetime


class LockBusy(Exception):
    """The lock is held by a live holder."""

    def __init__(self, info: LockInfo) -> None:
        super().__init__(f"lock {info.name} held by {info.holder}")
        self.info = info


def _info(row: RegistryLock) -> LockInfo:
    return LockInfo(row.name, row.holder, row.pid, row.host, row.acquired_at, row.heartbeat_at)


def is_stale(info: LockInfo, stale_after: float = DEFAULT_STALE_AFTER,
             now: datetime | None = None) -> bool:
    """Old heartbeat, or a holder process that is gone from this host."""
    now = now or utcnow()
    if now - info.heartbeat_at > timedelta(seconds=stale_after):
        return True
    return info.host == socket.gethostname() and not pid_alive(info.pid)


def read_lock(database_url: str, name: str) -> LockInfo | None:
    """The current holder of `name`, stale or not; None when free."""
    with session_factory(database_url)() as s:
        row = s.get(RegistryLock, name)
        return _info(row) if row is not None else None


def acquire(database_url: str, name: str, holder: str, pid: int | None = None,
            stale_after: float = DEFAULT_STALE_AFTER) -> LockInfo | None:
    """Take the lock or raise `LockBusy`; returns the stale lock that was taken over, if any.

    The takeover deletes the stale row only if its heartbeat is still the one judged stale,
    so two processes taking over the same stale lock cannot both succeed: the loser's insert
    hits the primary key.
    """
    factory = session_factory(database_url)
    pid = pid if pid is not None else os.getpid()
    replaced: LockInfo | None = None
    info: LockInfo | None = None
    for _ in range(3):
        with factory() as s:
            now = utcnow()
            s.add(RegistryLock(name=name, holder=holder, pid=pid, host=socket.gethostname(),
                               acquired_at=now, heartbeat_at=now))
            try:
                s.commit()
                return replaced
            except IntegrityError:
                s.rollback()
            row = s.get(RegistryLock, name)
            if row is None:
                continue  # released in between: try again
            info = _info(row)
            if not is_stale(info, stale_after):
                raise LockBusy(info)
            s.execute(delete(RegistryLock).where(RegistryLock.name == name,
                                                 RegistryLock.heartbeat_at == info.heartbeat_at))
            s.commit()
            replaced = info
    current = read_lock(database_url, name) or info
    if current is None:  # freed and retaken three times in a row: report it as busy anyway
        now = utcnow()
        current = LockInfo(name, "?", None, None, now, now)
    raise LockBusy(current)


def heartbeat(database_url: str, name: str, holder: str, pid: int | None = None) -> bool:
    """Refresh the lock (and optionally hand it to another process); False if it was lost."""
    values: dict = {"heartbeat_at": utcnow()}
    if pid is not None:
        values["pid"] = pid
    with session_factory(database_url)() as s:
        result = s.execute(update(RegistryLock)
                           .where(RegistryLock.name == name, RegistryLock.holder == holder)
                           .values(**values))
        s.commit()
        return result.rowcount > 0


def release(database_url: str, name: str, holder: str) -> None:
    """Free the lock if `holder` still holds it (never someone else's after a takeover)."""
    with session_factory(database_url)() as s:
        s.execute(delete(RegistryLock).where(RegistryLock.name == name,
                                             RegistryLock.holder == holder))
        s.commit()

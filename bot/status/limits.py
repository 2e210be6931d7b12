"""Status look-up limits per client address and for all clients, shared by every replica.

Receipt codes are structured (agency + date + sequence), so they can be walked. The
per-conversation limit (actions/status.py) does not stop that: the citizen chooses the
sender id, and a new one per request starts a new conversation. These limits count what the
citizen cannot choose: the client address the gateway saw (a Zalo user id for Zalo), and all
look-ups together. The counts live in the database (`status_lookups`) rather than in one
process, so that action server replicas share them (PostgreSQL when scaled out).

Only new codes count: a client asking again about a code it looked up within the window is
admitted without using its budget, since enumeration means trying many codes. A refused
look-up is not recorded, so one address can never take more than its own limit of the
global budget.
"""

from __future__ import annotations

import hashlib
import zlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select, text
from sqlalchemy.orm import Session

from bot.catalog.db import session_scope
from bot.catalog.models import StatusLookup
from bot.config import Settings
from bot.timeutil import utcnow

# The pg_advisory_xact_lock key that serialises admissions across replicas on PostgreSQL, so
# a limit holds exactly (two replicas counting at once would both admit the last slot). On
# SQLite the DELETE that opens each admission takes the database's write lock, to the same
# effect.
PG_LOCK_KEY = zlib.crc32(b"dvc-assistant:status-lookups")
CODE_KEY_CHARS = 32  # the `code` column's width
# What `admit` answers: admitted, or which limit refused the look-up (for the log only).
ADMITTED, PER_CLIENT, OVERALL = "admitted", "per-client", "global"


@dataclass(frozen=True)
class LookupLimits:
    """Distinct codes per client, and look-ups of all clients, per window (0: no limit)."""

    per_client: int
    overall: int
    window_minutes: float

    @classmethod
    def from_settings(cls, settings: Settings) -> LookupLimits:
        return cls(settings.status_lookup_address_limit, settings.status_lookup_global_limit,
                   settings.status_lookup_window)

    @property
    def active(self) -> bool:
        return self.window_minutes > 0 and (self.per_client > 0 or self.overall > 0)


def code_key(code: str) -> str:
    """A code as stored: a hash (the table must not become a list of real codes)."""
    return hashlib.sha256(f"dvc-receipt:{code}".encode()).hexdigest()[:CODE_KEY_CHARS]


def _count(session: Session, since: datetime, client: str | None = None) -> int:
    query = select(func.count(StatusLookup.id)).where(StatusLookup.looked_up_at >= since)
    if client is not None:
        query = query.where(StatusLookup.client == client)
    return session.execute(query).scalar_one()


def _seen(session: Session, client: str, key: str, since: datetime) -> bool:
    """Whether `client` looked this code up within the window (a repeat costs nothing)."""
    return session.execute(select(StatusLookup.id).where(
        StatusLookup.client == client, StatusLookup.code == key,
        StatusLookup.looked_up_at >= since).limit(1)).first() is not None


def admit(database_url: str, client: str, code: str, limits: LookupLimits,
          now: datetime | None = None) -> str:
    """ADMITTED when `client` may look `code` up now (a new look-up is then recorded),
    else the limit that refuses it (PER_CLIENT or OVERALL).

    Blocking (SQLAlchemy here is synchronous): the action runs it in a worker thread.
    """
    if not limits.active:
        return ADMITTED
    now = now or utcnow()
    since = now - timedelta(minutes=limits.window_minutes)
    key = code_key(code)
    with session_scope(database_url) as s:
        # A citizen checking their own application again: one indexed read, no lock, no
        # write (on SQLite a plain SELECT does not open a write transaction).
        if _seen(s, client, key, since):
            return ADMITTED
        if s.get_bind().dialect.name == "postgresql":
            s.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PG_LOCK_KEY})
        # Expired rows go first: the table holds one window, and on SQLite this write
        # takes the lock that makes what follows exact.
        s.execute(delete(StatusLookup).where(StatusLookup.looked_up_at < since))
        if _seen(s, client, key, since):  # the same look-up recorded meanwhile
            return ADMITTED
        if limits.per_client > 0 and _count(s, since, client) >= limits.per_client:
            return PER_CLIENT
        if limits.overall > 0 and _count(s, since) >= limits.overall:
            return OVERALL
        s.add(StatusLookup(client=client, code=key, looked_up_at=now))
    return ADMITTED

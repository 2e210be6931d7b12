"""The status sources behind `StatusSource`, and the one place that picks by STATUS_SOURCE."""

from __future__ import annotations

import asyncio

from sqlalchemy import select

from bot.catalog.db import session_factory
from bot.catalog.models import ApplicationRecord
from bot.config import Settings
from bot.status.record import ApplicationStatus, StatusSource, StatusUnavailable

SOURCES = ("database", "http")


class StatusConfigError(ValueError):
    """Status lookup is misconfigured (message in Vietnamese)."""


class DatabaseStatusSource:
    """The `application_status` table filled by `bot status import` (the default)."""

    name = "database"

    def __init__(self, database_url: str) -> None:
        self._factory = session_factory(database_url)

    def lookup_sync(self, code: str) -> ApplicationStatus | None:
        with self._factory() as s:
            row = s.execute(select(ApplicationRecord)
                            .where(ApplicationRecord.receipt_code == code)).scalar_one_or_none()
        if row is None:
            return None
        return ApplicationStatus(
            receipt_code=row.receipt_code, status=row.status, procedure_code=row.procedure_code,
            agency=row.agency, received_at=row.received_at, due_at=row.due_at,
            finished_at=row.finished_at, note=row.note)

    async def lookup(self, code: str) -> ApplicationStatus | None:
        """Runs the query in a worker thread: the action server's event loop stays free."""
        try:
            return await asyncio.to_thread(self.lookup_sync, code)
        except Exception as exc:  # a database that went away is "unavailable", not a crash
            raise StatusUnavailable(f"database lookup failed: {type(exc).__name__}") from exc

    async def close(self) -> None:
        return None


def make_source(settings: Settings) -> StatusSource:
    """The configured source; StatusConfigError explains a wrong STATUS_SOURCE / HTTP setup."""
    if settings.status_source == "database":
        return DatabaseStatusSource(settings.database_url)
    if settings.status_source == "http":
        from bot.status.http_source import HttpStatusSource, MappingError

        try:
            return HttpStatusSource.from_settings(settings)
        except MappingError as exc:
            raise StatusConfigError(str(exc)) from exc
    raise StatusConfigError(
        f"STATUS_SOURCE={settings.status_source!r} không hợp lệ (cần: {', '.join(SOURCES)})")


def check_status_settings(settings: Settings) -> None:
    """Fail at start-up, not at a citizen's first question: source, patterns, calendar."""
    from bot.status.codes import matcher_for
    from bot.status.workdays import calendar_for

    make_source(settings)
    matcher_for(settings.receipt_code_patterns)
    calendar_for(settings.work_calendar)
    if min(settings.status_lookup_limit, settings.status_lookup_window,
           settings.status_lookup_address_limit, settings.status_lookup_global_limit) < 0:
        raise StatusConfigError("STATUS_LOOKUP_LIMIT, STATUS_LOOKUP_WINDOW_MINUTES, "
                                "STATUS_LOOKUP_ADDRESS_LIMIT và STATUS_LOOKUP_GLOBAL_LIMIT "
                                "không được âm")

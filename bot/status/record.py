"""What a status source returns, and the value parsing every source shares.

The CSV importer and the HTTP adapter both turn strings from outside into an
`ApplicationStatus`, so dates and status words are parsed here once: a province's export
and its live system then mean the same thing by "2025-03-20" or "20/03/2025 17:00".
No field holds personal data (names, ID numbers, addresses): a status row must be safe to
show to whoever knows the receipt code.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Protocol

# The statuses we understand, in the order an application moves through them.
STATUSES = ("received", "processing", "need_supplement", "done", "rejected", "returned")
# Statuses after which nothing more happens to the application.
FINAL_STATUSES = frozenset({"done", "rejected", "returned"})

# Common spellings in provincial systems' exports, folded to ours (lower case, no accents
# are handled by the caller's mapping; these are the English/ASCII aliases).
_STATUS_ALIASES = {
    "new": "received", "accepted": "received", "submitted": "received",
    "in_progress": "processing", "pending": "processing",
    "supplement": "need_supplement", "additional_required": "need_supplement",
    "completed": "done", "finished": "done", "approved": "done",
    "refused": "rejected", "denied": "rejected",
    "delivered": "returned",
}

_DATETIME_FORMATS = ("%d/%m/%Y %H:%M:%S", "%d/%m/%Y %H:%M", "%d/%m/%Y", "%d-%m-%Y")


class StatusUnavailable(Exception):
    """The status system could not answer now (down, slow, or an answer we cannot read)."""


class StatusValueError(ValueError):
    """A field value from outside that is not a valid date or status (message in Vietnamese)."""


@dataclass(frozen=True)
class ApplicationStatus:
    """One application's state as the one-stop system knows it (naive Vietnam local times)."""

    receipt_code: str
    status: str  # one of STATUSES
    procedure_code: str | None = None
    agency: str | None = None
    received_at: datetime | None = None
    due_at: datetime | None = None
    finished_at: datetime | None = None
    note: str | None = None  # where/how to pick up the result, what to supplement

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES


class StatusSource(Protocol):
    """Where statuses come from: the project's table or a provincial case system."""

    name: str

    async def lookup(self, code: str) -> ApplicationStatus | None:
        """The application with this normalized receipt code, or None if unknown.

        Raises StatusUnavailable when the source cannot answer now.
        """
        ...


def parse_status(value: str) -> str:
    """One of STATUSES from a status word ("done", "DONE", "completed"…)."""
    key = value.strip().lower().replace("-", "_").replace(" ", "_")
    key = _STATUS_ALIASES.get(key, key)
    if key not in STATUSES:
        raise StatusValueError(
            f"trạng thái {value!r} không hợp lệ (cần một trong: {', '.join(STATUSES)})")
    return key


def parse_when(value: str | None) -> datetime | None:
    """A date or date-time: ISO 8601 ("2025-03-20", "2025-03-20T17:00") or dd/mm/yyyy.

    Blank is None. A time zone, if given, is converted to Vietnam time and dropped, so all
    times compare as local times.
    """
    if value is None:
        return None
    text = str(value).strip()
    if not text:
        return None
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        when = None
        for fmt in _DATETIME_FORMATS:
            try:
                when = datetime.strptime(text, fmt)
                break
            except ValueError:
                continue
        if when is None:
            raise StatusValueError(
                f"ngày {text!r} không hợp lệ (cần dạng 2025-03-20 hoặc 2025-03-20T17:00)"
            ) from None
    if when.tzinfo is not None:
        from datetime import timedelta, timezone

        when = when.astimezone(timezone(timedelta(hours=7))).replace(tzinfo=None)
    return when


def as_date(value: datetime | date | None) -> date | None:
    """The calendar day of a date-time (lateness is counted in whole days)."""
    if value is None:
        return None
    return value.date() if isinstance(value, datetime) else value

"""The fee book: national rules from the catalog plus the provinces' override files.

Actions, the CLI and the API hold one `FeeBook` and ask it for decisions; it knows which
override rules belong to which province and what "today" is for a Vietnamese citizen.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from bot.catalog.models import Procedure
from bot.config import Settings
from bot.fees.overrides import OVERRIDES_DIR, OverrideError, load_overrides
from bot.fees.provinces import Province, find_province
from bot.fees.rules import CHANNELS, COUNCIL, Decision, Rule, resolve
from bot.fees.store import rules_of
from bot.fees.stored import read_revision, read_stored

log = logging.getLogger(__name__)

# Việt Nam has kept UTC+7 without daylight saving since 1975: a fixed offset is exact and
# needs no tz database on the machine.
VIETNAM = timezone(timedelta(hours=7))


def vietnam_today() -> date:
    """Today's date in Việt Nam (a fee that ends "hết ngày 31/12" ends at its midnight)."""
    return datetime.now(VIETNAM).date()


@dataclass
class FeeBook:
    """Override rules by province code, ready to combine with a procedure's stored rules."""

    overrides: dict[str, list[Rule]] = field(default_factory=dict)

    @classmethod
    def load(cls, folder: Path = OVERRIDES_DIR, database_url: str | None = None) -> FeeBook:
        """Read and validate every override (OverrideError lists all problems): the files
        of `folder`, and the console's edits stored in the database of `database_url`."""
        stored = read_stored(database_url) if database_url else None
        return cls(load_overrides(folder, stored))

    def rules_for(self, p: Procedure, province: str | None) -> list[Rule]:
        return rules_of(p) + (self.overrides.get(province, []) if province else [])

    def decide(self, p: Procedure, channel: str, day: date, province: str | None = None,
               situation: tuple[str, ...] | list[str] = ()) -> Decision:
        """The fee of `p` through `channel` on `day` for a citizen of `province`."""
        return resolve(self.rules_for(p, province), p.code, channel, day, province,
                       situation, council_set=p.fee_set_by == COUNCIL)

    def decide_channels(self, p: Procedure, day: date, province: str | None = None,
                        situation: tuple[str, ...] | list[str] = (),
                        channels: list[str] | None = None) -> list[Decision]:
        """One decision per channel: the given ones, else the procedure's, else all three."""
        if channels is None:
            channels = list(dict.fromkeys(ch.channel for ch in p.channels)) or list(CHANNELS)
        return [self.decide(p, ch, day, province, situation) for ch in channels]


def _signature(folder: Path) -> tuple[tuple[str, str], ...]:
    """What changes when an operator edits, adds or removes an override file.

    Content hashes, not modification times: the files are small, and an edit within the
    file system's time resolution must still count.
    """
    if not folder.is_dir():
        return ()
    out = []
    for p in sorted(folder.glob("*.yaml")):
        try:
            out.append((p.name, hashlib.sha256(p.read_bytes()).hexdigest()))
        except OSError:
            out.append((p.name, "unreadable"))
    return tuple(out)


Signature = tuple[tuple[tuple[str, str], ...], int]


def _sources(folder: Path, database_url: str | None) -> Signature:
    """What changes when an override changes: the folder's files and, with a database,
    the stored overrides' revision (one query: every replica sees a console edit)."""
    return _signature(folder), read_revision(database_url) if database_url else 0


class LiveFeeBook:
    """A FeeBook that follows edits of the overrides without a restart.

    Long-running processes (action server, gateway) call `get()` per answer; the folder and
    the database's override revision are looked at most every `check_every` seconds. An
    edit that makes a file invalid is logged and the last valid rules stay in force: a typo
    must not silently drop Hà Nội's rule.

    Invalid files at start raise OverrideError, unless `strict` is False: then the book
    starts with national rules only (the error is logged and kept in `error`) and picks up
    the files once they are fixed, instead of every caller re-reading them.
    """

    def __init__(self, folder: Path = OVERRIDES_DIR, check_every: float = 5.0,
                 strict: bool = True, database_url: str | None = None) -> None:
        self.folder = folder
        self.check_every = check_every
        self.database_url = database_url
        self._lock = threading.Lock()
        self._signature: Signature | None = _sources(folder, database_url)
        self.error: str | None = None
        try:
            self._book = FeeBook.load(folder, database_url)
        except OverrideError as exc:
            if strict:
                raise
            log.error("fee override files invalid, national rules only: %s", exc)
            self._book, self.error = FeeBook(), str(exc)
        self._checked = time.monotonic()

    def get(self) -> FeeBook:
        with self._lock:
            now = time.monotonic()
            if now - self._checked < self.check_every:
                return self._book
            self._checked = now
            try:
                signature = _sources(self.folder, self.database_url)
            except SQLAlchemyError as exc:  # a database hiccup: keep answering
                log.warning("fee overrides not checked (database): %s", exc)
                return self._book
            if signature == self._signature:
                return self._book
            self._signature = signature
            try:
                self._book = FeeBook.load(self.folder, self.database_url)
                self.error = None
                log.info("fee overrides reloaded (%s and the database)", self.folder)
            except SQLAlchemyError as exc:
                self._signature = None  # read again at the next check
                log.warning("fee overrides not reloaded (database): %s", exc)
            except OverrideError as exc:
                self.error = str(exc)
                log.error("fee overrides not reloaded, keeping the previous rules: %s", exc)
            return self._book


class FeeInputError(ValueError):
    """A bad province, date or channel given by a person; the message says what is wrong."""


def parse_day(value: str | None) -> date:
    """YYYY-MM-DD, or today in Việt Nam when blank."""
    if not value:
        return vietnam_today()
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise FeeInputError(f"ngày {value!r} không hợp lệ: dùng dạng YYYY-MM-DD, "
                            "ví dụ 2026-12-31") from None


def parse_province(value: str | None) -> Province | None:
    """A province by code or name (with or without diacritics); blank: none."""
    if value is None or not value.strip():
        return None
    found = find_province(value)
    if found is None:
        raise FeeInputError(f"không biết tỉnh, thành phố {value!r}: dùng mã (Hà Nội = 01) "
                            "hoặc tên, ví dụ \"Hà Nội\", \"ha noi\", \"Đà Nẵng\"")
    return found


def check_fee_settings(settings: Settings, folder: Path | None = None) -> FeeBook:
    """The override files, PROVINCE and FEE_DATE, validated together (`bot run` refuses to
    start on a bad one: it would only show later as wrong amounts; `bot fees check`).

    Raises OverrideError or FeeInputError with the message for the operator.
    """
    book = FeeBook.load(folder or settings.fee_overrides_dir, settings.database_url)
    parse_province(settings.province)
    parse_day(settings.fee_date)
    return book

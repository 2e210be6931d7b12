"""When staff answer chats: `HANDOVER_HOURS` plus the holiday calendar.

Outside these hours a citizen who asks for a person is still queued (agents see the message
later), but is told when staff are back, so nobody waits in front of a silent chat at 22:00.

Format (Vietnam time): entries separated by ";", each a set of days and one or more time
ranges, e.g. ``mon-fri 07:30-11:30, 13:30-17:00; sat 08:00-12:00``. Days: ``mon``..``sun``
or ``t2``..``t7``, ``cn``, as a range (``mon-fri``) or a list (``mon,wed,fri``); times
``HH:MM`` (or ``8h00``), ``24:00`` allowed as an end. ``always`` means at any time.

Days off of the working-day calendar (`WORK_CALENDAR`, bot/status/workdays.py: statutory
holidays, Tết, `extra_days_off`) are closed whatever the weekday says; a make-up working day
(`extra_working_days`, usually a Saturday) gets the hours of a regular weekday.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from functools import lru_cache
from itertools import pairwise
from pathlib import Path

from bot.status.workdays import WEEKDAYS, CalendarError, WorkCalendar, calendar_for

log = logging.getLogger(__name__)

VIETNAM = timezone(timedelta(hours=7))  # no daylight saving time since 1975
ALWAYS = ("always", "24/7")
SEARCH_DAYS = 60  # far enough for Tết plus a weekend; beyond it "no opening" is said

WEEKDAY_VI = ("thứ Hai", "thứ Ba", "thứ Tư", "thứ Năm", "thứ Sáu", "thứ Bảy", "Chủ nhật")
_TIME_START_RE = re.compile(r"(?<![0-9a-z])[0-9]{1,2}[:h][0-9]{2}")
_RANGE_RE = re.compile(r"([0-9]{1,2})[:h]([0-9]{2})\s*[-–]\s*([0-9]{1,2})[:h]([0-9]{2})")
_DAY_NAMES = "mon, tue, wed, thu, fri, sat, sun hoặc t2..t7, cn"
EXAMPLE = "mon-fri 08:00-17:00; sat 08:00-12:00"

Span = tuple[time, time | None]  # None as the end: midnight at the end of the day (24:00)


class HoursError(ValueError):
    """An unusable HANDOVER_HOURS value; the Vietnamese message names the faulty part."""


@dataclass(frozen=True)
class WeekHours:
    """Opening spans per weekday (index 0 = Monday), sorted and non-overlapping."""

    days: tuple[tuple[Span, ...], ...]
    always: bool = False

    def describe(self) -> str:
        """The hours in Vietnamese: "thứ Hai – thứ Sáu 8:00–17:00; thứ Bảy 8:00–12:00"."""
        if self.always:
            return "mọi lúc"
        groups: list[tuple[int, int, tuple[Span, ...]]] = []
        for wd, spans in enumerate(self.days):
            if groups and groups[-1][2] == spans and groups[-1][1] == wd - 1:
                groups[-1] = (groups[-1][0], wd, spans)
            else:
                groups.append((wd, wd, spans))
        parts = []
        for first, last, spans in groups:
            if not spans:
                continue
            days = WEEKDAY_VI[first] if first == last else \
                f"{WEEKDAY_VI[first]} – {WEEKDAY_VI[last]}"
            parts.append(f"{days} " + ", ".join(
                f"{clock(a)}–{clock(b) if b else '24:00'}" for a, b in spans))
        return "; ".join(parts)


def clock(t: time) -> str:
    """8:00, 13:30 (how Vietnamese notices write times)."""
    return f"{t.hour}:{t.minute:02d}"


def _days(raw: str, entry: str) -> list[int]:
    out: list[int] = []
    for part in raw.split(","):
        part = part.strip()
        if not part:
            raise HoursError(f"HANDOVER_HOURS “{entry}”: thiếu tên ngày trước hoặc sau dấu phẩy")
        first, sep, last = part.partition("-")
        names = [first.strip(), last.strip()] if sep else [first.strip()]
        for name in names:
            if name not in WEEKDAYS:
                raise HoursError(f"HANDOVER_HOURS “{entry}”: “{name}” không phải tên ngày "
                                 f"(dùng {_DAY_NAMES})")
        a, b = WEEKDAYS[names[0]], WEEKDAYS[names[-1]]
        if a > b:
            raise HoursError(f"HANDOVER_HOURS “{entry}”: khoảng ngày “{part}” ngược chiều "
                             "(viết từ thứ Hai đến Chủ nhật, ví dụ mon-fri)")
        out.extend(range(a, b + 1))
    return out


def _time(hour: str, minute: str, entry: str, end: bool) -> time | None:
    h, m = int(hour), int(minute)
    if end and (h, m) == (24, 0):
        return None
    if h > 23 or m > 59:
        raise HoursError(f"HANDOVER_HOURS “{entry}”: giờ “{hour}:{minute}” không hợp lệ")
    return time(h, m)


def _spans(raw: str, entry: str) -> list[Span]:
    spans: list[Span] = []
    for part in raw.split(","):
        m = _RANGE_RE.fullmatch(part.strip())
        if not m:
            raise HoursError(f"HANDOVER_HOURS “{entry}”: “{part.strip()}” không phải khoảng giờ "
                             "dạng HH:MM-HH:MM (ví dụ 08:00-17:00)")
        start = _time(m[1], m[2], entry, end=False)
        stop = _time(m[3], m[4], entry, end=True)
        assert start is not None
        if stop is not None and stop <= start:
            raise HoursError(f"HANDOVER_HOURS “{entry}”: giờ kết thúc phải sau giờ bắt đầu "
                             f"(“{part.strip()}”)")
        spans.append((start, stop))
    return spans


def parse_hours(spec: str) -> WeekHours:
    """`HANDOVER_HOURS` → WeekHours, or HoursError with the entry and what is wrong."""
    text = " ".join(spec.strip().lower().split())
    if text in ALWAYS:
        return WeekHours(days=((),) * 7, always=True)
    if not text:
        raise HoursError(f"HANDOVER_HOURS trống: cần dạng “{EXAMPLE}” hoặc “always”")
    week: list[list[Span]] = [[] for _ in range(7)]
    for entry in (e.strip() for e in text.split(";")):
        if not entry:
            continue  # a trailing ";"
        m = _TIME_START_RE.search(entry)
        if m is None or not entry[:m.start()].strip():
            raise HoursError(f"HANDOVER_HOURS “{entry}”: cần ngày rồi khoảng giờ, ví dụ "
                             "“mon-fri 08:00-17:00”")
        days = _days(entry[:m.start()].replace(" ", ""), entry)
        spans = _spans(entry[m.start():], entry)
        for wd in days:
            week[wd].extend(spans)
    for wd, spans in enumerate(week):
        spans.sort(key=lambda s: s[0])
        for (_, end_a), (start_b, _) in pairwise(spans):
            if end_a is None or end_a > start_b:
                raise HoursError(f"HANDOVER_HOURS: các khoảng giờ của {WEEKDAY_VI[wd]} chồng "
                                 "lên nhau")
    if not any(week):
        raise HoursError(f"HANDOVER_HOURS không có khoảng giờ nào: cần dạng “{EXAMPLE}”")
    return WeekHours(days=tuple(tuple(s) for s in week))


def vietnam_now() -> datetime:
    return datetime.now(VIETNAM)


def _local(now: datetime) -> datetime:
    """An aware Vietnam-time datetime (a naive one is taken as Vietnam time already)."""
    return now.replace(tzinfo=VIETNAM) if now.tzinfo is None else now.astimezone(VIETNAM)


@dataclass(frozen=True)
class WorkingHours:
    """The weekly hours and the holiday calendar together: is staff there, and when next."""

    week: WeekHours
    calendar: WorkCalendar

    def spans_on(self, day: date) -> tuple[Span, ...]:
        """The opening spans of one calendar day (none on a day off)."""
        if self.calendar.holiday_name(day) is not None:
            return ()
        spans = self.week.days[day.weekday()]
        if not spans and day in self.calendar.extra_working_days:
            # A make-up working day is worked like a regular weekday: the first weekday
            # (Monday first) that has hours and is not part of the calendar's weekend.
            for wd in range(7):
                if self.week.days[wd] and wd not in self.calendar.weekend:
                    return self.week.days[wd]
        return spans

    def is_open(self, now: datetime) -> bool:
        if self.week.always:
            return True
        local = _local(now)
        t = local.time().replace(tzinfo=None)
        return any(start <= t and (end is None or t < end)
                   for start, end in self.spans_on(local.date()))

    def next_opening(self, now: datetime) -> datetime | None:
        """The start of the next opening at or after `now` (`now` itself when open), in
        Vietnam time; None when nothing opens within SEARCH_DAYS days."""
        local = _local(now)
        if self.is_open(local):
            return local
        t = local.time().replace(tzinfo=None)
        for offset in range(SEARCH_DAYS + 1):
            day = local.date() + timedelta(days=offset)
            for start, _ in self.spans_on(day):
                if offset or start > t:
                    return datetime.combine(day, start, tzinfo=VIETNAM)
        return None


def describe_opening(now: datetime, opening: datetime) -> str:
    """When staff are back, for a sentence "Cán bộ làm việc trở lại từ …".

    "13:30 hôm nay", "8:00 sáng mai (thứ Ba, 06/01)", "8:00 thứ Hai, ngày 05/01".
    """
    local, at = _local(now), _local(opening)
    days = (at.date() - local.date()).days
    hour = clock(at.time())
    if days <= 0:
        return f"{hour} hôm nay"
    when = f"{WEEKDAY_VI[at.weekday()]}, {at:%d/%m}"
    if days == 1:
        part = "sáng mai" if at.hour < 12 else "ngày mai"
        return f"{hour} {part} ({when})"
    year = f"/{at.year}" if at.year != local.year else ""
    return f"{hour} {WEEKDAY_VI[at.weekday()]}, ngày {at:%d/%m}{year}"


@lru_cache(maxsize=8)
def _parsed(spec: str) -> WeekHours:
    return parse_hours(spec)


def working_hours(spec: str, calendar_path: Path) -> WorkingHours:
    """The hours of the settings, with the calendar file re-read when it changes.

    Raises HoursError for a bad `spec` (the gateway checks it at start-up, so a running
    system never sees one); a calendar that cannot be read on first use falls back to the
    default calendar (weekends and statutory holidays) with an error in the log, since
    telling a citizen roughly when staff are back beats failing their request for a person.
    """
    week = _parsed(spec)
    try:
        calendar = calendar_for(calendar_path)
    except CalendarError as exc:
        log.error("handover hours: calendar unusable, using the default one: %s", exc)
        calendar = WorkCalendar()
    return WorkingHours(week, calendar)

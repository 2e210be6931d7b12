"""Working days (ngày làm việc) in Vietnam: is an application late, and by how much?

Processing times of administrative procedures are set in working days, so lateness must be
counted the same way: weekends and public holidays do not count. Statutory holidays,
including the lunar ones (Tết, Giỗ Tổ Hùng Vương), come from the `holidays` package; the
one-off decisions it cannot know (a weekday swapped for a Saturday, a make-up working day)
come from an operator-edited YAML file (`data/status/calendar.yaml`, env WORK_CALENDAR).

All dates are naive Vietnam-local calendar days (see `bot.status.record`).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import cache
from pathlib import Path
from types import MappingProxyType
from typing import Any

import holidays
import yaml

from bot.yamlfile import iso_day, read_yaml

log = logging.getLogger(__name__)

# Names a `weekend:` entry may use, to date.weekday() numbers: English three-letter names, or
# the Vietnamese "t2".."t7" (thứ hai..thứ bảy) and "cn" (chủ nhật).
WEEKDAYS: dict[str, int] = {
    "mon": 0, "tue": 1, "wed": 2, "thu": 3, "fri": 4, "sat": 5, "sun": 6,
    "t2": 0, "t3": 1, "t4": 2, "t5": 3, "t6": 4, "t7": 5, "cn": 6,
}
CALENDAR_KEYS = ("weekend", "national_holidays", "extra_days_off", "extra_working_days")
ENTRY_KEYS = frozenset({"date", "from", "to", "name"})
# A range longer than this is almost surely a typo in a year (2025-02-14 .. 2026-02-22).
MAX_RANGE_DAYS = 31
DEFAULT_DAY_OFF_NAME = "Ngày nghỉ theo quyết định của cơ quan có thẩm quyền"
DEFAULT_WORKING_DAY_NAME = "Ngày làm bù"

_EMPTY: Mapping[date, str] = MappingProxyType({})


class CalendarError(ValueError):
    """Invalid calendar file; message in Vietnamese naming the file, the entry and the field."""


@cache
def _national(year: int) -> Mapping[date, str]:
    """Vietnam's statutory holidays of one year, with Vietnamese names.

    Built once per year and process (about a millisecond each; the first costs more) and
    kept as a plain read-only dict: a `holidays` object looked up directly is slower and
    grows itself on demand. Years the package does not cover have no holidays, so a
    far-off date (a typo in a record) cannot make it build thousands of years.
    """
    first = getattr(holidays.Vietnam, "start_year", 1901)
    last = getattr(holidays.Vietnam, "end_year", 2100)
    if not first <= year <= last:
        return _EMPTY
    return MappingProxyType(dict(holidays.Vietnam(years=year, language="vi")))


def _day(value: date) -> date:
    """The calendar day of a date or date-time (a datetime would not compare with dates)."""
    return value.date() if isinstance(value, datetime) else value


@dataclass(frozen=True)
class WorkCalendar:
    """Which days are working days: weekend, statutory holidays, and one-off decisions.

    Precedence, highest first: `extra_working_days` (a make-up Saturday is worked even
    though it is a weekend), then `extra_days_off`, the weekend and national holidays.
    """

    weekend: frozenset[int] = frozenset({5, 6})  # date.weekday() numbers: 5 = Sat, 6 = Sun
    national_holidays: bool = True
    extra_days_off: Mapping[date, str] = field(default_factory=lambda: _EMPTY)
    extra_working_days: Mapping[date, str] = field(default_factory=lambda: _EMPTY)

    def __post_init__(self) -> None:
        # Frozen means read-only mappings too: one calendar is shared by every conversation.
        weekend = frozenset(self.weekend)
        if not weekend <= set(range(7)):
            raise ValueError(f"weekend: cần các số 0..6 (date.weekday()), có {sorted(weekend)}")
        if len(weekend) == 7:
            # No working day at all would make add_working_days loop for ever.
            raise ValueError("weekend: không thể nghỉ cả 7 ngày trong tuần")
        object.__setattr__(self, "weekend", weekend)
        object.__setattr__(self, "extra_days_off", MappingProxyType(dict(self.extra_days_off)))
        object.__setattr__(self, "extra_working_days",
                           MappingProxyType(dict(self.extra_working_days)))

    @classmethod
    def load(cls, path: Path) -> WorkCalendar:
        """The calendar of a YAML file; a missing file is the default calendar.

        Missing means the deployment kept the defaults (Saturday and Sunday off, statutory
        holidays), as for state agencies in general; a file that exists but cannot be
        used raises CalendarError listing every problem, so one edit fixes them all.
        """
        if not path.exists():
            return cls()
        return _parse(_read(path), str(path))

    def holiday_name(self, day: date) -> str | None:
        """Vietnamese name of the holiday that makes `day` a day off, or None.

        None for a working day (a make-up Saturday included) and for an ordinary weekend;
        a holiday on a weekend still has its name, so the bot can say why the office is shut.
        """
        day = _day(day)
        if day in self.extra_working_days:
            return None
        name = self.extra_days_off.get(day)
        if name is None and self.national_holidays:
            name = _national(day.year).get(day)
        return name

    def is_working_day(self, day: date) -> bool:
        """Whether offices work on `day` (see the class docstring for precedence)."""
        day = _day(day)
        if day in self.extra_working_days:
            return True
        if day in self.extra_days_off or day.weekday() in self.weekend:
            return False
        return not (self.national_holidays and day in _national(day.year))

    def working_days_between(self, start: date, end: date) -> int:
        """The number of working days d with start < d <= end; 0 if end <= start.

        With start = the due date and end = today this is how many working days an
        application is late. Counts weeks arithmetically and then corrects for the few
        exceptional days in the range, so a span of months costs about as much as a week.
        """
        start, end = _day(start), _day(end)
        total = (end - start).days
        if total <= 0:
            return 0
        weeks, rest = divmod(total, 7)
        count = weeks * (7 - len(self.weekend))
        first = start.weekday()
        count += sum((first + i) % 7 not in self.weekend for i in range(1, rest + 1))
        for day in self._exceptions(start, end):
            count += self.is_working_day(day) - (day.weekday() not in self.weekend)
        return count

    def add_working_days(self, start: date, n: int) -> date:
        """The n-th working day after `start` (n == 0 returns `start` itself).

        E.g. the due date of a procedure whose processing time is n working days, counted
        from the day after the application was received.
        """
        if n < 0:
            raise ValueError(f"n phải >= 0, có {n}")
        day = _day(start)
        while n:
            day += timedelta(days=1)
            if self.is_working_day(day):
                n -= 1
        return day

    def _exceptions(self, start: date, end: date) -> Iterator[date]:
        """Every day in (start, end] where something other than the weekend may decide."""
        seen: set[date] = set()
        sources: list[Mapping[date, str]] = [self.extra_days_off, self.extra_working_days]
        if self.national_holidays:
            sources += [_national(year) for year in range(start.year, end.year + 1)]
        for days in sources:
            for day in days:
                if start < day <= end and day not in seen:
                    seen.add(day)
                    yield day


# --- reading the file -----------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """`yaml.safe_load`, except that an impossible date (2025-02-30) stays a string.

    SafeLoader raises a bare ValueError for it, with no line; as a string it reaches
    `_date`, whose message names the entry and the field like any other bad date.
    """


def _lenient_timestamp(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    try:
        return yaml.SafeLoader.construct_yaml_timestamp(loader, node)
    except ValueError:
        return loader.construct_scalar(node)


_Loader.add_constructor("tag:yaml.org,2002:timestamp", _lenient_timestamp)


def _read(path: Path) -> Any:
    """The parsed file; CalendarError (like every data file, bot.yamlfile) if unreadable."""
    return read_yaml(path, CalendarError, loader=_Loader)


def _parse(data: Any, source: str) -> WorkCalendar:
    """A WorkCalendar from parsed YAML, or CalendarError listing every problem of `source`."""
    if not isinstance(data, dict):
        raise CalendarError(f"{source}: cần một bảng (mapping) với khóa `calendar:` ở đầu tệp")
    problems: list[str] = []
    others = sorted(str(k) for k in data if k != "calendar")
    if others:
        problems.append(f"khóa không dùng được ở đầu tệp: {', '.join(others)} "
                        "(chỉ có `calendar:`)")
    if "calendar" not in data:
        problems.append("thiếu khóa `calendar:` ở đầu tệp")
    body = data.get("calendar")
    if body is None:
        body = {}  # `calendar:` with every key commented out: the defaults
    if not isinstance(body, dict):
        problems.append("calendar: cần một bảng (mapping) các khóa "
                        f"{', '.join(CALENDAR_KEYS)}")
        body = {}
    unknown = sorted(str(k) for k in body if k not in CALENDAR_KEYS)
    if unknown:
        problems.append(f"calendar: khóa không dùng được: {', '.join(unknown)} "
                        f"(dùng được: {', '.join(CALENDAR_KEYS)})")

    weekend = _weekend(body.get("weekend", ["sat", "sun"]), problems)
    national = body.get("national_holidays", True)
    if not isinstance(national, bool):
        problems.append(f"calendar.national_holidays: cần true hoặc false, có {national!r}")
        national = True
    days_off = _entries(body.get("extra_days_off"), "extra_days_off", DEFAULT_DAY_OFF_NAME,
                        problems, allow_range=True)
    working = _entries(body.get("extra_working_days"), "extra_working_days",
                       DEFAULT_WORKING_DAY_NAME, problems, allow_range=False)

    for day in sorted(set(days_off) & set(working)):
        problems.append(f"ngày {day.isoformat()} có trong cả extra_days_off và "
                        "extra_working_days (chỉ được ở một trong hai)")
    if weekend is not None and len(weekend) == 7:
        problems.append("calendar.weekend: không thể nghỉ cả 7 ngày trong tuần")
    elif weekend is not None:
        # A make-up day on a day that is worked anyway does nothing: surely a wrong date.
        plain = WorkCalendar(weekend=weekend, national_holidays=national)
        for day in sorted(working):
            if day not in days_off and plain.is_working_day(day):
                problems.append(
                    f"calendar.extra_working_days ngày {day.isoformat()} "
                    f"({_WEEKDAY_VI[day.weekday()]}): vốn đã là ngày làm việc, không cần làm "
                    "bù (ngày làm bù phải rơi vào cuối tuần hoặc ngày lễ; kiểm tra lại ngày)")

    if problems:
        if len(problems) == 1:
            raise CalendarError(f"{source}: {problems[0]}")
        raise CalendarError(f"{source}:\n" + "\n".join(f"  - {p}" for p in problems))
    assert weekend is not None
    return WorkCalendar(weekend=weekend, national_holidays=national,
                        extra_days_off=days_off, extra_working_days=working)


_WEEKDAY_VI = ("thứ Hai", "thứ Ba", "thứ Tư", "thứ Năm", "thứ Sáu", "thứ Bảy", "Chủ nhật")


def _weekend(raw: Any, problems: list[str]) -> frozenset[int] | None:
    """Weekday numbers from `weekend: [sat, sun]`; None after recording a problem."""
    if raw is None:
        raw = []  # `weekend:` left empty: every day of the week is worked
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list):
        problems.append(f"calendar.weekend: cần một danh sách ngày, ví dụ [sat, sun], có {raw!r}")
        return None
    days: set[int] = set()
    ok = True
    for n, value in enumerate(raw, 1):
        key = value.strip().lower() if isinstance(value, str) else None
        if key not in WEEKDAYS:
            problems.append(f"calendar.weekend mục {n}: {value!r} không phải tên ngày trong tuần "
                            "(dùng mon, tue, wed, thu, fri, sat, sun hoặc t2..t7, cn)")
            ok = False
            continue
        days.add(WEEKDAYS[key])
    return frozenset(days) if ok else None


def _entries(raw: Any, key: str, default_name: str, problems: list[str],
             allow_range: bool) -> dict[date, str]:
    """date -> name of an `extra_*` list; problems name the list, the entry and the field."""
    if raw is None:
        return {}
    if not isinstance(raw, list):
        problems.append(f"calendar.{key}: cần một danh sách, ví dụ "
                        f"- {{date: 2025-05-02, name: \"...\"}}, có {type(raw).__name__}")
        return {}
    out: dict[date, str] = {}
    allowed = ENTRY_KEYS if allow_range else ENTRY_KEYS - {"from", "to"}
    form = ("{date: ..., name: ...} hoặc {from: ..., to: ..., name: ...}" if allow_range
            else "{date: ..., name: ...}")
    for n, entry in enumerate(raw, 1):
        where = f"calendar.{key} mục {n}"
        if isinstance(entry, (date, str)) and not isinstance(entry, datetime):
            entry = {"date": entry}  # a bare date: allowed, the name is the default
        if not isinstance(entry, dict):
            problems.append(f"{where}: cần dạng {form}, có {entry!r}")
            continue
        unknown = sorted(str(k) for k in entry if k not in allowed)
        if unknown:
            problems.append(f"{where}: khóa không dùng được: {', '.join(unknown)} "
                            f"(dùng được: {', '.join(sorted(allowed))})")
        name = entry.get("name")
        if name is not None and not isinstance(name, str):
            problems.append(f"{where}, trường name: cần một chuỗi, có {name!r}")
            name = None
        name = (name or "").strip() or default_name
        if "date" in entry:
            if "from" in entry or "to" in entry:
                problems.append(f"{where}: dùng `date` hoặc `from`/`to`, không dùng cả hai")
                continue
            day = _date(entry["date"], f"{where}, trường date", problems)
            if day is not None:
                out.setdefault(day, name)
        elif allow_range and ("from" in entry or "to" in entry):
            first = _date(entry.get("from"), f"{where}, trường from", problems)
            last = _date(entry.get("to"), f"{where}, trường to", problems)
            if first is None or last is None:
                continue
            length = (last - first).days + 1
            if length < 1:
                problems.append(f"{where}: `to` ({last.isoformat()}) trước `from` "
                                f"({first.isoformat()})")
            elif length > MAX_RANGE_DAYS:
                problems.append(f"{where}: khoảng {first.isoformat()} – {last.isoformat()} "
                                f"dài {length} ngày (tối đa {MAX_RANGE_DAYS}; kiểm tra lại năm)")
            else:
                for i in range(length):
                    out.setdefault(first + timedelta(days=i), name)
        else:
            problems.append(f"{where}: thiếu trường date (dạng {form})")
    return out


def _date(value: Any, where: str, problems: list[str]) -> date | None:
    """A day from YAML (already a date when unquoted) or an ISO string; None if invalid."""
    try:
        day = iso_day(value)
    except ValueError:
        day = None
    if day is None:
        problems.append(f"{where}: ngày {value!r} không hợp lệ "
                        "(dạng YYYY-MM-DD, ví dụ 2025-05-02)")
    return day


# --- the long-running process's view of the file --------------------------------------------

_cache: dict[Path, tuple[tuple[int, int] | None, WorkCalendar]] = {}
_cache_lock = threading.Lock()


def _signature(path: Path) -> tuple[int, int] | None:
    """(mtime, size) of the file, None when it does not exist: what marks an edit."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_mtime_ns, st.st_size


def calendar_for(path: Path) -> WorkCalendar:
    """The calendar of `path`, re-read whenever the file changes.

    The action server runs for weeks while operators add each year's decisions, so a
    change must take effect without a restart; checking costs one stat() per call. If an
    edit breaks the file, the last valid calendar stays in use and the error is logged
    (once per edit): answering with last week's calendar beats failing every status
    question. The first load has nothing to fall back on, so it raises CalendarError.
    """
    key = Path(path)
    sig = _signature(key)
    with _cache_lock:
        cached = _cache.get(key)
        if cached is not None and cached[0] == sig:
            return cached[1]
        try:
            calendar = WorkCalendar() if sig is None else WorkCalendar.load(key)
        except CalendarError as exc:
            if cached is None:
                raise
            log.error("lịch ngày làm việc: giữ lịch đang dùng vì tệp sửa lỗi: %s", exc)
            _cache[key] = (sig, cached[1])  # do not re-read (and re-log) until the next edit
            return cached[1]
        _cache[key] = (sig, calendar)
        return calendar

"""The working-day calendar: lateness in working days, holidays, the operator's YAML file."""

from __future__ import annotations

import logging
import os
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

from bot.config import ROOT, Settings
from bot.status.workdays import CalendarError, WorkCalendar, calendar_for

SHIPPED = ROOT / "data" / "status" / "calendar.yaml"
D = date.fromisoformat


@pytest.fixture(scope="module")
def shipped() -> WorkCalendar:
    return WorkCalendar.load(SHIPPED)


def test_settings_point_at_the_shipped_file() -> None:
    assert Settings().work_calendar == SHIPPED
    assert SHIPPED.is_file()


@pytest.mark.parametrize(
    ("start", "end", "expected", "why"),
    [
        ("2026-03-02", "2026-03-06", 4, "Mon due, Fri reference: Tue..Fri"),
        ("2026-03-02", "2026-03-02", 0, "same day: not late"),
        ("2026-03-06", "2026-03-02", 0, "reference before due date"),
        ("2026-03-06", "2026-03-07", 0, "Fri due, Sat reference: weekend does not count"),
        ("2026-03-06", "2026-03-08", 0, "Fri due, Sun reference"),
        ("2026-03-06", "2026-03-09", 1, "Fri due, Mon reference: 1 working day late"),
        ("2026-03-02", "2026-03-16", 10, "two whole weeks"),
        ("2026-02-13", "2026-02-23", 1, "across Tết 2026 (16..20/2 off)"),
        ("2026-02-13", "2026-02-20", 0, "inside Tết 2026"),
        ("2026-04-24", "2026-04-28", 1, "Hùng Kings observed Mon 27/4/2026 is off"),
        ("2026-04-29", "2026-05-04", 1, "30/4 and 1/5/2026 are off"),
        ("2025-04-29", "2025-05-05", 1, "30/4, 1/5 and the 2/5/2025 swap are off"),
        ("2025-04-25", "2025-04-28", 2, "make-up Saturday 26/4/2025 is worked"),
        ("2025-08-29", "2025-09-03", 1, "Quốc khánh 1-2/9/2025"),
        ("2025-12-31", "2026-01-01", 0, "across the year: 1/1/2026 is off"),
        ("2025-01-01", "2026-01-01", 250, "2025: 261 weekdays - 11 holidays - 2/5 + 26/4"),
    ],
)
def test_working_days_between(shipped: WorkCalendar, start: str, end: str, expected: int,
                              why: str) -> None:
    assert shipped.working_days_between(D(start), D(end)) == expected, why


def test_working_days_between_matches_day_by_day_count(shipped: WorkCalendar) -> None:
    """The weeks-plus-exceptions shortcut must agree with counting every day."""
    calendars = [shipped, WorkCalendar(weekend=frozenset({6})),
                 WorkCalendar(national_holidays=False), WorkCalendar(weekend=frozenset())]
    start = D("2025-01-01")
    for cal in calendars:
        for offset in range(0, 500, 7):
            for length in (0, 1, 3, 6, 13, 45, 200):
                a = start + timedelta(days=offset)
                b = a + timedelta(days=length)
                slow = sum(cal.is_working_day(a + timedelta(days=i)) for i in range(1, length + 1))
                assert cal.working_days_between(a, b) == slow, (cal, a, b)


@pytest.mark.parametrize(
    ("day", "working"),
    [
        ("2026-03-06", True),   # Friday
        ("2026-03-07", False),  # Saturday
        ("2026-03-08", False),  # Sunday
        ("2026-01-01", False),  # Tết Dương lịch
        ("2026-02-16", False),  # Tết Nguyên đán 2026 (lunar, from the package)
        ("2026-02-20", False),
        ("2026-02-23", True),
        ("2026-04-27", False),  # Giỗ Tổ Hùng Vương, observed (10/3 âm lịch fell on a Sunday)
        ("2026-04-30", False),
        ("2026-05-01", False),
        ("2025-09-01", False),
        ("2025-09-02", False),
        ("2025-05-02", False),  # extra day off in the shipped file
        ("2025-04-26", True),   # make-up Saturday in the shipped file
        ("2025-04-27", False),  # the Sunday after it stays off
    ],
)
def test_is_working_day(shipped: WorkCalendar, day: str, working: bool) -> None:
    assert shipped.is_working_day(D(day)) is working


def test_accepts_datetimes(shipped: WorkCalendar) -> None:
    """ApplicationStatus holds datetimes; a time of day must not change the answer."""
    assert shipped.working_days_between(datetime(2026, 3, 6, 17, 0),
                                        datetime(2026, 3, 9, 8, 0)) == 1
    assert shipped.is_working_day(datetime(2026, 2, 17, 9, 30)) is False


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        ("2025-09-02", "Quốc khánh"),
        ("2026-02-17", "Tết"),
        ("2026-01-01", "Tết Dương lịch"),
        ("2026-04-27", "Hùng Vương"),
        ("2026-04-30", "Chiến thắng"),
        ("2026-05-01", "Lao động"),
        ("2025-05-02", "Nghỉ hoán đổi"),
    ],
)
def test_holiday_name_is_vietnamese(shipped: WorkCalendar, day: str, expected: str) -> None:
    name = shipped.holiday_name(D(day))
    assert name is not None and expected in name


def test_holiday_name_none_on_ordinary_and_make_up_days(shipped: WorkCalendar) -> None:
    assert shipped.holiday_name(D("2026-03-06")) is None  # Friday
    assert shipped.holiday_name(D("2026-03-07")) is None  # plain Saturday: no holiday
    assert shipped.holiday_name(D("2025-04-26")) is None  # make-up Saturday is worked
    # A holiday falling on a Sunday still has its name.
    assert "Hùng Vương" in (shipped.holiday_name(D("2026-04-26")) or "")


@pytest.mark.parametrize(
    ("start", "n", "expected"),
    [
        ("2026-03-02", 0, "2026-03-02"),
        ("2026-03-02", 4, "2026-03-06"),
        ("2026-03-06", 1, "2026-03-09"),  # over a weekend
        ("2026-03-07", 1, "2026-03-09"),  # from a Saturday
        ("2026-02-12", 2, "2026-02-23"),  # over Tết 2026: Fri 13/2, then Mon 23/2
        ("2026-04-24", 1, "2026-04-28"),  # over Hùng Kings observed
        ("2025-04-25", 1, "2025-04-26"),  # the make-up Saturday counts
        ("2025-04-29", 1, "2025-05-05"),  # 30/4, 1/5, 2/5 (swap), weekend
    ],
)
def test_add_working_days(shipped: WorkCalendar, start: str, n: int, expected: str) -> None:
    assert shipped.add_working_days(D(start), n) == D(expected)
    assert shipped.working_days_between(D(start), D(expected)) == n


def test_add_working_days_refuses_negative(shipped: WorkCalendar) -> None:
    with pytest.raises(ValueError):
        shipped.add_working_days(D("2026-03-02"), -1)


def test_custom_weekend_only_sunday(tmp_path: Path) -> None:
    path = tmp_path / "cal.yaml"
    path.write_text("calendar:\n  weekend: [cn]\n", encoding="utf-8")
    cal = WorkCalendar.load(path)
    assert cal.weekend == frozenset({6})
    assert cal.is_working_day(D("2026-03-07"))  # Saturday worked
    assert not cal.is_working_day(D("2026-03-08"))
    assert cal.working_days_between(D("2026-03-06"), D("2026-03-09")) == 2
    assert not cal.is_working_day(D("2026-02-17"))  # holidays still apply


def test_vietnamese_and_english_weekday_names_agree(tmp_path: Path) -> None:
    path = tmp_path / "cal.yaml"
    path.write_text("calendar:\n  weekend: [T7, cn]\n", encoding="utf-8")
    assert WorkCalendar.load(path).weekend == frozenset({5, 6})
    path.write_text("calendar:\n  weekend: [Fri]\n", encoding="utf-8")
    assert WorkCalendar.load(path).weekend == frozenset({4})


def test_national_holidays_off(tmp_path: Path) -> None:
    path = tmp_path / "cal.yaml"
    path.write_text("calendar:\n  national_holidays: false\n", encoding="utf-8")
    cal = WorkCalendar.load(path)
    assert cal.is_working_day(D("2026-02-17"))
    assert cal.holiday_name(D("2026-02-17")) is None
    assert cal.working_days_between(D("2026-02-13"), D("2026-02-23")) == 6


def test_range_and_string_dates(tmp_path: Path) -> None:
    path = tmp_path / "cal.yaml"
    path.write_text(
        "calendar:\n"
        "  national_holidays: false\n"
        "  extra_days_off:\n"
        "    - {from: 2027-02-05, to: '2027-02-09', name: Tết Đinh Mùi}\n"
        "    - '2027-03-01'\n"
        "  extra_working_days:\n"
        "    - {date: '2027-02-13'}\n",
        encoding="utf-8",
    )
    cal = WorkCalendar.load(path)
    assert all(not cal.is_working_day(D("2027-02-05") + timedelta(days=i)) for i in range(5))
    assert cal.holiday_name(D("2027-02-08")) == "Tết Đinh Mùi"
    assert not cal.is_working_day(D("2027-03-01"))
    assert cal.holiday_name(D("2027-03-01"))  # a default name, never None for a day off
    assert cal.is_working_day(D("2027-02-13"))  # Saturday, make-up


def test_missing_file_is_defaults(tmp_path: Path) -> None:
    cal = WorkCalendar.load(tmp_path / "nope.yaml")
    assert cal == WorkCalendar()
    assert cal.weekend == frozenset({5, 6}) and cal.national_holidays
    assert not cal.extra_days_off and not cal.extra_working_days
    assert not cal.is_working_day(D("2026-02-17"))


def test_empty_calendar_key_is_defaults(tmp_path: Path) -> None:
    path = tmp_path / "cal.yaml"
    path.write_text("calendar:\n", encoding="utf-8")
    assert WorkCalendar.load(path) == WorkCalendar()


@pytest.mark.parametrize(
    ("text", "needles"),
    [
        ("calendar:\n  weekend: [sat, sunday]\n",
         ["weekend mục 2", "'sunday'", "không phải tên ngày"]),
        ("calendar:\n  weekend: [0, 6]\n", ["weekend mục 1", "không phải tên ngày"]),
        ("calendar:\n  weekend: [mon, tue, wed, thu, fri, sat, sun]\n", ["cả 7 ngày"]),
        ("calendar:\n  extra_days_off:\n    - {date: 2025-13-01}\n",
         ["extra_days_off mục 1", "trường date", "2025-13-01", "không hợp lệ"]),
        ("calendar:\n  extra_days_off:\n    - {date: 2025-02-29}\n",
         ["extra_days_off mục 1", "trường date", "2025-02-29"]),
        ("calendar:\n  extra_days_off:\n    - {date: 2025-05-02T08:00:00}\n",
         ["extra_days_off mục 1", "trường date"]),
        ("calendar:\n  extra_days_off:\n    - {date: '2/5/2025'}\n",
         ["extra_days_off mục 1", "trường date", "YYYY-MM-DD"]),
        ("calendar:\n  extra_days_off:\n    - {dat: 2025-05-02}\n",
         ["extra_days_off mục 1", "khóa không dùng được: dat"]),
        ("calendar:\n  weekends: [sat]\n", ["khóa không dùng được: weekends"]),
        ("calendar:\n  national_holidays: maybe\n", ["national_holidays", "true hoặc false"]),
        ("calendar:\n  extra_days_off:\n    - {date: 2025-04-26}\n"
         "  extra_working_days:\n    - {date: 2025-04-26}\n",
         ["2025-04-26", "cả extra_days_off và extra_working_days"]),
        ("calendar:\n  extra_days_off:\n    - {from: 2026-02-14, to: 2026-02-22}\n"
         "  extra_working_days:\n    - {date: 2026-02-21}\n",
         ["2026-02-21", "cả extra_days_off và extra_working_days"]),
        ("calendar:\n  extra_working_days:\n    - {date: 2025-04-25}\n",
         ["extra_working_days", "2025-04-25", "vốn đã là ngày làm việc"]),
        ("calendar:\n  extra_working_days:\n    - {from: 2025-04-26, to: 2025-04-27}\n",
         ["extra_working_days mục 1", "khóa không dùng được: from, to"]),
        ("calendar:\n  extra_days_off:\n    - {from: 2026-02-22, to: 2026-02-14}\n",
         ["extra_days_off mục 1", "trước `from`"]),
        ("calendar:\n  extra_days_off:\n    - {from: 2025-02-14, to: 2026-02-22}\n",
         ["extra_days_off mục 1", "kiểm tra lại năm"]),
        ("calendar:\n  extra_days_off:\n    - {date: 2025-05-02, name: [x]}\n",
         ["extra_days_off mục 1", "trường name", "chuỗi"]),
        ("calendar:\n  extra_days_off: 2025-05-02\n", ["extra_days_off", "danh sách"]),
        ("- sat\n- sun\n", ["cần một bảng", "calendar:"]),
        ("", ["cần một bảng", "calendar:"]),
        ("weekend: [sat, sun]\n", ["thiếu khóa `calendar:`", "khóa không dùng được ở đầu tệp"]),
        ("calendar: [sat, sun]\n", ["calendar: cần một bảng"]),
        ("calendar:\n  weekend: [sat\n", ["YAML không hợp lệ"]),
    ],
)
def test_invalid_files(tmp_path: Path, text: str, needles: list[str]) -> None:
    path = tmp_path / "lich.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(CalendarError) as info:
        WorkCalendar.load(path)
    message = str(info.value)
    assert "lich.yaml" in message  # names the file
    for needle in needles:
        assert needle in message, message


def test_every_problem_is_listed(tmp_path: Path) -> None:
    path = tmp_path / "lich.yaml"
    path.write_text(
        "calendar:\n"
        "  weekend: [sat, xyz]\n"
        "  holidays: true\n"
        "  extra_days_off:\n"
        "    - {date: 2025-02-30}\n"
        "    - {date: 2025-05-02}\n"
        "  extra_working_days:\n"
        "    - {date: 2025-05-02}\n",
        encoding="utf-8",
    )
    with pytest.raises(CalendarError) as info:
        WorkCalendar.load(path)
    message = str(info.value)
    for needle in ("xyz", "holidays", "2025-02-30", "2025-05-02"):
        assert needle in message, message
    assert message.count("\n  - ") == 4


def _write(path: Path, text: str, tick: int) -> None:
    """Write and set a distinct mtime, so the test does not depend on clock resolution."""
    path.write_text(text, encoding="utf-8")
    os.utime(path, ns=(tick * 1_000_000_000, tick * 1_000_000_000))


def test_calendar_for_reloads_and_keeps_last_valid(tmp_path: Path,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "cal.yaml"
    _write(path, "calendar:\n  weekend: [sat, sun]\n", 1_000)
    first = calendar_for(path)
    assert first.weekend == frozenset({5, 6})
    assert calendar_for(path) is first  # unchanged file: no re-read

    _write(path, "calendar:\n  weekend: [sun]\n", 2_000)
    second = calendar_for(path)
    assert second.weekend == frozenset({6})

    _write(path, "calendar:\n  weekend: [sun, funday]\n", 3_000)
    with caplog.at_level(logging.ERROR, logger="bot.status.workdays"):
        assert calendar_for(path) is second
        assert calendar_for(path) is second
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "funday" in errors[0].getMessage()  # logged once per edit

    _write(path, "calendar:\n  weekend: [fri, sat]\n", 4_000)
    assert calendar_for(path).weekend == frozenset({4, 5})

    path.unlink()  # a removed file means the defaults
    assert calendar_for(path) == WorkCalendar()


def test_calendar_for_first_load_of_invalid_file_raises(tmp_path: Path) -> None:
    path = tmp_path / "cal.yaml"
    _write(path, "calendar:\n  weekend: [funday]\n", 1_000)
    with pytest.raises(CalendarError, match="funday"):
        calendar_for(path)
    with pytest.raises(CalendarError):  # still nothing to fall back on
        calendar_for(path)
    _write(path, "calendar:\n  weekend: [sun]\n", 2_000)
    assert calendar_for(path).weekend == frozenset({6})


def test_calendar_for_shipped_file(shipped: WorkCalendar) -> None:
    assert calendar_for(SHIPPED) == shipped
    assert shipped.extra_days_off == {D("2025-05-02"): "Nghỉ hoán đổi dịp 30/4 – 1/5"}
    assert shipped.extra_working_days == {D("2025-04-26"): "Làm bù cho ngày 02/5/2025"}


def test_calendar_is_read_only() -> None:
    cal = WorkCalendar(extra_days_off={D("2025-05-02"): "x"})
    with pytest.raises(TypeError):
        cal.extra_days_off[D("2025-05-03")] = "y"  # type: ignore[index]


def test_extra_working_day_beats_national_holiday(tmp_path: Path) -> None:
    path = tmp_path / "cal.yaml"
    path.write_text("calendar:\n  extra_working_days:\n    - {date: 2026-02-20}\n",
                    encoding="utf-8")
    cal = WorkCalendar.load(path)
    assert cal.is_working_day(D("2026-02-20"))
    assert cal.holiday_name(D("2026-02-20")) is None
    assert cal.working_days_between(D("2026-02-13"), D("2026-02-23")) == 2
    assert cal.add_working_days(D("2026-02-13"), 1) == D("2026-02-20")

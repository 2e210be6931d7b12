"""The status answer: late or not in working days (weekends, a holiday), next steps, wording."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from actions.status import rate_limited, remember_lookup
from bot.config import ROOT
from bot.status.answer import LABELS, render_status, timeliness
from bot.status.record import STATUSES, ApplicationStatus
from bot.status.workdays import WorkCalendar

CAL = WorkCalendar.load(ROOT / "data" / "status" / "calendar.yaml")


def app(status: str = "processing", due: datetime | None = None,
        finished: datetime | None = None, note: str | None = None,
        agency: str | None = "UBND phường Ba Đình") -> ApplicationStatus:
    return ApplicationStatus(receipt_code="000.00.20.H26-250312-0045", status=status,
                             procedure_code="1.001193", agency=agency,
                             received_at=datetime(2025, 3, 12, 8, 30), due_at=due,
                             finished_at=finished, note=note)


@pytest.mark.parametrize(("due", "today", "kind", "days"), [
    (date(2025, 3, 20), date(2025, 3, 18), "remaining", 2),  # Thu due, Tue today
    (date(2025, 3, 20), date(2025, 3, 20), "due_today", 0),
    (date(2025, 3, 20), date(2025, 3, 21), "late", 1),
    (date(2025, 3, 21), date(2025, 3, 22), "late", 0),  # Fri due, Saturday: past, 0 lost
    (date(2025, 3, 21), date(2025, 3, 24), "late", 1),  # Fri due, Monday: 1 working day
    (date(2025, 3, 21), date(2025, 3, 26), "late", 3),
    (date(2025, 3, 14), date(2025, 3, 21), "late", 5),  # a whole week
    # Tết 2026: due Fri 13/2, back to work Mon 23/2 (16–20/2 off, a weekend each side).
    (date(2026, 2, 13), date(2026, 2, 23), "late", 1),
    (date(2026, 2, 12), date(2026, 2, 23), "late", 2),
    (date(2026, 2, 23), date(2026, 2, 13), "remaining", 1),
    # 30/4–1/5/2025 and the swapped 2/5 (a Friday) off; Saturday 26/4 worked instead.
    (date(2025, 4, 29), date(2025, 5, 5), "late", 1),
    (date(2025, 4, 25), date(2025, 4, 28), "late", 2),  # make-up Saturday 26/4 counts
    # National Day 2026: 1/9 (Tue) and 2/9 (Wed) off.
    (date(2026, 8, 31), date(2026, 9, 3), "late", 1),
])
def test_lateness_counts_working_days_across_weekends_and_holidays(
        due: date, today: date, kind: str, days: int) -> None:
    t = timeliness(app(due=datetime.combine(due, datetime.min.time())), today, CAL)
    assert (t.kind, t.days) == (kind, days)


def test_a_finished_application_is_judged_by_its_finish_day_not_today() -> None:
    on_time = app("done", due=datetime(2025, 3, 20, 17), finished=datetime(2025, 3, 20, 16))
    assert timeliness(on_time, date(2026, 1, 1), CAL).kind == "on_time"
    late = app("returned", due=datetime(2025, 3, 21), finished=datetime(2025, 3, 25))
    t = timeliness(late, date(2026, 1, 1), CAL)
    assert (t.kind, t.days) == ("finished_late", 2)


def test_every_status_has_a_plain_vietnamese_label_and_a_next_step() -> None:
    assert set(LABELS) == set(STATUSES)
    texts = {s: render_status(app(s, due=datetime(2025, 3, 20),
                                  finished=datetime(2025, 3, 19) if s in
                                  ("done", "rejected", "returned") else None),
                              "Đăng ký khai sinh", date(2025, 3, 18), CAL)
             for s in STATUSES}
    assert len(set(texts.values())) == len(STATUSES)
    for status, text in texts.items():
        assert "000.00.20.H26-250312-0045" in text and "Đăng ký khai sinh" in text
        assert LABELS[status] in text
    assert "nhận kết quả tại UBND phường Ba Đình" in texts["done"]
    assert "bổ sung" in texts["need_supplement"] and "tính lại" in texts["need_supplement"]
    assert "không được giải quyết" in texts["rejected"]


def test_the_answer_states_due_date_and_lateness() -> None:
    text = render_status(app(due=datetime(2025, 3, 20, 17, 0)), "Đăng ký khai sinh",
                         date(2025, 3, 25), CAL)
    assert "17:00 ngày 20/03/2025" in text and "đã quá hạn 3 ngày làm việc" in text
    assert "phiếu xin lỗi" in text
    text = render_status(app(due=datetime(2025, 3, 20)), None, date(2025, 3, 18), CAL)
    assert "còn 2 ngày làm việc" in text and "mã 1.001193" in text
    text = render_status(app(due=None), None, date(2025, 3, 18), CAL)
    assert "chưa ghi ngày hẹn trả" in text


def test_a_supplement_request_is_not_called_late() -> None:
    text = render_status(app("need_supplement", due=datetime(2025, 3, 20),
                             note="Bổ sung bản sao giấy khai sinh"), None, date(2025, 4, 1), CAL)
    assert "quá hạn" not in text and "Bổ sung bản sao giấy khai sinh" in text


def test_rate_limit_counts_distinct_codes_per_window() -> None:
    entries: list[str] = []
    t0 = 1_700_000_000.0
    for i in range(5):
        code = f"H26-250312-00{i:02d}"
        assert not rate_limited(entries, code, t0 + i, limit=5, window_minutes=60)
        entries = remember_lookup(entries, code, t0 + i, window_minutes=60)
    assert rate_limited(entries, "H26-250312-0099", t0 + 10, limit=5, window_minutes=60)
    # The same code again is not enumeration.
    assert not rate_limited(entries, "H26-250312-0001", t0 + 10, limit=5, window_minutes=60)
    # An hour later the window has moved on.
    assert not rate_limited(entries, "H26-250312-0099", t0 + 3700, limit=5, window_minutes=60)
    assert not rate_limited(entries, "H26-250312-0099", t0 + 10, limit=0, window_minutes=60)
    # The slot keeps hashes, not codes, and drops expired entries.
    assert not any("H26" in e for e in entries)
    later = remember_lookup(entries, "H26-250312-0099", t0 + 3700, window_minutes=60)
    assert len(later) == 1


def test_a_note_with_a_phone_or_id_number_from_a_live_system_is_masked() -> None:
    text = render_status(app("done", due=datetime(2025, 3, 20), finished=datetime(2025, 3, 19),
                             note="Liên hệ chị Lan 0912345678, CCCD 001203004567"),
                         None, date(2025, 3, 20), CAL)
    assert "0912345678" not in text and "001203004567" not in text and "chị Lan" in text

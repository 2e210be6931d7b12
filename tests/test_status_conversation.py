"""Application status conversations through the real stack (Rasa, action server, gateway).

The applications are imported with `bot status import` into the stack's database; their
dates are relative to today, and the expected lateness is computed with the shipped
working-day calendar, so the test checks the rule, not one date. A second stack reads a
fake provincial case system over HTTP that can fail or be slow.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest

from bot.config import ROOT
from bot.fees.service import vietnam_today
from bot.stack import Stack
from bot.status.workdays import WorkCalendar
from tests.conftest import own_stack
from tests.status_fake import SAMPLE_CODE, FakeCaseSystem
from tests.test_dialogue_choice import chat

pytestmark = pytest.mark.integration

CAL = WorkCalendar.load(ROOT / "data" / "status" / "calendar.yaml")
LATE = "000.00.20.H26-251103-0045"
PENDING = "H29.97-251120-0015"
DONE = "G22.15-251001-0007"
MISSING = "000.00.20.H26-251103-9999"
LIMIT = 3


def iso(day: date) -> str:
    return day.isoformat()


@pytest.fixture(scope="module")
def today() -> date:
    return vietnam_today()


@pytest.fixture(scope="module")
def stack(trained, today: date, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    settings, _ = trained
    received = today - timedelta(days=40)
    rows = [
        f"{LATE},1.001193,UBND phường Ba Đình,processing,{iso(received)}T08:30,"
        f"{iso(today - timedelta(days=20))}T17:00,,",
        f"{PENDING},1.001193,,received,{iso(today)},"
        f"{iso(CAL.add_working_days(today, 4))},,",
        f"{DONE},1.001193,UBND phường Ba Đình,done,{iso(received)},{iso(received)},"
        f"{iso(received)},Nhận kết quả tại quầy số 3",
    ]
    path = tmp_path_factory.mktemp("status") / "status.csv"
    path.write_text("receipt_code,procedure_code,agency,status,received_at,due_at,finished_at,"
                    "note\n" + "\n".join(rows) + "\n", encoding="utf-8")
    out = subprocess.run([sys.executable, "-m", "bot", "status", "import", str(path)],
                         cwd=ROOT, capture_output=True, text=True, timeout=120,
                         env={"DATABASE_URL": settings.database_url, "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    with own_stack(trained, "status", STATUS_LOOKUP_LIMIT=str(LIMIT)) as st:
        yield st


def test_one_message_with_the_code_gets_status_due_date_and_lateness(stack: Stack,
                                                                     today: date) -> None:
    spaced = LATE.lower().replace("-", " - ")  # "000.00.20.h26 - 251103 - 0045"
    text, _ = chat(stack, "st-one", f"hồ sơ {spaced} của tôi đến đâu rồi")
    late = CAL.working_days_between(today - timedelta(days=20), today)
    assert LATE in text, text
    assert "Đăng ký khai sinh" in text  # the procedure's name from the catalog
    assert "Đang giải quyết" in text
    assert f"đã quá hạn {late} ngày làm việc" in text
    assert "UBND phường Ba Đình" in text and "phiếu xin lỗi" in text
    # The follow-up is about this application's procedure.
    text, _ = chat(stack, "st-one", "lệ phí bao nhiêu")
    assert "1.001193" in text, text


def test_over_several_turns_the_bot_asks_for_the_code(stack: Stack, today: date) -> None:
    text, _ = chat(stack, "st-turns", "hồ sơ của tôi đến đâu rồi")
    assert "mã hồ sơ" in text and "000.00.20.H26-250312-0045" in text, text  # the example
    text, _ = chat(stack, "st-turns", PENDING.lower())
    assert PENDING in text and "Đã tiếp nhận" in text, text
    assert "còn 4 ngày làm việc" in text, text
    # The form is over: the next question is answered normally.
    text, _ = chat(stack, "st-turns", "cảm ơn")
    assert "mã hồ sơ" not in text


def test_a_malformed_code_is_re_asked_once_with_an_example_then_the_bot_gives_up(
        stack: Stack) -> None:
    chat(stack, "st-bad", "tra cứu hồ sơ giúp tôi")
    text, _ = chat(stack, "st-bad", "000.00.21-2411")
    assert "chưa đúng dạng" in text and "000.00.21-2411" in text, text
    assert "000.00.20.H26-250312-0045" in text and "thôi" in text
    text, _ = chat(stack, "st-bad", "H27 - 0046")
    assert "tạm dừng tra cứu" in text and "gặp cán bộ" in text, text
    text, _ = chat(stack, "st-bad", "đăng ký khai sinh cần giấy tờ gì")
    assert "1.001193" in text and "chưa đúng dạng" not in text, text


def test_a_malformed_code_in_the_first_message_is_pointed_out(stack: Stack) -> None:
    text, _ = chat(stack, "st-bad-first", "mã hồ sơ của tôi là 000.00.20.H26-2503, xong chưa")
    assert "chưa đúng dạng" in text and "000.00.20.H26-2503" in text, text
    text, _ = chat(stack, "st-bad-first", DONE)
    assert "Đã có kết quả" in text and "quầy số 3" in text, text
    assert "đúng hạn" in text


def test_the_citizen_can_cancel(stack: Stack) -> None:
    text, _ = chat(stack, "st-cancel", "kiểm tra tình trạng hồ sơ")
    assert "mã hồ sơ" in text
    text, _ = chat(stack, "st-cancel", "thôi")
    assert "dừng tra cứu" in text, text
    # Cancelling forgot the failed state: the next lookup starts from the question again.
    text, _ = chat(stack, "st-cancel", "hồ sơ đã nộp xong chưa")
    assert "Bạn cho mình xin mã hồ sơ" in text, text
    text, _ = chat(stack, "st-cancel", "tôi không nhớ mã")
    assert "dừng tra cứu" in text, text


def test_an_unknown_code_is_said_to_be_unknown(stack: Stack) -> None:
    text, _ = chat(stack, "st-missing", f"mã {MISSING} đến đâu rồi")
    assert "không tìm thấy hồ sơ" in text and MISSING in text, text


def test_lookups_are_rate_limited_per_conversation(stack: Stack) -> None:
    codes = [f"000.00.20.H26-251103-99{i:02d}" for i in range(LIMIT)]
    for code in codes:
        text, _ = chat(stack, "st-enum", f"tra cứu {code}")
        assert "không tìm thấy" in text, text
    text, _ = chat(stack, "st-enum", f"tra cứu {LATE}")
    assert "tạm dừng tra cứu mã mới" in text and "Đang giải quyết" not in text, text
    # Asking again about a code already looked up is not enumeration...
    text, _ = chat(stack, "st-enum", f"tra cứu {codes[0]}")
    assert "không tìm thấy" in text, text
    # ...and another conversation is not limited.
    text, _ = chat(stack, "st-enum-other", f"tra cứu {LATE}")
    assert "Đang giải quyết" in text, text


def test_codes_are_masked_in_the_logs(stack: Stack) -> None:
    chat(stack, "st-log", f"hồ sơ {LATE} đến đâu rồi")
    logs = "".join(Path(p).read_text(encoding="utf-8", errors="replace")
                   for p in stack.log_dir.glob("*.log"))
    assert "***0045" in logs
    for code in (LATE, PENDING, DONE, MISSING):
        assert code not in logs and code.lower() not in logs
        assert code.replace("-", " - ").lower() not in logs


# ---------------------------------------------------------------- HTTP source


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeCaseSystem]:
    with FakeCaseSystem() as f:
        yield f


@pytest.fixture(scope="module")
def http_stack(trained, fake: FakeCaseSystem) -> Iterator[Stack]:
    with own_stack(trained, "status-http", STATUS_HTTP_TIMEOUT="1", **fake.env()) as st:
        yield st


def test_http_source_answers_from_the_case_system(http_stack: Stack,
                                                  fake: FakeCaseSystem) -> None:
    fake.reset()
    text, _ = chat(http_stack, "sh-ok", f"hồ sơ {SAMPLE_CODE.lower()} đến đâu rồi")
    assert SAMPLE_CODE in text and "Đang giải quyết" in text, text
    assert "UBND phường Tràng Tiền" in text
    assert fake.last_code == SAMPLE_CODE and fake.last_authorization.startswith("Bearer ")


@pytest.mark.parametrize("trouble", ["down", "slow", "garbage"])
def test_http_source_failure_gives_a_clear_try_later_answer(http_stack: Stack,
                                                            fake: FakeCaseSystem,
                                                            trouble: str) -> None:
    fake.reset()
    if trouble == "down":
        fake.fail_next(5, status=503)
    elif trouble == "slow":
        fake.delay = 5.0
    else:
        fake.garbage = True
    text, _ = chat(http_stack, f"sh-{trouble}", f"tra cứu hồ sơ {SAMPLE_CODE}")
    assert "tạm thời không truy cập được" in text and "thử lại sau" in text, text
    fake.reset()
    text, _ = chat(http_stack, f"sh-{trouble}", f"tra cứu hồ sơ {SAMPLE_CODE}")
    assert "Đang giải quyết" in text, text

"""`bot status import`: whole-file validation, clear errors, nothing half-loaded, upserts."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bot.catalog.db import session_scope
from bot.catalog.models import ApplicationRecord
from bot.config import ROOT
from bot.status.codes import CodeMatcher, load_patterns
from bot.status.importer import StatusImportError, import_status_csv
from bot.status.sources import DatabaseStatusSource

HEADER = "receipt_code,procedure_code,agency,status,received_at,due_at,finished_at,note\n"
GOOD = (HEADER
        + "000.00.20.H26-250312-0045,1.001193,UBND phường Ba Đình,processing,"
          "2025-03-12T08:30,2025-03-20T17:00,,\n"
        + "h29.97 - 231102 - 0015,2.000488,Công an phường Hoàn Kiếm,done,2023-11-02,"
          "2023-11-10,2023-11-09,Nhận tại quầy số 3\n"
        + "G22.15-250301-0007,1.001193,,need_supplement,01/03/2025,2025-03-15,,"
          "Bổ sung bản sao giấy khai sinh\n")


@pytest.fixture(scope="module")
def matcher() -> CodeMatcher:
    return CodeMatcher(load_patterns(ROOT / "data" / "status" / "receipt_codes.yaml"))


def write(tmp_path: Path, text: str, name: str = "status.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def count(url: str) -> int:
    with session_scope(url) as s:
        return s.execute(select(func.count()).select_from(ApplicationRecord)).scalar_one()


def test_a_good_file_loads_and_a_second_import_changes_nothing(
        seeded_db: str, tmp_path: Path, matcher: CodeMatcher) -> None:
    path = write(tmp_path, GOOD)
    with session_scope(seeded_db) as s:
        report = import_status_csv(s, path, matcher)
    assert (report.new, report.updated, report.unchanged) == (3, 0, 0)
    assert any("2.000488" in w for w in report.warnings)  # not in the seed catalog
    with session_scope(seeded_db) as s:
        again = import_status_csv(s, path, matcher)
    assert (again.new, again.updated, again.unchanged) == (0, 0, 3)
    with session_scope(seeded_db) as s:
        row = s.get(ApplicationRecord, "H29.97-231102-0015")  # stored normalized
        assert row.status == "done" and row.finished_at == datetime(2023, 11, 9)
        assert row.note == "Nhận tại quầy số 3"
        assert s.get(ApplicationRecord, "G22.15-250301-0007").received_at == datetime(2025, 3, 1)


async def test_the_database_source_reads_what_was_imported(
        seeded_db: str, tmp_path: Path, matcher: CodeMatcher) -> None:
    with session_scope(seeded_db) as s:
        import_status_csv(s, write(tmp_path, GOOD), matcher)
    source = DatabaseStatusSource(seeded_db)
    app = await source.lookup("000.00.20.H26-250312-0045")
    assert app is not None and app.status == "processing" and app.agency == "UBND phường Ba Đình"
    assert app.due_at == datetime(2025, 3, 20, 17, 0) and not app.is_final
    assert await source.lookup("000.00.20.H26-250312-9999") is None


def test_an_update_changes_only_the_changed_rows_and_replace_all_deletes_missing(
        seeded_db: str, tmp_path: Path, matcher: CodeMatcher) -> None:
    with session_scope(seeded_db) as s:
        import_status_csv(s, write(tmp_path, GOOD), matcher)
    update = (HEADER + "000.00.20.H26-250312-0045,1.001193,UBND phường Ba Đình,done,"
              "2025-03-12T08:30,2025-03-20T17:00,2025-03-19,\n")
    with session_scope(seeded_db) as s:
        report = import_status_csv(s, write(tmp_path, update, "u.csv"), matcher)
    assert (report.new, report.updated) == (0, 1)
    assert count(seeded_db) == 3  # an upsert keeps what the file does not list
    with session_scope(seeded_db) as s:
        report = import_status_csv(s, write(tmp_path, update, "u.csv"), matcher,
                                   replace_all=True)
    assert report.deleted == 2 and count(seeded_db) == 1


@pytest.mark.parametrize(("row", "message"), [
    ("000.00.20-2503,1.001193,,processing,2025-03-12,,,", "không đúng dạng mã hồ sơ"),
    (",1.001193,,processing,2025-03-12,,,", "receipt_code: trống"),
    ("H26-250312-0045,1.001193,,dang_xu_ly,2025-03-12,,,", "trạng thái 'dang_xu_ly'"),
    ("H26-250312-0045,1.001193,,processing,12.03.2025,,,", "ngày '12.03.2025' không hợp lệ"),
    ("H26-250312-0045,1.001193,,processing,,,,", "received_at: trống"),
    ("H26-250312-0045,1.001193,,processing,2025-03-12,2025-03-01,,", "hẹn trả trước ngày"),
    ("H26-250312-0045,1.001193,,done,2025-03-12,2025-03-20,,", "finished_at: cần có"),
    ("H26-250312-0045,1.001193,,processing,2025-03-12,,2025-03-13,", "chỉ ghi khi hồ sơ đã xong"),
    ("H26-250312-0045,1.001193,,done,2025-03-12,,2025-03-01,", "kết thúc trước ngày tiếp nhận"),
    ("H26-250312-0045,1.001193,,processing,2025-03-12,,,Gọi 0912345678 để nhận",
     "thông tin cá nhân"),
    ("H26-250312-0045,1.001193,,processing,2025-03-12,,,,extra", "nhiều ô hơn"),
])
def test_one_bad_row_loads_nothing_and_names_line_and_column(
        seeded_db: str, tmp_path: Path, matcher: CodeMatcher, row: str, message: str) -> None:
    path = write(tmp_path, GOOD + row + "\n")
    with pytest.raises(StatusImportError) as err, session_scope(seeded_db) as s:
        import_status_csv(s, path, matcher)
    assert "dòng 5" in str(err.value) and message in str(err.value)
    assert "chưa nhập dòng nào" in str(err.value)
    assert count(seeded_db) == 0


@pytest.mark.parametrize("row", [
    "H26-250312-0045,1.001193,,processing,12.03.2025,,,",  # bad date: not also "trống"
    "H26-250312-0045,1.001193,,done,2025-03-12,,13.03.2025,",  # bad date: not also "cần có"
])
def test_a_column_is_reported_once(matcher: CodeMatcher, row: str) -> None:
    """A bad date is the only thing said of its column: no second message that it is
    missing, which would send the operator looking for an empty cell."""
    from bot.status.importer import parse_row
    from bot.status.record import StatusValueError

    fields = HEADER.strip().split(",")
    with pytest.raises(StatusValueError) as err:
        parse_row(dict(zip(fields, row.split(","), strict=True)), matcher)
    said = [p.split(":")[0] for p in str(err.value).split("; ")]
    assert len(said) == len(set(said)) == 1, str(err.value)


def test_every_bad_row_is_reported_and_skip_invalid_loads_the_rest(
        seeded_db: str, tmp_path: Path, matcher: CodeMatcher) -> None:
    text = (GOOD + "bad-code,1,,processing,2025-03-12,,,\n"
            + "H26-250312-0046,1,,weird,2025-03-12,,,\n"
            + "000.00.20.H26-250312-0045,1,,processing,2025-03-12,,,\n")  # duplicate
    path = write(tmp_path, text)
    with pytest.raises(StatusImportError) as err, session_scope(seeded_db) as s:
        import_status_csv(s, path, matcher)
    assert all(f"dòng {n}" in str(err.value) for n in (5, 6, 7))
    assert "trùng với dòng 2" in str(err.value)
    with session_scope(seeded_db) as s:
        report = import_status_csv(s, path, matcher, skip_invalid=True)
    assert report.new == 3 and report.skipped == 3 and count(seeded_db) == 3


@pytest.mark.parametrize(("content", "message"), [
    (b"", "tệp rỗng"),
    (b"code,status\nX,done\n", "thiếu cột"),
    (HEADER.replace("note", "notes").encode(), "cột không biết 'notes'"),
    (HEADER.encode() + "000.00.20.H26-250312-0045,1,Phòng Tư pháp,processing,2025-03-12,,,\n"
     .encode("latin-1", errors="replace").replace(b"?", b"\xf2"), "không phải UTF-8"),
    (HEADER.encode(), "không có dòng dữ liệu"),
])
def test_unusable_files_are_refused_clearly(seeded_db: str, tmp_path: Path,
                                            matcher: CodeMatcher, content: bytes,
                                            message: str) -> None:
    path = tmp_path / "f.csv"
    path.write_bytes(content)
    with pytest.raises(StatusImportError) as err, session_scope(seeded_db) as s:
        import_status_csv(s, path, matcher)
    assert message in str(err.value)


def test_excel_bom_and_column_order_are_accepted(seeded_db: str, tmp_path: Path,
                                                 matcher: CodeMatcher) -> None:
    text = ("\ufeffstatus,receipt_code,note,procedure_code,agency,received_at,due_at,"
            "finished_at\r\nreceived,H26-250312-0045,,1.001193,,2025-03-12,,\r\n")
    with session_scope(seeded_db) as s:
        report = import_status_csv(s, write(tmp_path, text), matcher)
    assert report.new == 1


def test_cli_import_reports_and_exits_nonzero_on_a_bad_file(seeded_db: str,
                                                            tmp_path: Path) -> None:
    env = {"DATABASE_URL": seeded_db, "PATH": "/usr/bin:/bin"}
    good = subprocess.run([sys.executable, "-m", "bot", "status", "import",
                           str(write(tmp_path, GOOD))], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert good.returncode == 0, good.stderr
    assert "3 mới" in good.stdout
    bad = subprocess.run([sys.executable, "-m", "bot", "status", "import",
                          str(write(tmp_path, GOOD + "x,1,,done,2025,,,\n", "bad.csv"))],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "dòng 5" in bad.stderr and "Traceback" not in bad.stderr
    shown = subprocess.run([sys.executable, "-m", "bot", "status", "show",
                            "000.00.20.h26 - 250312 - 0045", "--date", "2025-03-24"],
                           cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr
    assert "đã quá hạn 2 ngày làm việc" in shown.stdout  # Fri 20 → Mon 24: 21 and 24

"""`bot status import FILE.csv`: load application statuses into the project's database.

The guarantees are the catalog import's: every problem is reported with its line and
column, and nothing is half-loaded. By default one bad row rejects the whole file (a
skipped row would make the bot tell a citizen "not found" for an application that exists);
`skip_invalid` loads the good rows and reports the rest. Rows are upserted by receipt code
in one transaction; `replace_all` also deletes codes the file no longer lists, for a
province that exports a full snapshot every night.
"""

from __future__ import annotations

import csv
import io
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy import delete, select
from sqlalchemy.orm import Session
from tqdm import tqdm

from bot.catalog.models import ApplicationRecord, Procedure
from bot.status.codes import CodeMatcher, normalize
from bot.status.record import (
    FINAL_STATUSES,
    ApplicationStatus,
    StatusValueError,
    parse_status,
    parse_when,
)
from bot.text import mask_pii, nfc

COLUMNS = ("receipt_code", "procedure_code", "agency", "status", "received_at", "due_at",
           "finished_at", "note")
MAX_FILE_BYTES = 200 * 1024 * 1024
MAX_FIELD_CHARS = 2000


class StatusImportError(ValueError):
    """The file cannot be imported at all (unreadable, wrong header, invalid rows)."""


@dataclass
class ImportReport:
    """What an import did (or would do), with every row problem."""

    rows: int = 0
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    skipped: int = 0
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> str:
        text = (f"{self.rows} dòng: {self.new} mới, {self.updated} cập nhật, "
                f"{self.unchanged} không đổi")
        if self.deleted:
            text += f", {self.deleted} đã xóa (không còn trong tệp)"
        if self.skipped:
            text += f", {self.skipped} dòng lỗi bị bỏ qua"
        return text


def _read_text(path: Path) -> str:
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise StatusImportError(f"{path}: không đọc được tệp ({exc.strerror})") from exc
    if size > MAX_FILE_BYTES:
        raise StatusImportError(f"{path}: tệp quá lớn ({size} byte; tối đa {MAX_FILE_BYTES})")
    raw = path.read_bytes()
    try:
        return nfc(raw.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise StatusImportError(
            f"{path}: tệp không phải UTF-8 (byte {exc.start}); hãy lưu lại dưới dạng "
            "CSV UTF-8") from exc


def _check_header(header: list[str] | None, path: Path) -> None:
    if not header:
        raise StatusImportError(f"{path}: tệp rỗng (cần dòng tiêu đề {','.join(COLUMNS)})")
    names = [h.strip() for h in header]
    missing = [c for c in COLUMNS if c not in names]
    unknown = [h for h in names if h not in COLUMNS]
    dupes = sorted({h for h in names if names.count(h) > 1})
    problems = []
    if missing:
        problems.append(f"thiếu cột {', '.join(missing)}")
    if unknown:
        problems.append(f"cột không biết {', '.join(repr(u) for u in unknown)}")
    if dupes:
        problems.append(f"cột trùng {', '.join(dupes)}")
    if problems:
        raise StatusImportError(
            f"{path}: dòng tiêu đề sai: {'; '.join(problems)}. Cần đúng các cột: "
            f"{','.join(COLUMNS)}")


def parse_row(row: dict[str, str], matcher: CodeMatcher) -> ApplicationStatus:
    """One CSV row as an ApplicationStatus; raises StatusValueError listing every problem."""
    values = {k.strip(): (v or "").strip() for k, v in row.items() if k is not None}
    problems: list[str] = []
    reported: set[str] = set()  # columns with a problem already: one message says enough

    def problem(col: str, text: str) -> None:
        problems.append(f"cột {col}: {text}")
        reported.add(col)

    if None in row:  # more cells than header columns
        problems.append("nhiều ô hơn số cột của dòng tiêu đề")
    for name, value in values.items():
        if len(value) > MAX_FIELD_CHARS:
            problem(name, f"quá dài ({len(value)} ký tự; tối đa {MAX_FIELD_CHARS})")
    code = normalize(values.get("receipt_code", ""))
    if not code:
        problem("receipt_code", "trống")
    elif not matcher.is_valid(code):
        problem("receipt_code", f"{code!r} không đúng dạng mã hồ sơ nào đã khai báo "
                f"(ví dụ {matcher.example}; thêm dạng mới trong RECEIPT_CODE_PATTERNS)")
    status = None
    try:
        status = parse_status(values.get("status", ""))
    except StatusValueError as exc:
        problem("status", str(exc))
    dates: dict[str, datetime | None] = {}
    for col in ("received_at", "due_at", "finished_at"):
        try:
            dates[col] = parse_when(values.get(col))
        except StatusValueError as exc:
            problem(col, str(exc))
            dates[col] = None
    received, due, finished = dates["received_at"], dates["due_at"], dates["finished_at"]
    if received is None and "received_at" not in reported:
        problem("received_at", "trống (cần ngày tiếp nhận)")
    if received and due and due < received:
        problem("due_at", "ngày hẹn trả trước ngày tiếp nhận")
    if received and finished and finished < received:
        problem("finished_at", "ngày kết thúc trước ngày tiếp nhận")
    if status in FINAL_STATUSES and finished is None and "finished_at" not in reported:
        problem("finished_at", f"cần có khi trạng thái là {status}")
    if status is not None and status not in FINAL_STATUSES and finished is not None:
        problem("finished_at", f"chỉ ghi khi hồ sơ đã xong (trạng thái {status})")
    note = values.get("note") or None
    agency = values.get("agency") or None
    for col, value in (("note", note), ("agency", agency)):
        if value and mask_pii(value) != value:
            problem(col, "có vẻ chứa số định danh/điện thoại; dữ liệu trạng thái "
                    "không được chứa thông tin cá nhân")
    if problems:
        raise StatusValueError("; ".join(problems))
    assert status is not None and received is not None
    return ApplicationStatus(
        receipt_code=code, status=status, procedure_code=values.get("procedure_code") or None,
        agency=agency, received_at=received, due_at=due, finished_at=finished, note=note,
    )


def read_status_csv(path: Path, matcher: CodeMatcher,
                    progress: bool = False) -> tuple[list[tuple[int, ApplicationStatus]],
                                                     list[str]]:
    """Parsed rows (with their line numbers) and the problems of the invalid ones."""
    text = _read_text(path)
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        _check_header(reader.fieldnames, path)
    except csv.Error as exc:
        raise StatusImportError(f"{path}: CSV không hợp lệ: {exc}") from exc
    good: list[tuple[int, ApplicationStatus]] = []
    errors: list[str] = []
    seen: dict[str, int] = {}
    rows: Iterable[dict[str, str]] = reader
    if progress:
        rows = tqdm(reader, desc="Đọc tệp", unit=" dòng", file=sys.stderr)
    try:
        for row in rows:
            line = reader.line_num
            if not any((v or "").strip() for v in row.values() if isinstance(v, str)):
                continue  # a blank line
            try:
                app = parse_row(row, matcher)
            except StatusValueError as exc:
                errors.append(f"dòng {line}: {exc}")
                continue
            if app.receipt_code in seen:
                errors.append(f"dòng {line}: mã {app.receipt_code} trùng với dòng "
                              f"{seen[app.receipt_code]}")
                continue
            seen[app.receipt_code] = line
            good.append((line, app))
    except csv.Error as exc:
        raise StatusImportError(f"{path}: CSV không hợp lệ ở dòng {reader.line_num}: {exc}") \
            from exc
    return good, errors


_FIELDS = ("procedure_code", "agency", "status", "received_at", "due_at", "finished_at", "note")


def import_status_csv(session: Session, path: Path, matcher: CodeMatcher, *,
                      skip_invalid: bool = False, replace_all: bool = False,
                      progress: bool = False) -> ImportReport:
    """Validate the whole file, then upsert it in the caller's transaction.

    Raises StatusImportError (nothing written) when the file is unusable, or when a row is
    invalid and `skip_invalid` is off; the error lists every bad row.
    """
    good, errors = read_status_csv(path, matcher, progress=progress)
    report = ImportReport(rows=len(good) + len(errors), errors=errors)
    if errors and not skip_invalid:
        shown = "\n".join(f"  {e}" for e in errors[:50])
        more = f"\n  … và {len(errors) - 50} lỗi khác" if len(errors) > 50 else ""
        raise StatusImportError(
            f"{path}: {len(errors)} dòng không hợp lệ, chưa nhập dòng nào:\n{shown}{more}\n"
            "Sửa các dòng trên rồi nhập lại (hoặc dùng --skip-invalid để nhập các dòng đúng).")
    if replace_all and errors:
        raise StatusImportError(f"{path}: --replace-all cần một tệp không có dòng lỗi")
    report.skipped = len(errors)
    if not good and not replace_all:
        raise StatusImportError(f"{path}: không có dòng dữ liệu nào")
    known = set(session.execute(select(Procedure.code)).scalars())
    unknown_procs = sorted({a.procedure_code for _, a in good
                            if a.procedure_code and a.procedure_code not in known})
    if unknown_procs:
        report.warnings.append(
            f"{len(unknown_procs)} mã thủ tục không có trong danh mục (câu trả lời sẽ chỉ nêu "
            f"mã): {', '.join(unknown_procs[:10])}{' …' if len(unknown_procs) > 10 else ''}")
    existing = {r.receipt_code: r for r in session.execute(select(ApplicationRecord)).scalars()}
    now = datetime.now().replace(microsecond=0)
    for _, app in good:
        row = existing.get(app.receipt_code)
        if row is None:
            session.add(ApplicationRecord(receipt_code=app.receipt_code, source=path.name,
                                          imported_at=now,
                                          **{f: getattr(app, f) for f in _FIELDS}))
            report.new += 1
            continue
        if all(getattr(row, f) == getattr(app, f) for f in _FIELDS):
            report.unchanged += 1
            continue
        for f in _FIELDS:
            setattr(row, f, getattr(app, f))
        row.source, row.imported_at = path.name, now
        report.updated += 1
    if replace_all:
        gone = set(existing) - {a.receipt_code for _, a in good}
        if gone:
            session.execute(delete(ApplicationRecord)
                            .where(ApplicationRecord.receipt_code.in_(sorted(gone))))
        report.deleted = len(gone)
    session.flush()
    return report

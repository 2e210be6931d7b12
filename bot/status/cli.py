"""`bot status import | show | check`: operators load statuses and see what citizens will see."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import date
from pathlib import Path

from bot.config import Settings


def cmd_status_import(args: argparse.Namespace, settings: Settings) -> int:
    from bot.catalog.db import session_scope
    from bot.catalog.seed import ensure_seeded
    from bot.status.codes import CodePatternError, matcher_for
    from bot.status.importer import StatusImportError, import_status_csv

    try:
        matcher = matcher_for(settings.receipt_code_patterns)
    except CodePatternError as exc:
        print(f"Lỗi mẫu mã hồ sơ:\n{exc}", file=sys.stderr)
        return 2
    path = Path(args.path)
    try:
        with session_scope(settings.database_url) as s:
            ensure_seeded(s)  # the catalog, to name unknown procedure codes
            report = import_status_csv(
                s, path, matcher, skip_invalid=args.skip_invalid, replace_all=args.replace_all,
                progress=not args.no_progress and sys.stderr.isatty())
    except StatusImportError as exc:
        print(f"Lỗi: {exc}", file=sys.stderr)
        return 2
    for err in report.errors[: args.max_errors]:
        print(f"  bỏ qua {err}", file=sys.stderr)
    if len(report.errors) > args.max_errors:
        print(f"  … và {len(report.errors) - args.max_errors} lỗi khác", file=sys.stderr)
    for warning in report.warnings:
        print(f"Lưu ý: {warning}", file=sys.stderr)
    print(f"{path.name}: {report.summary()}")
    return 0


def cmd_status_show(args: argparse.Namespace, settings: Settings) -> int:
    from bot.catalog.db import session_scope
    from bot.catalog.models import Procedure
    from bot.status.answer import render_status
    from bot.status.codes import CodePatternError, matcher_for
    from bot.status.record import StatusUnavailable
    from bot.status.sources import StatusConfigError, make_source
    from bot.status.workdays import CalendarError, calendar_for

    try:
        matcher = matcher_for(settings.receipt_code_patterns)
        source = make_source(settings)
        cal = calendar_for(settings.work_calendar)
        today = date.fromisoformat(args.date) if args.date else None
    except (CodePatternError, StatusConfigError, CalendarError, ValueError) as exc:
        print(f"Lỗi: {exc}", file=sys.stderr)
        return 2
    code = matcher.first(args.code)
    if code is None:
        print(f"Lỗi: {args.code!r} không đúng dạng mã hồ sơ (ví dụ {matcher.example})",
              file=sys.stderr)
        return 2

    async def lookup():  # noqa: ANN202
        try:
            return await source.lookup(code)
        finally:
            await source.close()

    try:
        app = asyncio.run(lookup())
    except StatusUnavailable as exc:
        print(f"Nguồn trạng thái ({source.name}) không trả lời được: {exc}", file=sys.stderr)
        return 1
    if app is None:
        print(f"Không có hồ sơ {code} trong nguồn {source.name}", file=sys.stderr)
        return 1
    with session_scope(settings.database_url) as s:
        proc = s.get(Procedure, app.procedure_code) if app.procedure_code else None
        name = proc.display_name if proc is not None else None
    from bot.fees.service import vietnam_today

    answer = render_status(app, name, today or vietnam_today(), cal)
    if args.json:
        record = {k: (v.isoformat() if hasattr(v, "isoformat") else v)
                  for k, v in app.__dict__.items()}
        print(json.dumps({"record": record, "procedure_name": name, "answer": answer},
                         ensure_ascii=False, indent=2))
    else:
        print(answer)
    return 0


def cmd_status_check(args: argparse.Namespace, settings: Settings) -> int:
    from bot.status.codes import CodePatternError
    from bot.status.sources import StatusConfigError, check_status_settings
    from bot.status.workdays import CalendarError

    try:
        check_status_settings(settings)
    except (CodePatternError, StatusConfigError, CalendarError) as exc:
        print(f"Cấu hình tra cứu hồ sơ không hợp lệ:\n{exc}", file=sys.stderr)
        return 2
    print(f"Cấu hình tra cứu hồ sơ hợp lệ (nguồn: {settings.status_source}).")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    """`bot status import | show | check`."""
    st = sub.add_parser("status", help="application status lookup: import, show, check")
    ssub = st.add_subparsers(dest="status_command", required=True, metavar="ACTION")
    im = ssub.add_parser(
        "import", help="load a CSV of application statuses into the database",
        description="Header: receipt_code,procedure_code,agency,status,received_at,due_at,"
        "finished_at,note (UTF-8). status: received, processing, need_supplement, done, "
        "rejected, returned. Dates ISO (2025-03-20 or 2025-03-20T17:00). The whole file is "
        "checked first; one invalid row loads nothing unless --skip-invalid.")
    im.add_argument("path", help="CSV file")
    im.add_argument("--skip-invalid", action="store_true",
                    help="load the valid rows and report the invalid ones")
    im.add_argument("--replace-all", action="store_true",
                    help="the file is a full snapshot: delete codes it no longer lists")
    im.add_argument("--no-progress", action="store_true", help="no progress bar")
    im.add_argument("--max-errors", type=int, default=20, help="invalid rows to print (20)")
    im.set_defaults(func=cmd_status_import)
    sh = ssub.add_parser("show", help="what the bot answers for a receipt code")
    sh.add_argument("code", help="receipt code, e.g. 000.00.20.H26-250312-0045")
    sh.add_argument("--date", help="answer as of this day, YYYY-MM-DD (default: today)")
    sh.add_argument("--json", action="store_true", help="the record and the answer as JSON")
    sh.set_defaults(func=cmd_status_show)
    ck = ssub.add_parser("check", help="validate STATUS_* settings, code patterns, calendar")
    ck.set_defaults(func=cmd_status_check)

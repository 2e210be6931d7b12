"""`bot retention run [--dry-run] [--json]`: delete (or count) old citizen data now.

Kept light: every `bot` command builds this parser; the work is imported when it runs.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from typing import TYPE_CHECKING

from bot.config import Settings

if TYPE_CHECKING:
    from bot.retention.purge import RetentionReport


def format_report(report: RetentionReport) -> str:
    """The operator's view of a run: rows per table, in Vietnamese like the other commands."""
    from bot.retention.purge import TABLES

    when = report.cutoff.strftime("%Y-%m-%d %H:%M")
    if report.dry_run:
        head = (f"Chạy thử (--dry-run), chưa xoá gì. Dữ liệu cũ hơn {report.days} ngày "
                f"(trước {when} UTC) sẽ bị xoá:")
    else:
        head = f"Đã xoá dữ liệu cũ hơn {report.days} ngày (trước {when} UTC):"
    lines = [head]
    for name in TABLES:
        extra = f"  ({report.conversations} cuộc hội thoại)" if name == "events" else ""
        lines.append(f"  {name:18} {report.deleted[name]:>8}{extra}")
    lines.append(f"Tổng cộng: {report.total} dòng.")
    if not report.complete:
        lines.append("Đã dừng giữa chừng: chạy lại để xoá nốt.")
    return "\n".join(lines)


def cmd_retention(args: argparse.Namespace, settings: Settings) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from bot.registry.locks import LockBusy
    from bot.retention.purge import purge
    from bot.retention.runs import locked_run

    days = settings.retention_days
    if days <= 0:
        print("RETENTION_DAYS=0: dữ liệu được giữ vĩnh viễn, không xoá gì.")
        return 0
    try:
        if args.dry_run:
            report = purge(settings.database_url, days, dry_run=True)
        else:
            report = locked_run(settings.database_url, days, f"cli:{getpass.getuser()}")
    except LockBusy as exc:
        print(f"Lỗi: một lượt xoá dữ liệu cũ khác đang chạy ({exc.info.holder}); "
              "thử lại sau.", file=sys.stderr)
        return 1
    except SQLAlchemyError as exc:
        print(f"Lỗi cơ sở dữ liệu: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    assert report is not None  # only `if_due` runs are skipped
    print(json.dumps(report.as_dict(), ensure_ascii=False) if args.json
          else format_report(report))
    return 0 if report.complete else 1


def add_parser(sub: argparse._SubParsersAction) -> None:
    """`bot retention run [--dry-run] [--json]`."""
    p = sub.add_parser(
        "retention", help="delete citizen data older than RETENTION_DAYS",
        description="Conversations, Zalo payloads, closed hand-overs, feedback and status "
        "look-ups older than RETENTION_DAYS (0: keep forever) are deleted. Every gateway "
        "does it once a day by itself; this runs it now.")
    rsub = p.add_subparsers(dest="retention_command", required=True, metavar="ACTION")
    run = rsub.add_parser("run", help="delete now, printing the rows deleted per table")
    run.add_argument("--dry-run", action="store_true",
                     help="only count what would be deleted")
    run.add_argument("--json", action="store_true", help="one JSON object instead of a table")
    run.set_defaults(func=cmd_retention)

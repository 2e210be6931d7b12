"""`bot fees explain` and `bot fees check`: the resolver's decisions, readable by an operator.

An operator who doubts an answer ("why 0 đồng online?") must see every rule the resolver
considered, which one won and why, without reading code; `--json` gives the same for
scripts, one object per channel.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date

from bot.catalog.models import CHANNEL_LABELS
from bot.config import Settings
from bot.fees.overrides import OverrideError
from bot.fees.provinces import Province
from bot.fees.rules import CHANNEL_INPUT, CHANNEL_OUTPUT, COUNCIL, Decision
from bot.fees.service import (
    FeeBook,
    FeeInputError,
    check_fee_settings,
    parse_day,
    parse_province,
)
from bot.text import vnd


def money_text(amount: int | None) -> str:
    if amount is None:
        return "chưa rõ số tiền"
    return vnd(amount)


def render(code: str, name: str, council: bool, province: Province | None, day: date,
           decisions: list[Decision]) -> str:
    """The decision trace as text: per channel, the amount, then every rule considered."""
    where = f"{province.short} ({province.code})" if province else "toàn quốc (không chọn tỉnh)"
    lines = [f"Thủ tục {code} — {name}",
             f"Ngày {day:%d/%m/%Y} · nơi nộp: {where} · phí do "
             + ("HĐND cấp tỉnh quyết định" if council else "trung ương quy định")]
    for d in decisions:
        label = CHANNEL_LABELS.get(d.channel, d.channel)
        lines.append(f"\n{label} ({CHANNEL_OUTPUT[d.channel]}): {money_text(d.amount)}")
        lines.append(f"  lý do: {d.reason}")
        if d.legal_basis:
            lines.append(f"  căn cứ: {d.legal_basis}")
        if d.valid_to:
            lines.append(f"  áp dụng đến hết ngày {d.valid_to:%d/%m/%Y}")
        for step in d.trace:
            mark = "✓" if step.used else "·"
            extra = f" [{step.rule.valid_from or '…'} → {step.rule.valid_to or '…'}]" if (
                step.rule.valid_from or step.rule.valid_to) else ""
            amount = (f"{step.rule.percent:g}% mức chuẩn" if step.rule.percent is not None
                      else money_text(step.rule.amount))
            lines.append(f"  {mark} {step.rule.label()}: {amount}{extra} — {step.reason}")
        if d.exemptions:
            for e in d.exemptions:
                tags = ", ".join(e.exempt_tags) or "xem văn bản"
                lines.append(f"  miễn/giảm có thể áp dụng ({tags}): {e.exempt_text or ''}")
    return "\n".join(lines)


def cmd_fees_explain(args: argparse.Namespace, settings: Settings) -> int:
    from bot.catalog.db import session_scope
    from bot.catalog.models import Procedure
    from bot.catalog.seed import ensure_seeded

    try:
        day = parse_day(args.date if args.date is not None else settings.fee_date)
        province = parse_province(args.province if args.province is not None
                                  else settings.province)
        book = FeeBook.load(settings.fee_overrides_dir, settings.database_url)
    except (FeeInputError, OverrideError) as exc:
        print(f"Lỗi: {exc}", file=sys.stderr)
        return 2
    channels = [CHANNEL_INPUT[args.channel]] if args.channel else None
    with session_scope(settings.database_url) as s:
        ensure_seeded(s)
        s.commit()
        p = s.get(Procedure, args.code.strip())
        if p is None:
            print(f"Lỗi: không có thủ tục mã {args.code!r} trong danh mục", file=sys.stderr)
            return 2
        decisions = book.decide_channels(p, day, province.code if province else None,
                                         tuple(args.situation or ()), channels)
        if args.json:
            for d in decisions:
                print(json.dumps(d.as_dict(), ensure_ascii=False))
            return 0
        print(render(p.code, p.display_name, p.fee_set_by == COUNCIL, province, day, decisions))
    return 0


def cmd_fees_check(args: argparse.Namespace, settings: Settings) -> int:
    from pathlib import Path

    folder = Path(args.folder) if args.folder else settings.fee_overrides_dir
    try:
        book = check_fee_settings(settings, folder)
    except (OverrideError, FeeInputError) as exc:
        print(f"Lỗi:\n{exc}", file=sys.stderr)
        return 1
    for code, rules in sorted(book.overrides.items()):
        print(f"tỉnh {code}: {len(rules)} quy định")
    print(f"{folder} và các bản sửa trong cơ sở dữ liệu: hợp lệ")
    return 0


def cmd_fees_export(args: argparse.Namespace, settings: Settings) -> int:
    """Write the overrides saved in the console into files, for review and commit."""
    from pathlib import Path

    from bot.catalog.db import session_scope
    from bot.fees.stored import export

    folder = Path(args.folder) if args.folder else settings.fee_overrides_dir
    with session_scope(settings.database_url) as s:
        written = export(s, folder)
    for path in written:
        print(f"đã ghi {path}")
    print(f"{len(written)} tệp thay đổi trong {folder}"
          + (": xem lại bằng git diff rồi commit" if written else ""))
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    """`bot fees explain | check | export`."""
    from bot.fees.situations import SITUATIONS

    f = sub.add_parser("fees", help="fee rules: explain a decision, check override files")
    fsub = f.add_subparsers(dest="fees_command", required=True, metavar="ACTION")
    ex = fsub.add_parser(
        "explain", help="the fee of a procedure per channel, with the rules considered",
        description="Prints the resolver's decision trace: which rule won and why "
        "(exemption > valid local rule > valid temporary national reduction > standard).")
    ex.add_argument("code", help="procedure code, e.g. 1.001612")
    ex.add_argument("--channel", choices=("online", "direct", "post"),
                    help="one channel (default: every channel of the procedure)")
    ex.add_argument("--date", help="YYYY-MM-DD (default: FEE_DATE or today in Việt Nam)")
    ex.add_argument("--province", help="official code (Hà Nội = 01) or name, with or without "
                    "diacritics (default: PROVINCE); '' for national rules only")
    ex.add_argument("--situation", nargs="+", metavar="TAG", choices=sorted(SITUATIONS),
                    help="declared situations: " + ", ".join(SITUATIONS))
    ex.add_argument("--json", action="store_true", help="one JSON object per channel")
    ex.set_defaults(func=cmd_fees_explain)
    ck = fsub.add_parser("check", help="validate the override files (data/fees/*.yaml) and "
                         "the overrides saved in the console (the database)")
    ck.add_argument("folder", nargs="?", help="folder of override files (FEE_OVERRIDES_DIR)")
    ck.set_defaults(func=cmd_fees_check)
    xp = fsub.add_parser("export", help="write the overrides saved in the console (the "
                         "database) into the folder, for review in git")
    xp.add_argument("folder", nargs="?", help="target folder (default: FEE_OVERRIDES_DIR)")
    xp.set_defaults(func=cmd_fees_export)

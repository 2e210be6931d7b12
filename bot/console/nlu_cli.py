"""`bot nlu export-corrections`: the console's NLU corrections, from the database to git.

Operators' corrections are stored in the database (every gateway replica writes there and
training reads them). A reviewer runs this on any machine that reaches the database, reads
`git diff data/nlu/corrections.yml` and commits: the next release ships them as data.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bot.config import Settings


def cmd_export_corrections(args: argparse.Namespace, settings: Settings) -> int:
    from bot.catalog.db import session_scope
    from bot.console.corrections import export_corrections

    target = Path(args.out) if args.out else settings.nlu_corrections_file
    with session_scope(settings.database_url) as s:
        added = export_corrections(s, target)
    if added:
        print(f"{target}: thêm {added} câu; xem lại bằng git diff rồi commit")
    else:
        print(f"{target}: không có câu mới (mọi câu đã sửa đều có trong {target.parent})")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    """`bot nlu export-corrections [--out FILE]`."""
    n = sub.add_parser("nlu", help="NLU training data: export the console's corrections")
    nsub = n.add_subparsers(dest="nlu_command", required=True, metavar="ACTION")
    ex = nsub.add_parser(
        "export-corrections",
        help="write the corrections stored by the console into the corrections file",
        description="Adds every correction stored in the database that no file of the NLU "
        "folder holds yet to the corrections file (NLU_CORRECTIONS_FILE), sorted, for review "
        "in git.")
    ex.add_argument("--out", help="the file to write (default: NLU_CORRECTIONS_FILE); its "
                    "folder is the NLU data the examples are compared with")
    ex.set_defaults(func=cmd_export_corrections)

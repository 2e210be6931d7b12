"""`bot operator add | passwd | list | disable | enable`: operator accounts from the server.

The first admin account can only be created here (the console has no sign-up page); a
password is read without echo, or from stdin with --password-stdin for automation.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys

from bot.config import Settings

ACTOR = "cli"


def _password(args: argparse.Namespace) -> str | None:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("Mật khẩu (ít nhất 10 ký tự): ")
    if getpass.getpass("Nhập lại mật khẩu: ") != first:
        print("Lỗi: hai lần nhập không khớp", file=sys.stderr)
        return None
    return first


def cmd_operator(args: argparse.Namespace, settings: Settings) -> int:
    from sqlalchemy import select

    from bot.catalog.db import session_scope
    from bot.console import accounts
    from bot.console.models import Operator

    actor = f"{ACTOR}:{getpass.getuser()}"
    try:
        if args.operator_command == "list":
            with session_scope(settings.database_url) as s:
                rows = [{"username": o.username, "display_name": o.display_name,
                         "role": o.role, "active": o.active,
                         "last_login_at": o.last_login_at.isoformat()
                         if o.last_login_at else None}
                        for o in s.execute(select(Operator).order_by(Operator.username))
                        .scalars()]
            if args.json:
                print(json.dumps(rows, ensure_ascii=False, indent=2))
            else:
                for r in rows:
                    state = "" if r["active"] else " (đã khóa)"
                    print(f"{r['username']:20} {r['role']:8} {r['display_name']}{state}")
            return 0
        if args.operator_command in ("add", "passwd"):
            password = _password(args)
            if password is None:
                return 2
            with session_scope(settings.database_url) as s:
                if args.operator_command == "add":
                    accounts.add_operator(s, args.username, password, args.role, args.name,
                                          by=actor)
                else:
                    accounts.set_password(s, args.username, password, by=actor)
        else:
            with session_scope(settings.database_url) as s:
                accounts.set_active(s, args.username, args.operator_command == "enable",
                                    by=actor)
    except accounts.AccountError as exc:
        print(f"Lỗi: {exc}", file=sys.stderr)
        return 2
    print("Đã xong.")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register `bot operator …`."""
    from bot.console.models import ROLES

    op = sub.add_parser("operator", help="operator console accounts")
    osub = op.add_subparsers(dest="operator_command", required=True, metavar="ACTION")
    add = osub.add_parser("add", help="create an account (admin, trainer or agent)")
    add.add_argument("username")
    add.add_argument("--role", required=True, choices=ROLES)
    add.add_argument("--name", help="display name (default: the username)")
    add.add_argument("--password-stdin", action="store_true",
                     help="read the password from the first line of stdin")
    pw = osub.add_parser("passwd", help="set a new password (ends the account's sessions)")
    pw.add_argument("username")
    pw.add_argument("--password-stdin", action="store_true")
    ls = osub.add_parser("list", help="the accounts")
    ls.add_argument("--json", action="store_true")
    for name, text in (("disable", "lock an account (ends its sessions)"),
                       ("enable", "unlock an account")):
        p = osub.add_parser(name, help=text)
        p.add_argument("username")
    op.set_defaults(func=cmd_operator)

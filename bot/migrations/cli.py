"""`bot db current|upgrade|heads`: the database schema, for operators rolling out a release.

Every process upgrades the database when it opens it (bot/catalog/schema.py); in the
scaled-out profile an operator runs `bot db upgrade` once before starting the new release's
processes, so a migration runs — or fails — in one visible place (the compose `migrate`
service and the Kubernetes Job run exactly this, with `--catalog`: the shipped national
catalog is imported there too, once, instead of by every replica).
"""

from __future__ import annotations

import argparse
import sys

from bot.config import Settings


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("db", help="database migrations (Alembic): current, upgrade, heads",
                       description="Show or bring the schema of DATABASE_URL to this "
                       "release's migrations. Rasa's own `events` table is never touched.")
    dsub = p.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    dsub.add_parser("current", help="the database's revision (none: not migrated yet)")
    up = dsub.add_parser("upgrade", help="migrate the database to this release's head")
    up.add_argument("--catalog", action="store_true",
                    help="then load the curated seed and the shipped national catalog "
                    "(CATALOG_SNAPSHOT) as `bot run` does on a first start; the compose "
                    "`migrate` service and the Kubernetes Job use it")
    dsub.add_parser("heads", help="this release's newest revision")
    p.set_defaults(func=cmd_db)


def cmd_db(args: argparse.Namespace, settings: Settings) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from bot import migrations

    try:
        if args.db_command == "heads":
            print("\n".join(migrations.heads()))
        elif args.db_command == "current":
            print(migrations.current(settings.database_url) or "(chưa có phiên bản)")
        else:
            done = migrations.upgrade_to_head(settings.database_url)
            print("\n".join(done) if done else "Cơ sở dữ liệu đã ở phiên bản mới nhất.")
            print(f"head: {migrations.head()}")
            if getattr(args, "catalog", False):
                from bot.catalog.snapshot import prepare_catalog

                prepare_catalog(settings)
                print("Danh mục thủ tục: đã sẵn sàng.")
    except (SQLAlchemyError, RuntimeError) as exc:
        print(f"Lỗi cơ sở dữ liệu: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0

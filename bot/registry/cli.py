"""`bot model list | train | evaluate | activate | rollback` (filled in by the registry work)."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register `bot model …` (not yet)."""

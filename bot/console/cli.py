"""`bot operator add | passwd | list | disable`: operator accounts (filled in by the console)."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register `bot operator …` (not yet)."""

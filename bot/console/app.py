"""The operator console's routes on the gateway (filled in by the console work)."""

from __future__ import annotations

from aiohttp import web

from bot.config import Settings


def add_console(app: web.Application, settings: Settings) -> None:
    """Mount /console (not yet)."""

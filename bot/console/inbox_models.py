"""ORM tables of the NLU inbox (on the shared `Base`, created by bot.catalog.schema.upgrade)."""

from __future__ import annotations

from bot.catalog.models import Base  # noqa: F401

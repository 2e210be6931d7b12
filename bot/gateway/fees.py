"""GET /api/v1/procedures/{code}/fees: the fee resolver's decisions over HTTP.

Channel adapters and the city's own pages can show the same amounts the bot says, with
the rule and legal basis, without going through a chat turn. Parameters are validated
like the rest of the gateway: a bad one gets a 422 with a Vietnamese message.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from datetime import date

from aiohttp import web

from bot.catalog.db import session_scope
from bot.catalog.models import Procedure
from bot.config import Settings
from bot.fees.overrides import OverrideError
from bot.fees.rules import CHANNEL_INPUT, COUNCIL
from bot.fees.service import FeeBook, FeeInputError, LiveFeeBook, parse_day, parse_province
from bot.fees.situations import SITUATIONS
from bot.gateway.errors import ApiError, json_response
from bot.gateway.widget import LIMITS_KEY, SEARCH

log = logging.getLogger("bot.gateway")


@dataclass(frozen=True)
class FeeState:
    """The override rules read at start-up (or why they could not be), and the settings."""

    settings: Settings
    book: LiveFeeBook | None
    error: str | None = None


FEES_KEY = web.AppKey("fees", FeeState)


def fees_ctx(settings: Settings) -> Callable[[web.Application], AsyncIterator[None]]:
    """A cleanup context reading the overrides at start-up (files and the database's
    console edits, then following edits).

    A file broken at start disables this endpoint (503 with a message), not the chat.
    """

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        try:
            book = await asyncio.to_thread(LiveFeeBook, settings.fee_overrides_dir,
                                           settings.catalog_refresh,
                                           database_url=settings.database_url)
            app[FEES_KEY] = FeeState(settings, book)
        except OverrideError as exc:
            log.error("fee override files invalid: %s", exc)
            app[FEES_KEY] = FeeState(settings, None, str(exc)[:500])
        yield

    return ctx


Params = tuple[list[str] | None, date, str | None, tuple[str, ...]]


def _params(query: Mapping[str, str], settings: Settings) -> Params:
    """(channels, day, province code, situation tags) from the query string, or 422."""
    channel = query.get("channel")
    if channel is not None and channel not in CHANNEL_INPUT:
        raise ApiError(422, "invalid_field",
                       "Tham số 'channel' phải là online, direct hoặc post.")
    try:
        day = parse_day(query.get("date") or settings.fee_date)
        province = parse_province(query["province"] if "province" in query
                                  else settings.province)
    except FeeInputError as exc:
        raise ApiError(422, "invalid_field", str(exc)) from None
    tags = tuple(t for t in (query.get("situation") or "").split(",") if t.strip())
    unknown = [t for t in tags if t not in SITUATIONS]
    if unknown:
        raise ApiError(422, "invalid_field", f"Tham số 'situation' có nhóm không biết: "
                       f"{', '.join(unknown)} (dùng: {', '.join(SITUATIONS)}).")
    return ([CHANNEL_INPUT[channel]] if channel else None, day,
            province.code if province else None, tags)


def _decide(settings: Settings, book: FeeBook, code: str, channels: list[str] | None,
            day: date, province: str | None, tags: tuple[str, ...]) -> dict | None:
    with session_scope(settings.database_url) as s:
        p = s.get(Procedure, code)
        if p is None:
            return None
        decisions = book.decide_channels(p, day, province, tags, channels)
        fees = [d.as_dict() for d in decisions]
        return {"code": p.code, "name": p.display_name, "date": day.isoformat(),
                "province": province, "council_set": p.fee_set_by == COUNCIL,
                "situation": list(tags), "fees": fees}


async def procedure_fees(request: web.Request) -> web.Response:
    """The fee of one procedure per channel, as `bot fees explain --json` prints it.

    Shares the search bucket per client address: both read the catalog for anyone.
    """
    request.app[LIMITS_KEY].check_route(SEARCH, request.remote)
    state = request.app[FEES_KEY]
    settings = state.settings
    if state.book is None:
        raise ApiError(503, "fees_unavailable",
                       "Quy định phí, lệ phí tạm thời không sẵn sàng. Bạn vui lòng thử lại sau.")
    code = request.match_info["code"].strip()
    channels, day, province, tags = _params(request.query, settings)
    body = await asyncio.to_thread(_decide, settings, state.book.get(), code, channels, day,
                                   province, tags)
    if body is None:
        raise ApiError(404, "not_found", f"Không có thủ tục mã {code} trong danh mục.")
    return json_response(body)

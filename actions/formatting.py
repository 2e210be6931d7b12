"""Vietnamese wording of catalog facts (money, durations, lists, links).

Kept apart from the actions so every answer words the same fact the same way, and so an
unknown fact is always said to be unknown rather than silently shown as 0 or blank.
"""

from __future__ import annotations

from bot.catalog.models import CHANNEL_LABELS, Channel, Procedure
from bot.text import vnd

UNKNOWN = "chưa có thông tin trong danh mục"


def money(amount: int | None) -> str:
    """10000 → "10.000 đồng"; 0 → "0 đồng (miễn phí)"; None → unknown.

    The number first, also for 0: citizens compare the channels by it.
    """
    if amount is None:
        return UNKNOWN
    if amount == 0:
        return "0 đồng (miễn phí)"
    return vnd(amount)


def duration(ch: Channel) -> str:
    """The processing time of a channel, or its raw text, or unknown."""
    if ch.time_value is not None:
        value = int(ch.time_value) if float(ch.time_value).is_integer() else ch.time_value
        if ch.time_unit:
            return f"{value} {ch.time_unit}"
        # The portal sometimes gives a bare number: say so rather than guess the unit.
        return f"{value} (danh mục không ghi rõ đơn vị thời gian)"
    if ch.time_text:
        return ch.time_text
    return UNKNOWN


def channel_label(ch: Channel) -> str:
    return CHANNEL_LABELS.get(ch.channel, ch.channel)


def heading(p: Procedure) -> str:
    """How every answer names the procedure: its name and its code."""
    return f"{p.display_name} (mã thủ tục {p.code})"


def link(p: Procedure, portal_url: str) -> str:
    url = p.url or f"{portal_url}/p/home/dvc-tthc-thu-tuc-hanh-chinh.html"
    return f"Xem chi tiết trên Cổng Dịch vụ công quốc gia: {url}"


def bullet_lines(items: list[str]) -> str:
    return "\n".join(f"• {item}" for item in items)

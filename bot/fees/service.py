"""The fee book: national rules from the catalog plus the provinces' override files.

Actions, the CLI and the API hold one `FeeBook` and ask it for decisions; it knows which
override rules belong to which province and what "today" is for a Vietnamese citizen.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from bot.catalog.models import Procedure
from bot.fees.overrides import OVERRIDES_DIR, load_overrides
from bot.fees.provinces import Province, find_province
from bot.fees.rules import CHANNELS, COUNCIL, Decision, Rule, resolve
from bot.fees.store import rules_of

# Việt Nam has kept UTC+7 without daylight saving since 1975: a fixed offset is exact and
# needs no tz database on the machine.
VIETNAM = timezone(timedelta(hours=7))


def vietnam_today() -> date:
    """Today's date in Việt Nam (a fee that ends "hết ngày 31/12" ends at its midnight)."""
    return datetime.now(VIETNAM).date()


@dataclass
class FeeBook:
    """Override rules by province code, ready to combine with a procedure's stored rules."""

    overrides: dict[str, list[Rule]] = field(default_factory=dict)

    @classmethod
    def load(cls, folder: Path = OVERRIDES_DIR) -> FeeBook:
        """Read and validate every override file (OverrideError lists all problems)."""
        return cls(load_overrides(folder))

    def rules_for(self, p: Procedure, province: str | None) -> list[Rule]:
        return rules_of(p) + (self.overrides.get(province, []) if province else [])

    def decide(self, p: Procedure, channel: str, day: date, province: str | None = None,
               situation: tuple[str, ...] | list[str] = ()) -> Decision:
        """The fee of `p` through `channel` on `day` for a citizen of `province`."""
        return resolve(self.rules_for(p, province), p.code, channel, day, province,
                       situation, council_set=p.fee_set_by == COUNCIL)

    def decide_channels(self, p: Procedure, day: date, province: str | None = None,
                        situation: tuple[str, ...] | list[str] = (),
                        channels: list[str] | None = None) -> list[Decision]:
        """One decision per channel: the given ones, else the procedure's, else all three."""
        if channels is None:
            channels = list(dict.fromkeys(ch.channel for ch in p.channels)) or list(CHANNELS)
        return [self.decide(p, ch, day, province, situation) for ch in channels]


def province_or_none(value: str | None) -> Province | None:
    """The configured or declared province; blank means national rules only."""
    if not value or not value.strip():
        return None
    return find_province(value)

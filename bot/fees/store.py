"""National fee rules in the catalog database, derived from each channel's fee text.

The import keeps every channel's raw fee cell; this module turns those cells into rules
(`standard`, dated `reduction`s, `exemption`s) and marks procedures whose fee the
provincial council sets. Deriving from the stored cells, not from the import records,
lets a newer parser re-derive the rules of an existing database at start-up
(`sync_fee_rules`, keyed by RULES_VERSION) without re-importing anything.
"""

from __future__ import annotations

import logging
import re

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from bot.catalog.models import Channel, FeeRule, Procedure
from bot.catalog.revision import get_counter, set_counter
from bot.fees import national
from bot.fees.rules import COUNCIL, NATIONAL, Rule

log = logging.getLogger(__name__)

RULES_VERSION = 1  # bump when national rule derivation changes: existing catalogs re-derive


_DOC_NUMBER = re.compile(r"\b\d{1,4}/\d{4}/[A-ZĐa-zđ0-9-]+")


def _basis(p: Procedure, fee_text: str) -> str | None:
    """The legal basis of a channel's fee, kept short enough to quote to a citizen.

    Documents the fee text itself cites come first; else the procedure's legal-basis
    entries about fees ("phí", "lệ phí" in the title); else None: listing every law the
    procedure rests on would bury the one that sets the fee.
    """
    cited = list(dict.fromkeys(m.group(0).rstrip(".,;)") for m in _DOC_NUMBER.finditer(
        fee_text)))
    if cited:
        return "; ".join(cited)
    about_fees = [b.number for b in p.legal_basis
                  if b.number and "phí" in (b.title or "").lower()]
    return "; ".join(dict.fromkeys(about_fees)) or None


def fee_text(ch: Channel) -> str:
    """All a channel says about its fee: the portal's cell and the curated note."""
    return " ".join(filter(None, (ch.fee_text, ch.note)))


def national_rules(p: Procedure, source: str | None = None) -> list[FeeRule]:
    """The national rules of a procedure from its channels' fee texts (not yet attached)."""
    source = source or p.source or "import"
    rules: list[FeeRule] = []
    seen_exempt: set[tuple[str, ...]] = set()
    for ch in p.channels:
        text = fee_text(ch)
        basis = _basis(p, text)
        amount = ch.fee if ch.fee is not None else national.standard_amount(ch.fee_text)
        rules.append(FeeRule(kind="standard", channel=ch.channel, amount=amount,
                             jurisdiction=NATIONAL, legal_basis=basis, source=source,
                             note=ch.note))
        for r in national.reductions(text):
            rules.append(FeeRule(
                kind="reduction", channel=ch.channel if r.channel == "any" else r.channel,
                amount=r.amount, percent=r.percent, jurisdiction=NATIONAL,
                valid_from=r.valid_from, valid_to=r.valid_to,
                legal_basis=r.legal_basis or basis, source=source, note=r.text))
        for e in national.exemptions(text):
            # The same groups restated under every channel, or in the note: one rule.
            key = e.tags or (e.text,)
            if key in seen_exempt:
                continue
            seen_exempt.add(key)
            rules.append(FeeRule(kind="exemption", channel="any", amount=0,
                                 jurisdiction=NATIONAL, exempt_tags=",".join(e.tags) or None,
                                 exempt_text=e.text, legal_basis=e.legal_basis or basis,
                                 source=source))
    return rules


def council_marker(p: Procedure) -> str | None:
    """COUNCIL when any channel's fee text says the provincial council sets the fee."""
    return COUNCIL if any(national.council_sets_fee(fee_text(ch)) for ch in p.channels) else None


def apply_national(p: Procedure, source: str | None = None) -> None:
    """Replace a procedure's national rules and council marker from its channels."""
    p.fee_set_by = council_marker(p)
    p.fee_rules = national_rules(p, source)


def rules_of(p: Procedure) -> list[Rule]:
    """The stored rules of a procedure as resolver rules."""
    return [to_rule(r, p.code) for r in p.fee_rules]


def to_rule(r: FeeRule, code: str) -> Rule:
    return Rule(
        kind=r.kind or "standard", channel=r.channel or "any", amount=r.amount,
        percent=r.percent, jurisdiction=r.jurisdiction or NATIONAL, procedure_code=code,
        valid_from=r.valid_from, valid_to=r.valid_to,
        exempt_tags=tuple(t for t in (r.exempt_tags or "").split(",") if t),
        exempt_text=r.exempt_text, legal_basis=r.legal_basis, article=r.article,
        source=r.source or "import", note=r.note)


def sync_fee_rules(session: Session, force: bool = False) -> int:
    """Re-derive every procedure's national rules when the derivation changed.

    Returns how many procedures were re-derived (0 when the catalog is current). Runs at
    start-up after the seed sync; one counter read when there is nothing to do.
    """
    if not force and get_counter(session, "fee_rules_version") == RULES_VERSION:
        return 0
    procs = session.execute(select(Procedure).options(
        selectinload(Procedure.channels), selectinload(Procedure.legal_basis),
        selectinload(Procedure.fee_rules))).scalars().all()
    for p in procs:
        apply_national(p)
    set_counter(session, "fee_rules_version", RULES_VERSION)
    log.info("fee rules: re-derived for %d procedures (version %d)", len(procs), RULES_VERSION)
    return len(procs)

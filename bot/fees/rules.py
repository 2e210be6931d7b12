"""Fee rules and the one resolver that picks the amount a citizen pays.

A procedure's fee is not one number: it depends on the submission channel, the date (a
temporary national reduction has a first and a last day), the province (a People's
Council sets the fees within its competence, e.g. Hà Nội's 0 đồng for online services)
and the citizen's situation (exempt groups). Every place that states a fee — the chat
answers, `bot fees explain`, the JSON API — asks `resolve`, so they can never disagree,
and each decision carries the rule that won, why, and what was set aside.

Precedence (issue 4): an exemption that matches the citizen's declared situation wins
over everything; then a valid local rule of the citizen's province (only for procedures
whose fee the national catalog says the provincial council sets); then a valid temporary
national reduction; then the standard national fee. Unknown stays unknown: a missing
amount is `None`, never 0, and a reduction stated as a percentage of an unknown amount
is unknown too.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date

CHANNELS = ("online", "in_person", "post")
RULE_CHANNELS = (*CHANNELS, "any")
KINDS = ("standard", "reduction", "local", "exemption")
NATIONAL = "national"
COUNCIL = "provincial_council"  # Procedure.fee_set_by when the provincial council sets it
# Outside (command line, JSON API) in-person submission is "direct" (issue 4); the catalog
# says in_person. Both spellings are accepted in; "direct" goes out.
CHANNEL_INPUT = {"online": "online", "direct": "in_person", "in_person": "in_person",
                 "post": "post"}
CHANNEL_OUTPUT = {"online": "online", "in_person": "direct", "post": "post"}


@dataclass(frozen=True)
class Rule:
    """One fee rule, from the national import or from a province's override file.

    `procedure_code` is None for an override rule that applies to every procedure whose
    fee the provincial council sets (`applies_to: council_set` in the YAML file).
    """

    kind: str
    channel: str = "any"
    amount: int | None = None
    percent: float | None = None  # reductions: share of the standard amount that is paid
    jurisdiction: str = NATIONAL
    procedure_code: str | None = None
    valid_from: date | None = None
    valid_to: date | None = None
    exempt_tags: tuple[str, ...] = ()
    exempt_text: str | None = None
    legal_basis: str | None = None  # document number ("64/2025/TT-BTC")
    article: str | None = None
    title: str | None = None  # the basis in words when no number is known
    source: str = "import"
    note: str | None = None
    rule_id: str | None = None  # an override file's own id for the rule

    def valid_on(self, day: date) -> bool:
        """Both ends inclusive: a rule "đến hết ngày 31/12/2026" still applies that day."""
        return ((self.valid_from is None or self.valid_from <= day)
                and (self.valid_to is None or day <= self.valid_to))

    def covers(self, channel: str) -> bool:
        return self.channel in ("any", channel)

    def basis(self) -> str | None:
        """The legal basis in one line: number, article, or the title when no number."""
        parts = [p for p in (self.article, self.legal_basis) if p]
        if parts:
            text = ", ".join(parts)
            return f"{text} ({self.title})" if self.title else text
        return self.title

    def label(self) -> str:
        """A short name of the rule for traces: kind, scope, source."""
        where = "toàn quốc" if self.jurisdiction == NATIONAL else f"tỉnh {self.jurisdiction}"
        ident = f" {self.rule_id}" if self.rule_id else ""
        return f"{self.kind}{ident} ({where}, {self.channel}, {self.source})"


@dataclass(frozen=True)
class TraceStep:
    """One rule the resolver looked at, and what it made of it."""

    rule: Rule
    used: bool
    reason: str


@dataclass
class Decision:
    """The amount for one channel, the rule that decided it and why."""

    code: str
    channel: str
    day: date
    jurisdiction: str | None
    amount: int | None = None
    rule: Rule | None = None
    reason: str = ""
    trace: list[TraceStep] = field(default_factory=list)
    exemptions: list[Rule] = field(default_factory=list)  # valid ones the citizen may claim

    @property
    def legal_basis(self) -> str | None:
        return self.rule.basis() if self.rule else None

    @property
    def valid_to(self) -> date | None:
        return self.rule.valid_to if self.rule else None

    def as_dict(self) -> dict[str, object]:
        """The `--json` shape of `bot fees explain` and of the fees API (one per channel)."""
        return {
            "code": self.code, "channel": CHANNEL_OUTPUT[self.channel], "amount": self.amount,
            "rule": self.rule.label() if self.rule else None,
            "legal_basis": self.legal_basis,
            "valid_to": self.valid_to.isoformat() if self.valid_to else None,
            "reason": self.reason,
        }


def _channel_first(rules: Iterable[Rule], channel: str) -> list[Rule]:
    """A rule for this very channel before an "any channel" one; newer start first."""
    return sorted(rules, key=lambda r: (r.channel != channel,
                                        -(r.valid_from or date.min).toordinal()))


def _applies(rule: Rule, code: str) -> bool:
    return rule.procedure_code in (None, code)


def resolve(rules: Iterable[Rule], code: str, channel: str, day: date,
            jurisdiction: str | None = None, situation: Iterable[str] = (),
            council_set: bool = False) -> Decision:
    """The fee of procedure `code` submitted through `channel` on `day`.

    `rules` may hold rules of other procedures, channels and provinces: the resolver
    filters. `jurisdiction` is the citizen's province code (None: national rules only);
    `situation` the tags the citizen declared ("ho_ngheo"…); `council_set` whether the
    national catalog says the provincial council sets this procedure's fee.
    """
    if channel not in CHANNELS:
        raise ValueError(f"kênh nộp không hợp lệ: {channel!r} (online, in_person, post)")
    declared = set(situation)
    d = Decision(code=code, channel=channel, day=day, jurisdiction=jurisdiction)
    mine = [r for r in rules if _applies(r, code)]
    relevant: list[Rule] = []
    for r in mine:
        if r.jurisdiction not in (NATIONAL, jurisdiction):
            continue  # another province's rule: not worth a trace line
        if not r.covers(channel):
            continue
        if not r.valid_on(day):
            d.trace.append(TraceStep(r, False, _outside(r, day)))
            continue
        relevant.append(r)
    by_kind = {k: _channel_first([r for r in relevant if r.kind == k], channel) for k in KINDS}
    standard = next((r for r in by_kind["standard"] if r.jurisdiction == NATIONAL), None)
    base = standard.amount if standard else None

    d.exemptions = by_kind["exemption"]
    for r in by_kind["exemption"]:
        matched = [t for t in r.exempt_tags if t in declared]
        if matched and d.rule is None:
            d.amount = r.amount if r.amount is not None else 0
            if r.percent is not None:
                d.amount = _share(base, r.percent)
            d.rule = r
            d.reason = f"miễn/giảm cho người thuộc diện: {', '.join(matched)}"
            d.trace.append(TraceStep(r, True, d.reason))
        elif d.rule is None:
            d.trace.append(TraceStep(r, False, "công dân chưa khai thuộc diện này"))
        else:
            d.trace.append(TraceStep(r, False, "đã có quy định được ưu tiên hơn"))
    for r in by_kind["local"]:
        if d.rule is not None:
            d.trace.append(TraceStep(r, False, "đã có quy định được ưu tiên hơn"))
        elif not council_set:
            d.trace.append(TraceStep(r, False, "phí của thủ tục này do trung ương quy định, "
                                               "không thuộc thẩm quyền HĐND tỉnh"))
        else:
            d.amount = r.amount if r.percent is None else _share(base, r.percent)
            d.rule = r
            d.reason = f"quy định của địa phương ({r.jurisdiction}) đang có hiệu lực"
            d.trace.append(TraceStep(r, True, d.reason))
    for r in by_kind["reduction"]:
        if d.rule is not None:
            d.trace.append(TraceStep(r, False, "đã có quy định được ưu tiên hơn"))
            continue
        d.amount = r.amount if r.amount is not None else _share(base, r.percent)
        d.rule = r
        d.reason = "mức giảm tạm thời của trung ương đang có hiệu lực"
        if d.amount is None:
            d.reason += " (không tính được số tiền: chưa biết mức thu chuẩn)"
        d.trace.append(TraceStep(r, True, d.reason))
    if standard is not None:
        if d.rule is None:
            d.amount, d.rule = standard.amount, standard
            d.reason = "mức thu chuẩn theo danh mục thủ tục quốc gia"
            if standard.amount is None:
                d.reason += " (danh mục không ghi số tiền cụ thể)"
            d.trace.append(TraceStep(standard, True, d.reason))
        else:
            d.trace.append(TraceStep(standard, False, "đã có quy định được ưu tiên hơn"))
    if d.rule is None:
        d.reason = "không có quy định nào về phí cho kênh này: chưa rõ số tiền"
    return d


def _share(base: int | None, percent: float | None) -> int | None:
    """`percent` % of a known amount, rounded to whole đồng; unknown stays unknown."""
    if base is None or percent is None:
        return None
    return round(base * percent / 100)


def _outside(r: Rule, day: date) -> str:
    if r.valid_to is not None and day > r.valid_to:
        return f"đã hết hiệu lực (đến hết ngày {r.valid_to:%d/%m/%Y})"
    return f"chưa có hiệu lực (từ ngày {r.valid_from:%d/%m/%Y})"

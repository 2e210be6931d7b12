"""The fee resolver, table-driven: precedence, date boundaries, unknown amounts, exemptions."""

from __future__ import annotations

from datetime import date

import pytest

from bot.fees.rules import Rule, resolve

CODE = "1.000001"
STANDARD_ONLINE = Rule(kind="standard", channel="online", amount=70_000, procedure_code=CODE,
                       legal_basis="59/2019/TT-BTC")
STANDARD_DIRECT = Rule(kind="standard", channel="in_person", amount=70_000,
                       procedure_code=CODE, legal_basis="59/2019/TT-BTC")
UNKNOWN_DIRECT = Rule(kind="standard", channel="in_person", amount=None, procedure_code=CODE)
REDUCTION_HALF = Rule(kind="reduction", channel="any", percent=50.0, procedure_code=CODE,
                      valid_from=date(2025, 7, 1), valid_to=date(2026, 12, 31),
                      legal_basis="64/2025/TT-BTC")
REDUCTION_ONLINE_AMOUNT = Rule(kind="reduction", channel="online", amount=20_000,
                               procedure_code=CODE, valid_to=date(2024, 12, 31))
HANOI_ONLINE = Rule(kind="local", channel="online", amount=0, jurisdiction="01",
                    procedure_code=None, title="Nghị quyết HĐND TP Hà Nội", rule_id="dvc-0")
HANOI_DATED = Rule(kind="local", channel="any", amount=5_000, jurisdiction="01",
                   procedure_code=CODE, valid_from=date(2026, 1, 1),
                   valid_to=date(2026, 6, 30), rule_id="ban-dau")
DANANG_ONLINE = Rule(kind="local", channel="online", amount=1_000, jurisdiction="48",
                     procedure_code=None, rule_id="dn")
EXEMPT_POOR = Rule(kind="exemption", channel="any", amount=0, procedure_code=CODE,
                   exempt_tags=("ho_ngheo", "khuyet_tat"), exempt_text="Miễn lệ phí cho ...")
OTHER_PROCEDURE = Rule(kind="standard", channel="online", amount=1, procedure_code="9.999999")

DAY = date(2026, 11, 27)
ALL = [STANDARD_ONLINE, STANDARD_DIRECT, REDUCTION_HALF, REDUCTION_ONLINE_AMOUNT,
       HANOI_ONLINE, DANANG_ONLINE, EXEMPT_POOR, OTHER_PROCEDURE]


@pytest.mark.parametrize(
    ("case", "rules", "channel", "day", "province", "situation", "council", "amount", "winner"),
    [
        ("standard only", [STANDARD_ONLINE], "online", DAY, None, (), False, 70_000,
         STANDARD_ONLINE),
        ("reduction over standard", [STANDARD_DIRECT, REDUCTION_HALF], "in_person", DAY,
         None, (), False, 35_000, REDUCTION_HALF),
        ("local over reduction (council-set fee)", ALL, "online", DAY, "01", (), True, 0,
         HANOI_ONLINE),
        ("local ignored where a ministry sets the fee", ALL, "online", DAY, "01", (), False,
         35_000, REDUCTION_HALF),
        ("local rule of another province ignored", ALL, "online", DAY, "79", (), True,
         35_000, REDUCTION_HALF),
        ("another province's own rule", ALL, "online", DAY, "48", (), True, 1_000,
         DANANG_ONLINE),
        ("no province: national only", ALL, "online", DAY, None, (), True, 35_000,
         REDUCTION_HALF),
        ("exemption over local", ALL, "online", DAY, "01", ("ho_ngheo",), True, 0,
         EXEMPT_POOR),
        ("exemption over standard", [STANDARD_DIRECT, EXEMPT_POOR], "in_person", DAY, None,
         ("khuyet_tat",), False, 0, EXEMPT_POOR),
        ("exemption needs a matching situation", [STANDARD_DIRECT, EXEMPT_POOR],
         "in_person", DAY, None, ("nguoi_cao_tuoi",), False, 70_000, STANDARD_DIRECT),
        ("local rule only on its channel", ALL, "in_person", DAY, "01", (), True, 35_000,
         REDUCTION_HALF),
        ("unknown standard stays unknown", [UNKNOWN_DIRECT], "in_person", DAY, None, (),
         False, None, UNKNOWN_DIRECT),
        ("percentage of an unknown amount is unknown", [UNKNOWN_DIRECT, REDUCTION_HALF],
         "in_person", DAY, None, (), False, None, REDUCTION_HALF),
        ("no rule for the channel: unknown", [STANDARD_ONLINE], "post", DAY, None, (), False,
         None, None),
        ("other procedures' rules are ignored", [OTHER_PROCEDURE], "online", DAY, None, (),
         False, None, None),
    ],
)
def test_precedence(case: str, rules: list[Rule], channel: str, day: date,
                    province: str | None, situation: tuple[str, ...], council: bool,
                    amount: int | None, winner: Rule | None) -> None:
    d = resolve(rules, CODE, channel, day, province, situation, council_set=council)
    assert d.amount == amount, case
    assert d.rule == winner, case
    assert d.reason, case


@pytest.mark.parametrize(
    ("day", "amount", "winner"),
    [
        (date(2025, 6, 30), 70_000, STANDARD_DIRECT),  # the day before it starts
        (date(2025, 7, 1), 35_000, REDUCTION_HALF),  # first valid day
        (date(2026, 12, 31), 35_000, REDUCTION_HALF),  # last valid day ("đến hết ngày")
        (date(2027, 1, 1), 70_000, STANDARD_DIRECT),  # the day after it ends
    ],
)
def test_reduction_date_boundaries(day: date, amount: int, winner: Rule) -> None:
    d = resolve([STANDARD_DIRECT, REDUCTION_HALF], CODE, "in_person", day)
    assert (d.amount, d.rule) == (amount, winner)
    if winner is REDUCTION_HALF:
        assert d.valid_to == date(2026, 12, 31)
        assert d.legal_basis == "64/2025/TT-BTC"
    else:
        skipped = [s for s in d.trace if s.rule is REDUCTION_HALF]
        assert skipped and not skipped[0].used
        assert "hiệu lực" in skipped[0].reason


@pytest.mark.parametrize(
    ("day", "amount"),
    [(date(2025, 12, 31), 70_000), (date(2026, 1, 1), 5_000), (date(2026, 6, 30), 5_000),
     (date(2026, 7, 1), 70_000)],
)
def test_local_rule_date_boundaries(day: date, amount: int) -> None:
    d = resolve([STANDARD_DIRECT, HANOI_DATED], CODE, "in_person", day, "01",
                council_set=True)
    assert d.amount == amount


def test_expired_explicit_reduction_falls_back_to_standard() -> None:
    d = resolve([STANDARD_ONLINE, REDUCTION_ONLINE_AMOUNT], CODE, "online", DAY)
    assert (d.amount, d.rule) == (70_000, STANDARD_ONLINE)
    d = resolve([STANDARD_ONLINE, REDUCTION_ONLINE_AMOUNT], CODE, "online", date(2024, 12, 31))
    assert (d.amount, d.rule) == (20_000, REDUCTION_ONLINE_AMOUNT)


def test_channel_specific_reduction_beats_any_channel_one() -> None:
    online_half = Rule(kind="reduction", channel="online", percent=20.0, procedure_code=CODE,
                       valid_from=date(2025, 1, 1), valid_to=date(2026, 12, 31))
    d = resolve([STANDARD_ONLINE, REDUCTION_HALF, online_half], CODE, "online", DAY)
    assert (d.amount, d.rule) == (14_000, online_half)


def test_trace_lists_every_rule_considered_and_exemptions_on_offer() -> None:
    d = resolve(ALL, CODE, "online", DAY, "01", (), council_set=True)
    used = [s for s in d.trace if s.used]
    assert [s.rule for s in used] == [HANOI_ONLINE]
    considered = {s.rule for s in d.trace}
    assert {STANDARD_ONLINE, REDUCTION_HALF, EXEMPT_POOR, REDUCTION_ONLINE_AMOUNT} <= considered
    assert DANANG_ONLINE not in considered and OTHER_PROCEDURE not in considered
    assert d.exemptions == [EXEMPT_POOR]
    assert d.legal_basis == "Nghị quyết HĐND TP Hà Nội"
    assert d.as_dict()["amount"] == 0


def test_bad_channel_is_refused() -> None:
    with pytest.raises(ValueError, match="kênh"):
        resolve(ALL, CODE, "fax", DAY)

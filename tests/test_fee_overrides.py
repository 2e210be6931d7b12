"""Local override files (data/fees/*.yaml): the shipped Hà Nội file, and malformed files."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.fees.overrides import OVERRIDES_DIR, OverrideError, load_file, load_overrides

GOOD_RULE = """
  - id: r1
    applies_to: council_set
    channel: online
    amount: 0
"""


def write(tmp_path: Path, text: str, name: str = "01-ha-noi.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_shipped_hanoi_override_is_valid_and_states_only_what_the_source_says() -> None:
    overrides = load_overrides(OVERRIDES_DIR)
    assert set(overrides) == {"01"}
    (rule,) = overrides["01"]
    assert (rule.kind, rule.channel, rule.amount, rule.procedure_code) == (
        "local", "online", 0, None)
    # The resolution's number and its dates are not in our source: they stay empty.
    assert rule.legal_basis is None and rule.valid_from is None and rule.valid_to is None
    assert "kỳ họp thứ 12" in (rule.title or "")


def test_province_by_name_and_rules_per_procedure(tmp_path: Path) -> None:
    path = write(tmp_path, """
jurisdiction: Đà Nẵng
fees:
  - id: giam
    procedures: ["1.001612", "2.000720"]
    channel: any
    percent: 50
    valid_from: 2026-01-01
    valid_to: "2026-12-31"
    legal_basis: {number: "01/2026/NQ-HĐND", article: "Điều 2", title: Nghị quyết}
  - id: ngheo
    kind: exemption
    applies_to: council_set
    channel: any
    exempt: {tags: [ho_ngheo], text: Miễn cho hộ nghèo}
""", "48.yaml")
    code, rules = load_file(path)
    assert code == "48"
    assert [(r.procedure_code, r.percent) for r in rules[:2]] == [
        ("1.001612", 50), ("2.000720", 50)]
    assert rules[0].basis() == "Điều 2, 01/2026/NQ-HĐND (Nghị quyết)"
    assert str(rules[0].valid_to) == "2026-12-31"
    assert rules[2].exempt_tags == ("ho_ngheo",) and rules[2].kind == "exemption"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("fees: [", "YAML không hợp lệ (dòng"),
        ("- a\n- b\n", "cần các khóa jurisdiction"),
        ("jurisdiction: Atlantis\nfees:" + GOOD_RULE, "jurisdiction 'Atlantis'"),
        ("jurisdiction: '01'\nfees: []\n", "fees: cần một danh sách"),
        ("jurisdiction: '01'\nrules: []\n", "khóa không dùng được: rules"),
        ("jurisdiction: '01'\nfees:\n  - id: a\n    applies_to: council_set\n"
         "    channel: web\n    amount: 0\n", "channel 'web' không hợp lệ"),
        ("jurisdiction: '01'\nfees:\n  - id: a\n    applies_to: council_set\n"
         "    channel: online\n", "cần amount (đồng) hoặc percent"),
        ("jurisdiction: '01'\nfees:\n  - id: a\n    applies_to: council_set\n"
         "    channel: online\n    amount: -5\n", "amount -5"),
        ("jurisdiction: '01'\nfees:\n  - id: a\n    applies_to: council_set\n"
         "    channel: online\n    amount: 0\n    percent: 50\n", "chỉ ghi một trong"),
        ("jurisdiction: '01'\nfees:\n  - id: a\n    applies_to: council_set\n"
         "    channel: online\n    percent: 150\n", "percent 150"),
        ("jurisdiction: '01'\nfees:\n  - id: a\n    channel: online\n    amount: 0\n",
         "cần đúng một trong applies_to"),
        ("jurisdiction: '01'\nfees:\n  - id: a\n    applies_to: everything\n"
         "    channel: online\n    amount: 0\n", "applies_to 'everything'"),
        ("jurisdiction: '01'\nfees:\n  - id: a\n    procedures: [1.001612]\n"
         "    channel: online\n    amount: 0\n", "procedures cần là danh sách mã"),
        ("jurisdiction: '01'\nfees:\n  - id: a\n    applies_to: council_set\n"
         "    channel: online\n    amount: 0\n    valid_from: 31/12/2026\n",
         "ngày '31/12/2026' không hợp lệ"),
        # An impossible calendar day: PyYAML itself fails on it (ValueError, not YAMLError).
        ("jurisdiction: '01'\nfees:\n  - id: a\n    applies_to: council_set\n"
         "    channel: online\n    amount: 0\n    valid_from: 2026-02-30\n",
         "giá trị không đọc được"),
        ("jurisdiction: '01'\nfees:\n  - id: a\n    applies_to: council_set\n"
         "    channel: online\n    amount: 0\n    valid_from: 2026-12-31\n"
         "    valid_to: 2026-01-01\n", "sau valid_to"),
        ("jurisdiction: '01'\nfees:\n  - id: a\n    applies_to: council_set\n"
         "    channel: online\n    amount: 0\n    ammount: 5\n", "khóa không dùng được: ammount"),
        ("jurisdiction: '01'\nfees:" + GOOD_RULE + GOOD_RULE, "id 'r1' bị trùng"),
        ("jurisdiction: '01'\nfees:\n  - applies_to: council_set\n    channel: online\n"
         "    amount: 0\n", "thiếu id"),
        ("jurisdiction: '01'\nfees:\n  - id: a\n    kind: exemption\n"
         "    applies_to: council_set\n    channel: any\n    exempt: {tags: [giau_co]}\n",
         "nhóm miễn giảm không biết"),
        ("jurisdiction: '01'\nfees:\n  - id: a\n    kind: bonus\n"
         "    applies_to: council_set\n    channel: any\n    amount: 0\n", "kind 'bonus'"),
        ("jurisdiction: '01'\nfees:\n  - id: a\n    applies_to: council_set\n"
         "    channel: online\n    amount: 0\n    legal_basis: {so: 1}\n",
         "legal_basis có khóa không dùng được: so"),
    ],
)
def test_malformed_files_are_refused_with_a_clear_message(tmp_path: Path, text: str,
                                                          message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(OverrideError) as err:
        load_file(path)
    assert message in str(err.value)
    assert path.name in str(err.value)


def test_every_problem_of_a_file_is_reported_at_once(tmp_path: Path) -> None:
    path = write(tmp_path, "jurisdiction: '01'\nfees:\n  - id: a\n    channel: web\n"
                           "    amount: -1\n")
    with pytest.raises(OverrideError) as err:
        load_file(path)
    text = str(err.value)
    assert "channel 'web'" in text and "amount -1" in text and "applies_to" in text


def test_folder_refuses_two_files_for_one_province_and_reports_all_files(
        tmp_path: Path) -> None:
    write(tmp_path, "jurisdiction: '01'\nfees:" + GOOD_RULE, "a.yaml")
    write(tmp_path, "jurisdiction: Hà Nội\nfees:" + GOOD_RULE, "b.yaml")
    write(tmp_path, "jurisdiction: '48'\nfees: nope\n", "c.yaml")
    with pytest.raises(OverrideError) as err:
        load_overrides(tmp_path)
    text = str(err.value)
    assert "b.yaml: tỉnh 01 đã có tệp a.yaml" in text and "c.yaml" in text


def test_missing_folder_means_no_local_rules(tmp_path: Path) -> None:
    assert load_overrides(tmp_path / "none") == {}


def test_live_book_follows_edits_and_keeps_the_last_valid_rules(tmp_path: Path) -> None:
    from bot.fees.service import LiveFeeBook

    path = write(tmp_path, "jurisdiction: '01'\nfees:" + GOOD_RULE)
    live = LiveFeeBook(tmp_path, check_every=0)
    assert [r.amount for r in live.get().overrides["01"]] == [0]

    path.write_text("jurisdiction: '01'\nfees:" + GOOD_RULE.replace("amount: 0", "amount: 7"),
                    encoding="utf-8")
    assert [r.amount for r in live.get().overrides["01"]] == [7]

    path.write_text("jurisdiction: '01'\nfees: [", encoding="utf-8")  # an operator's typo
    assert [r.amount for r in live.get().overrides["01"]] == [7]
    assert live.error and "YAML không hợp lệ" in live.error

    path.unlink()
    assert live.get().overrides == {} and live.error is None

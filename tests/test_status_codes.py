"""Receipt codes: many shapes found in free text, normalized, masked; the patterns file."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from bot.config import ROOT
from bot.status.codes import (
    CodeMatcher,
    CodePatternError,
    load_patterns,
    mask_code,
    matcher_for,
    normalize,
)
from bot.text import mask_pii

SHIPPED = ROOT / "data" / "status" / "receipt_codes.yaml"


@pytest.fixture(scope="module")
def matcher() -> CodeMatcher:
    return CodeMatcher(load_patterns(SHIPPED))


@pytest.mark.parametrize(("text", "code"), [
    ("hồ sơ 000.00.20.H26-250312-0045 đến đâu rồi", "000.00.20.H26-250312-0045"),
    ("000.00.20.H26-250312-0045", "000.00.20.H26-250312-0045"),
    ("ma ho so 000.00.20.h26-250312-0045 co ket qua chua", "000.00.20.H26-250312-0045"),
    ("mã 000.00.20.H26 - 250312 - 0045 ạ", "000.00.20.H26-250312-0045"),
    ("mã 000.00.20.H26 – 250312 – 0045", "000.00.20.H26-250312-0045"),  # en dashes
    ("mã 000.00.20.H26\u2011250312\u20110045", "000.00.20.H26-250312-0045"),  # no-break
    ("mã 000.00.20.H26 250312 0045", "000.00.20.H26-250312-0045"),  # spaces for dashes
    ("mã 000. 00. 20. H26-250312-0045", "000.00.20.H26-250312-0045"),
    ("H29.97-231102-0015", "H29.97-231102-0015"),  # short agency code
    ("hs G22.15-250301-0007 của mik xog chưa", "G22.15-250301-0007"),
    ("(K01.03-250405-0003)", "K01.03-250405-0003"),
    ("mã:000.00.24.H37-231005-0029.", "000.00.24.H37-231005-0029"),
    ("mã \u201cH48.30-240728-0009\u201d", "H48.30-240728-0009"),
    ("H26-250312-0045", "H26-250312-0045"),  # agency without dots
    ("ma h01.05-240419-0027?", "H01.05-240419-0027"),
    ("số thứ tự dài 000.00.20.H26-250312-001234", "000.00.20.H26-250312-001234"),
    ("số thứ tự ngắn 000.00.20.H26-250312-045", "000.00.20.H26-250312-045"),
    ("xem giúp\n000.00.31.H26-250316-0214\ncảm ơn", "000.00.31.H26-250316-0214"),
])
def test_codes_are_found_in_many_shapes_and_normalized(matcher: CodeMatcher, text: str,
                                                       code: str) -> None:
    found = matcher.find(text)
    assert [c for c, _, _ in found] == [code]
    _, start, end = found[0]
    assert normalize(text[start:end]) == code
    assert matcher.is_valid(code)


@pytest.mark.parametrize("text", [
    "số điện thoại 0912345678",
    "căn cước 001203004567",
    "thủ tục 1.001193",
    "ngày 12-03-2025",
    "lệ phí 1.500.000 đồng",
    "hạn 2025-03-12",
    "000.00.20-2503",
    "000.00.20.H26-2503",
    "phiên bản 3.6.21",
    "000.00.20.H26-250312-0045-99",  # a longer code is not this code
    "abc000.00.20.H26-250312-0045",  # glued to a word
])
def test_things_that_are_not_codes_are_not_found(matcher: CodeMatcher, text: str) -> None:
    assert matcher.find(text) == []


def test_several_codes_in_one_message_keep_their_order(matcher: CodeMatcher) -> None:
    text = "hai hồ sơ H29.97-231102-0015 và g22.15 - 250301 - 0007"
    assert [c for c, _, _ in matcher.find(text)] == ["H29.97-231102-0015", "G22.15-250301-0007"]


@pytest.mark.parametrize(("text", "attempt"), [
    ("000.00.20-2503", "000.00.20-2503"),
    ("mã là H26-0045", "H26-0045"),
    ("0912345678", "0912345678"),
    ("tôi không nhớ mã", None),
    ("000.00.20.H26-250312-0045", None),  # a valid code is not an attempt
    ("12-3", None),  # too few digits to be a code
])
def test_code_like_attempts_are_told_apart_from_plain_text(matcher: CodeMatcher, text: str,
                                                           attempt: str | None) -> None:
    assert matcher.looks_like_attempt(text) == attempt


def test_codes_are_masked_in_logs_except_the_last_four_characters() -> None:
    assert mask_code("000.00.20.h26-250312-0045") == "***0045"
    logged = mask_pii("hồ sơ 000.00.20.H26 - 250312 - 0045 và H29.97-231102-0015, sđt "
                      "0912345678")
    assert "250312" not in logged and "231102" not in logged and "H26" not in logged
    assert "***0045" in logged and "***0015" in logged
    assert "0912345678" not in logged


def test_a_province_adds_its_own_code_shape(tmp_path: Path) -> None:
    path = tmp_path / "codes.yaml"
    path.write_text(
        "receipt_code_patterns:\n"
        "  - name: mot_cua\n"
        "    pattern: '(?:\\d{1,4}\\.)*[A-Z]\\d{1,3}(?:\\.[0-9A-Z]{1,4})*-\\d{6}-\\d{3,6}'\n"
        "    example: 000.00.20.H26-250312-0045\n"
        "  - name: hcm\n"
        "    pattern: 'HCM-[A-Z]{2,4}-\\d{8}'\n"
        "    example: HCM-TP-20250312\n", encoding="utf-8")
    m = CodeMatcher(load_patterns(path))
    assert m.first("tra cứu hcm - tp - 20250312 giúp tôi") == "HCM-TP-20250312"
    assert m.first("H29.97-231102-0015") == "H29.97-231102-0015"
    assert m.example == "000.00.20.H26-250312-0045"


@pytest.mark.parametrize(("text", "message"), [
    ("patterns: []\n", "receipt_code_patterns"),
    ("receipt_code_patterns: []\n", "ít nhất một mẫu"),
    ("receipt_code_patterns:\n  - name: a\n    pattern: '[A-'\n    example: A-1\n",
     "biểu thức chính quy sai"),
    ("receipt_code_patterns:\n  - name: a\n    pattern: 'X-\\d{4}'\n    example: Y-1234\n",
     "không khớp với chính mẫu này"),
    ("receipt_code_patterns:\n  - name: a\n    pattern: 'X-\\d{4}'\n", "thiếu example"),
    ("receipt_code_patterns:\n  - name: a\n    pattern: 'X-\\d{4}'\n    example: X-1234\n"
     "    exmaple: X-1\n", "trường không biết: exmaple"),
    ("receipt_code_patterns: [\n", "YAML không hợp lệ"),
])
def test_a_bad_patterns_file_is_refused_with_a_clear_message(tmp_path: Path, text: str,
                                                             message: str) -> None:
    path = tmp_path / "codes.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(CodePatternError) as err:
        load_patterns(path)
    assert message in str(err.value)


def test_edits_are_followed_and_a_broken_edit_keeps_the_last_valid_patterns(
        tmp_path: Path) -> None:
    path = tmp_path / "codes.yaml"
    path.write_text("receipt_code_patterns:\n  - name: a\n    pattern: 'AA-\\d{4}'\n"
                    "    example: AA-1234\n", encoding="utf-8")
    assert matcher_for(path).first("mã aa-1234") == "AA-1234"
    path.write_text("receipt_code_patterns:\n  - name: b\n    pattern: 'BB-\\d{4}'\n"
                    "    example: BB-1234\n", encoding="utf-8")
    os.utime(path, (time.time() + 5, time.time() + 5))
    assert matcher_for(path).first("mã bb-1234") == "BB-1234"
    path.write_text("receipt_code_patterns: [", encoding="utf-8")
    os.utime(path, (time.time() + 10, time.time() + 10))
    assert matcher_for(path).first("mã bb-1234") == "BB-1234"
    with pytest.raises(CodePatternError):
        matcher_for(tmp_path / "never-valid.yaml")


def test_nlu_component_owns_the_receipt_code_entity() -> None:
    """DIET's fragment of a code and an entity overlapping it give way to the canonical code."""
    from rasa.shared.nlu.training_data.message import Message

    from bot.nlu.receipt_codes import ReceiptCodeExtractor

    text = "hồ sơ 000.00.20.h26 - 250312 - 0045 của tôi"
    msg = Message(data={"text": text, "entities": [
        {"entity": "receipt_code", "start": 6, "end": 19, "value": "000.00.20.h26",
         "extractor": "DIETClassifier"},
        {"entity": "procedure", "start": 20, "end": 26, "value": "250312",
         "extractor": "DIETClassifier"},
        {"entity": "procedure", "start": 0, "end": 5, "value": "hồ sơ",
         "extractor": "DIETClassifier"},
    ]})
    ReceiptCodeExtractor({"patterns_file": str(SHIPPED)}).process([msg])
    entities = msg.get("entities")
    assert [(e["entity"], e["value"]) for e in entities] == [
        ("procedure", "hồ sơ"), ("receipt_code", "000.00.20.H26-250312-0045")]
    assert entities[1]["extractor"] == "ReceiptCodeExtractor"


def test_intent_regex_feature_matches_the_shipped_example() -> None:
    """data/nlu/regex.yml (a feature for DIET) must keep matching the codes we accept."""
    import re

    import yaml

    data = yaml.safe_load((ROOT / "data" / "nlu" / "regex.yml").read_text(encoding="utf-8"))
    pattern = data["nlu"][0]["examples"].strip().lstrip("- ").strip()
    for example in ("000.00.20.H26-250312-0045", "h29.97 - 231102 - 0015", "H26-250312-0045"):
        assert re.search(pattern, example, re.IGNORECASE), example

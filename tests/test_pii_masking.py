"""Personal data masking (`bot.text.mask_pii`, issue 18 item 9), shape by shape.

`mask_pii` is the one detector of personal data: the logs, the status notes and the NLU
correction gate (bot/console/corrections.py) all use it. Before this table, a 9-digit CMND,
"+84 912 345 678", "(+84) …", dotted and dashed phone numbers and e-mail addresses passed
unmasked, and "001 203 012 345" kept 8 of its 12 digits. The negative table holds what is not
personal data and must stay readable: dates, amounts, procedure codes, hotlines, Zalo ids.
"""

from __future__ import annotations

import re

import pytest

from bot.console.corrections import CorrectionError, prepare
from bot.text import mask_pii

# (as typed, the mask expected in its place)
POSITIVE = [
    # citizen ID (CCCD, 12 digits)
    ("001203004567", "001******567"),
    ("001 203 012 345", "001******345"),
    ("001.203.012.345", "001******345"),
    ("001-203-012-345", "001******345"),
    ("0012 0301 2345", "001******345"),
    # old ID card (CMND, 9 digits)
    ("025123456", "02*****56"),
    ("025 123 456", "02*****56"),
    ("025.123.456", "02*****56"),
    ("186 123 456", "18*****56"),
    # mobile numbers with every prefix
    ("0912345678", "091*****78"),
    ("0912 345 678", "091*****78"),
    ("0912.345.678", "091*****78"),
    ("0912-345-678", "091*****78"),
    ("0912 – 345 – 678", "091*****78"),
    ("091 234 5678", "091*****78"),
    ("0912 34 56 78", "091*****78"),
    ("+84912345678", "+8491*****78"),
    ("+84 912 345 678", "+8491*****78"),
    ("+84-912-345-678", "+8491*****78"),
    ("+84.912.345.678", "+8491*****78"),
    ("(+84) 912 345 678", "+8491*****78"),
    ("(+84)912345678", "+8491*****78"),
    ("(84) 912 345 678", "+8491*****78"),
    ("84912345678", "8491*****78"),
    ("84 912 345 678", "8491*****78"),
    # landlines and a foreign number
    ("024 3825 1234", "024*****34"),
    ("(024) 3825 1234", "024*****34"),
    ("+1 202 555 0143", "+1202*****43"),
    # e-mail addresses
    ("nguyenvana@gmail.com", "n***@gmail.com"),
    ("nguyen.van.a+dvc@ubnd.hanoi.gov.vn", "n***@ubnd.hanoi.gov.vn"),
    ("tran_thi_b0912345678@yahoo.com.vn", "t***@yahoo.com.vn"),
]

NEGATIVE = [
    "thủ tục 1.001234 và 1.001235",
    "mã thủ tục 2.002345.000.00.00.H26",
    "ngày 01/07/2025",
    "ngày 01.07.2025 hoặc 01-07-2025",
    "giờ làm việc 08:00-17:00, thứ 2 - thứ 6",
    "lệ phí 1.000.000 đồng",
    "lệ phí 150.000.000 đồng",
    "phí 150 000 000đ",
    "2.500.000 VNĐ",
    "15 ngày làm việc kể từ năm 2025",
    "gọi tổng đài 18001096 hoặc 1900 1234",
    "Zalo 6142494823000000001",
    "bước 1 2 3 4 5 6 7 8 9",
    "https://dichvucong.gov.vn/p/home/dvc-tthc-thu-tuc-hanh-chinh.html?ma=1.001234",
    "gửi @admin nhé",
    "",
]


def _digits(text: str) -> str:
    return re.sub(r"\D", "", text)


@pytest.mark.parametrize(("typed", "mask"), POSITIVE)
def test_each_shape_is_masked_alone_and_inside_a_sentence(typed: str, mask: str) -> None:
    assert mask_pii(typed) == mask
    sentence = f"Số của tôi là {typed}, cán bộ gọi lại giúp"
    masked = mask_pii(sentence)
    assert masked == f"Số của tôi là {mask}, cán bộ gọi lại giúp"
    if "@" not in typed:
        # Never more than 6 of the digits survive, whatever separators were typed.
        assert _digits(typed) not in _digits(masked)
        assert len(_digits(mask)) <= 6


@pytest.mark.parametrize("text", NEGATIVE)
def test_what_is_not_personal_data_is_left_alone(text: str) -> None:
    assert mask_pii(text) == text


def test_several_numbers_in_one_message_are_each_masked() -> None:
    text = ("CCCD 001203004567 0912345678,0987654321 hoặc +84 912 345 678; "
            "cmnd 025 123 456, mail a.b@c.vn, phí 1.000.000 đồng, thủ tục 1.001234")
    assert mask_pii(text) == (
        "CCCD 001******567 091*****78,098*****21 hoặc +8491*****78; "
        "cmnd 02*****56, mail a***@c.vn, phí 1.000.000 đồng, thủ tục 1.001234")


def test_receipt_codes_keep_their_own_mask() -> None:
    masked = mask_pii("hồ sơ 000.00.20.H26-250312-0045, sđt 0912.345.678")
    assert masked == "hồ sơ ***0045, sđt 091*****78"


@pytest.mark.parametrize(("typed", "mask"), POSITIVE)
def test_the_correction_gate_refuses_every_shape(typed: str, mask: str) -> None:
    """The console's NLU corrections go into git: the same detector keeps them out."""
    with pytest.raises(CorrectionError, match="không đưa vào dữ liệu huấn luyện"):
        prepare(f"tôi cần làm lại giấy tờ, liên hệ {typed}", "ask_procedure")


@pytest.mark.parametrize("text", [t for t in NEGATIVE if t and not t.startswith("http")])
def test_the_correction_gate_accepts_dates_amounts_and_procedure_codes(text: str) -> None:
    line, plain, _ = prepare(text, "ask_fee")
    assert plain == " ".join(text.split())

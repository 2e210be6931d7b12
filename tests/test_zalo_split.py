"""Splitting long replies for Zalo's text limit, and the numbered-list fallback for buttons."""

from __future__ import annotations

import re

import pytest

from bot.channels.zalo.split import (
    CHOOSE_BY_NUMBER,
    TEXT_LIMIT,
    buttons_as_text,
    choice_from_number,
    split_text,
)


def squash(text: str) -> str:
    """All non-whitespace characters, in order."""
    return re.sub(r"\s+", "", text)


def check_invariants(text: str, parts: list[str], limit: int) -> None:
    assert all(parts), "no empty parts"
    assert all(p == p.strip() for p in parts), "parts are stripped"
    assert all(len(p) <= limit for p in parts), [len(p) for p in parts]
    assert squash("".join(parts)) == squash(text), "content kept, in order"


SENTENCE_VI = "Công dân nộp hồ sơ tại Bộ phận Một cửa của Ủy ban nhân dân cấp xã. "
PARAGRAPH_VI = (
    "Thành phần hồ sơ gồm: tờ khai theo mẫu, bản sao giấy khai sinh, "
    "giấy tờ chứng minh nơi cư trú. Thời hạn giải quyết là 05 ngày làm việc. "
    "Lệ phí: miễn phí đối với trường hợp đăng ký đúng hạn!"
)


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("", 20, []),
        ("   \n\n  ", 20, []),
        ("Xin chào", 20, ["Xin chào"]),
        ("  Xin chào  ", 20, ["Xin chào"]),
        # exactly the limit is one part
        ("a" * 20, 20, ["a" * 20]),
        # paragraphs first: both fit together? no (25 > 20), so one per part
        ("Đoạn một dài.\n\nĐoạn hai.", 20, ["Đoạn một dài.", "Đoạn hai."]),
        # paragraphs that fit together stay together
        (
            "Một.\n\nHai.\n\nBa bốn năm sáu bảy tám.",
            12,
            ["Một.\n\nHai.", "Ba bốn năm", "sáu bảy tám."],
        ),
        # sentence boundaries: ". ", "? ", "! "
        ("Bạn ở đâu? Tôi ở Huế. Hay quá!", 12, ["Bạn ở đâu?", "Tôi ở Huế.", "Hay quá!"]),
        # ellipsis, with and without a following space
        ("Chờ chút… Xong rồi…Tiếp nhé", 10, ["Chờ chút…", "Xong rồi…", "Tiếp nhé"]),
        # a newline is a sentence boundary
        ("Dòng một\nDòng hai", 10, ["Dòng một", "Dòng hai"]),
        # words when a sentence is too long; never inside a word
        ("thủ tục hành chính công", 10, ["thủ tục", "hành chính", "công"]),
        # a single word longer than the limit is the only thing ever cut
        ("x" * 25, 10, ["x" * 10, "x" * 10, "x" * 5]),
        ("ngắn " + "y" * 12 + " cuối", 10, ["ngắn", "y" * 10, "yy cuối"]),
        # a decimal point is not a sentence end
        ("Phí 1.500.000 đồng. Nộp ngay.", 20, ["Phí 1.500.000 đồng.", "Nộp ngay."]),
    ],
)
def test_split_table(text: str, limit: int, expected: list[str]) -> None:
    parts = split_text(text, limit)
    assert parts == expected
    check_invariants(text, parts, limit)


def test_default_limit_is_zalo_text_limit() -> None:
    assert TEXT_LIMIT == 2000
    assert split_text("a" * 2000) == ["a" * 2000]
    assert len(split_text("a " * 1001)) == 2


def test_five_thousand_character_vietnamese_answer() -> None:
    paragraphs = []
    while sum(len(p) + 2 for p in paragraphs) < 5000:
        paragraphs.append(SENTENCE_VI * 3 + PARAGRAPH_VI)
    text = "\n\n".join(paragraphs)[:5000].rstrip()
    assert len(text) >= 4990

    parts = split_text(text)

    check_invariants(text, parts, 2000)
    assert len(parts) == 3
    # cut at paragraph boundaries: every part but the last ends a paragraph in the source
    for part in parts[:-1]:
        assert part + "\n\n" in text


def test_one_huge_paragraph_cuts_at_sentences() -> None:
    text = SENTENCE_VI * 80  # ~5,500 characters, no blank line
    parts = split_text(text)
    check_invariants(text, parts, 2000)
    assert all(p.endswith(".") for p in parts)
    assert len(parts) == 3


def test_one_huge_sentence_cuts_at_words() -> None:
    words = "hồ sơ đăng ký khai sinh cho trẻ em " * 200  # no sentence end at all
    parts = split_text(words)
    check_invariants(words, parts, 2000)
    source_words = words.split()
    # no word was cut: every part is a run of whole source words
    rebuilt = [w for p in parts for w in p.split()]
    assert rebuilt == source_words


def test_url_longer_than_limit_is_cut_but_kept() -> None:
    url = (
        "https://dichvucong.gov.vn/p/home/dvc-tthc-thu-tuc-hanh-chinh-chi-tiet.html?ma=" + "9" * 60
    )
    text = f"Xem tại {url} nhé."
    parts = split_text(text, 50)
    check_invariants(text, parts, 50)
    assert parts[0] == "Xem tại"


def test_rejects_non_positive_limit() -> None:
    with pytest.raises(ValueError):
        split_text("abc", 0)


BUTTONS = [
    {"title": "Đăng ký khai sinh", "payload": '/chon_thu_tuc{"ma": "1.001"}'},
    {"title": "Đăng ký kết hôn", "payload": "/ket_hon"},
    {"title": "Khác"},
]


def test_buttons_as_text() -> None:
    assert buttons_as_text(BUTTONS) == (
        "1. Đăng ký khai sinh\n2. Đăng ký kết hôn\n3. Khác\n" + CHOOSE_BY_NUMBER
    )
    assert CHOOSE_BY_NUMBER == "Bạn nhắn số thứ tự để chọn nhé."
    assert buttons_as_text([]) == ""


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("1", '/chon_thu_tuc{"ma": "1.001"}'),
        ("2", "/ket_hon"),
        (" 2. ", "/ket_hon"),
        ("2)", "/ket_hon"),
        ("số 2", "/ket_hon"),
        ("Số 2", "/ket_hon"),
        ("so 2", None),  # without the diacritic it is not the phrase we asked for
        ("#2", "/ket_hon"),
        ("3", "Khác"),  # no payload: the title, as a tapped button would send
        ("0", None),
        ("4", None),
        ("-1", None),
        ("2 hồ sơ", None),
        ("hai", None),
        ("", None),
        ("12", None),
    ],
)
def test_choice_from_number(reply: str, expected: str | None) -> None:
    assert choice_from_number(reply, BUTTONS) == expected


def test_choice_from_number_without_buttons() -> None:
    assert choice_from_number("1", []) is None

"""Exemption situations: tags read from legal texts and from citizens' messages."""

from __future__ import annotations

import pytest

from bot.fees.situations import SITUATIONS, situations_in_text
from bot.text import fold, strip_accents


def test_the_seven_tags_and_their_labels() -> None:
    assert list(SITUATIONS) == ["ho_ngheo", "ho_can_ngheo", "nguoi_co_cong", "khuyet_tat",
                                "tre_em", "nguoi_cao_tuoi", "dan_toc_thieu_so"]
    assert SITUATIONS["ho_ngheo"] == "người thuộc hộ nghèo"
    assert SITUATIONS["ho_can_ngheo"] == "người thuộc hộ cận nghèo"
    # Labels are Vietnamese with marks: they are shown to citizens.
    assert all(label and strip_accents(label) != label for label in SITUATIONS.values())


CASES = [
    # legal wording
    ("Miễn lệ phí cho người thuộc gia đình có công với cách mạng; người thuộc hộ nghèo; "
     "người khuyết tật", ["nguoi_co_cong", "ho_ngheo", "khuyet_tat"]),
    ("Không thu lệ phí đối với: trẻ em dưới 6 tuổi; người cao tuổi; đồng bào dân tộc "
     "thiểu số ở xã đặc biệt khó khăn", ["tre_em", "nguoi_cao_tuoi", "dan_toc_thieu_so"]),
    ("Miễn lệ phí đối với hộ nghèo, hộ cận nghèo", ["ho_ngheo", "ho_can_ngheo"]),
    ("Người thuộc hộ cận nghèo được giảm 50%", ["ho_can_ngheo"]),
    ("thương binh, bệnh binh, thân nhân liệt sĩ", ["nguoi_co_cong"]),
    ("Bà mẹ Việt Nam anh hùng", ["nguoi_co_cong"]),
    ("người hoạt động kháng chiến bị nhiễm chất độc hóa học", ["nguoi_co_cong"]),
    ("người dân tộc thiểu số, người ở vùng có điều kiện kinh tế - xã hội đặc biệt khó khăn",
     ["dan_toc_thieu_so"]),
    ("cư trú tại vùng có điều kiện kinh tế - xã hội đặc biệt khó khăn", ["dan_toc_thieu_so"]),
    ("người từ đủ 60 tuổi trở lên", ["nguoi_cao_tuoi"]),
    ("người dưới 16 tuổi", ["tre_em"]),
    ("trẻ dưới 36 tháng tuổi", ["tre_em"]),
    ("người tàn tật", ["khuyet_tat"]),
    # citizens' wording
    ("nha em thuoc ho ngheo", ["ho_ngheo"]),
    ("nhà em thuộc hộ cận nghèo", ["ho_can_ngheo"]),
    ("tôi là thương binh", ["nguoi_co_cong"]),
    ("toi la thuong binh hang 2", ["nguoi_co_cong"]),
    ("bố tôi là liệt sỹ", ["nguoi_co_cong"]),
    ("gia đình tôi là gia đình chính sách", ["nguoi_co_cong"]),
    ("con tôi dưới 6 tuổi", ["tre_em"]),
    ("con tôi 5 tuổi", ["tre_em"]),
    ("bé nhà em 3 tuổi", ["tre_em"]),
    ("bà tôi 75 tuổi", ["nguoi_cao_tuoi"]),
    ("mẹ em lớn tuổi rồi", ["nguoi_cao_tuoi"]),
    ("em là người dân tộc, bị khuyết tật", ["dan_toc_thieu_so", "khuyet_tat"]),
    ("nhà nghèo, mẹ là người khuyết tật, bố là thương binh",
     ["ho_ngheo", "khuyet_tat", "nguoi_co_cong"]),
    ("khuyết tật, khuyết tật và khuyết tật", ["khuyet_tat"]),  # each tag once
]


@pytest.mark.parametrize(("text", "tags"), CASES)
def test_situations_in_text(text: str, tags: list[str]) -> None:
    assert situations_in_text(text) == tags


@pytest.mark.parametrize(("text", "tags"), CASES)
def test_marks_are_optional(text: str, tags: list[str]) -> None:
    assert situations_in_text(fold(text)) == tags
    assert situations_in_text(text.upper()) == tags


@pytest.mark.parametrize("text", [
    "",
    "lệ phí cấp căn cước là bao nhiêu",
    "tôi là người có công việc ổn định",    # "công việc", not merit
    "người có công ăn việc làm",
    "người từ đủ 14 tuổi trở lên",          # an age threshold, not a child
    "tôi 30 tuổi",
    "người dưới 60 tuổi",
    "người chưa đủ 18 tuổi",                 # a minor, but not a child under the law
    "hoàn cảnh đặc biệt khó khăn",          # a household's hardship, not an area's
    "ở xa, hoàn cảnh đặc biệt khó khăn",
    "người gia hạn giấy phép lái xe",
    "người trong gia đình nộp hồ sơ",
    "người dân tộc Kinh",
    "trẻ hóa đội ngũ",
])
def test_no_situation(text: str) -> None:
    assert situations_in_text(text) == []


def test_every_tag_can_be_found() -> None:
    found = {tag for text, _ in CASES for tag in situations_in_text(text)}
    assert found == set(SITUATIONS)

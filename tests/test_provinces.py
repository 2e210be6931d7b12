"""Provinces: the 34-unit data file, lookups by code/name/alias/former name, free text."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot.fees.provinces import (
    Province,
    ProvinceError,
    find_province,
    load_provinces,
    province_in_text,
)
from bot.text import fold

# Quyết định 19/2025/QĐ-TTg, as listed in data/provinces.yaml.
CODES = {
    "01": "Hà Nội", "04": "Cao Bằng", "08": "Tuyên Quang", "11": "Điện Biên",
    "12": "Lai Châu", "14": "Sơn La", "15": "Lào Cai", "19": "Thái Nguyên",
    "20": "Lạng Sơn", "22": "Quảng Ninh", "24": "Bắc Ninh", "25": "Phú Thọ",
    "31": "Hải Phòng", "33": "Hưng Yên", "37": "Ninh Bình", "38": "Thanh Hóa",
    "40": "Nghệ An", "42": "Hà Tĩnh", "44": "Quảng Trị", "46": "Huế", "48": "Đà Nẵng",
    "51": "Quảng Ngãi", "52": "Gia Lai", "56": "Khánh Hòa", "66": "Đắk Lắk",
    "68": "Lâm Đồng", "75": "Đồng Nai", "79": "Hồ Chí Minh", "80": "Tây Ninh",
    "82": "Đồng Tháp", "86": "Vĩnh Long", "91": "An Giang", "92": "Cần Thơ", "96": "Cà Mau",
}
CITIES = {"01", "31", "46", "48", "79", "92"}


# --- the data file -----------------------------------------------------------------------

def test_file_lists_the_34_units_with_unique_two_digit_codes() -> None:
    provinces = load_provinces()
    assert len(provinces) == 34
    assert all(re.fullmatch(r"\d{2}", code) for code in provinces)
    assert all(p.code == code for code, p in provinces.items())
    assert {code: p.short for code, p in provinces.items()} == CODES
    assert len({p.name for p in provinces.values()}) == 34


def test_official_names_carry_the_unit_type() -> None:
    for code, p in load_provinces().items():
        kind = "Thành phố" if code in CITIES else "Tỉnh"
        assert p.name == f"{kind} {p.short}", p


def test_23_merged_units_absorb_52_provinces() -> None:
    provinces = load_provinces().values()
    merged = [p for p in provinces if p.former]
    assert len(merged) == 23
    # 63 provinces before: the 34 that keep their name plus the 29 names absorbed.
    assert sum(len(p.former) for p in merged) == 63 - 34


def test_load_returns_a_copy_the_caller_may_change() -> None:
    first = load_provinces()
    first.pop("01")
    assert "01" in load_provinces()
    assert find_province("01") is not None


@pytest.mark.parametrize("field", ["name", "short", "aliases", "former"])
def test_every_listed_name_finds_its_own_province(field: str) -> None:
    for p in load_provinces().values():
        values = getattr(p, field)
        for value in (values if isinstance(values, tuple) else (values,)):
            assert find_province(value) == p, value
            assert find_province(fold(value).upper()) == p, value


# --- find_province -----------------------------------------------------------------------

@pytest.mark.parametrize(("value", "code"), [
    ("01", "01"), ("1", "01"), (" 79 ", "79"), ("8", "08"), ("96", "96"),
    ("Thành phố Hà Nội", "01"), ("Hà Nội", "01"), ("ha noi", "01"), ("HA NOI", "01"),
    ("  thành   phố  hà   nội ", "01"), ("tp Hà Nội", "01"), ("HN", "01"), ("thủ đô", "01"),
    ("TP. Hồ Chí Minh", "79"), ("tp.hcm", "79"), ("TPHCM", "79"), ("hcm", "79"),
    ("Sài Gòn", "79"), ("sai gon", "79"), ("SG", "79"), ("thành phố hcm", "79"),
    ("Đà Nẵng", "48"), ("da nang", "48"), ("tp đà nẵng", "48"),
    ("Tỉnh Thanh Hoá", "38"), ("thanh hoa", "38"),  # old tone placement
    ("Huế", "46"), ("Hue", "46"), ("Thừa Thiên Huế", "46"), ("thua thien - hue", "46"),
    ("Đắk Lắk", "66"), ("dak lak", "66"), ("daklak", "66"), ("Đăk Lăk", "66"),
    # former provinces, merged on 1 July 2025
    ("Bình Dương", "79"), ("tỉnh Bình Dương cũ", "79"), ("Bà Rịa - Vũng Tàu", "79"),
    ("ba ria vung tau", "79"), ("Vũng Tàu", "79"), ("Hải Dương", "31"), ("Hà Nam", "37"),
    ("nam dinh", "37"), ("Hà Giang", "08"), ("Yên Bái", "15"), ("Bắc Kạn", "19"),
    ("Bắc Cạn", "19"), ("Bắc Giang", "24"), ("Vĩnh Phúc", "25"), ("Hòa Bình", "25"),
    ("Hoà Bình", "25"), ("Thái Bình", "33"), ("Quảng Bình", "44"), ("Quảng Nam", "48"),
    ("Kon Tum", "51"), ("Bình Định", "52"), ("Ninh Thuận", "56"), ("Phú Yên", "66"),
    ("Đắk Nông", "68"), ("Bình Thuận", "68"), ("Bình Phước", "75"), ("Long An", "80"),
    ("Tiền Giang", "82"), ("Bến Tre", "86"), ("Trà Vinh", "86"), ("Kiên Giang", "91"),
    ("Sóc Trăng", "92"), ("Hậu Giang", "92"), ("Bạc Liêu", "96"),
])
def test_find_province(value: str, code: str) -> None:
    found = find_province(value)
    assert found is not None, value
    assert found.code == code


@pytest.mark.parametrize("value", [
    "", "   ", "00", "02", "99", "100", "-1", "abc", "Việt Nam", "tp", "tỉnh", "thành phố",
    "Bình", "Hà", "Hà Nội dung", "tôi ở Hà Nội",  # a sentence: see province_in_text
    "Huệ",       # a given name, not Huế: the marks typed disagree
    "Cần Thợ",   # "need a worker", not Cần Thơ
    "hnx", "s g",
])
def test_find_province_none(value: str) -> None:
    assert find_province(value) is None


# --- province_in_text --------------------------------------------------------------------

@pytest.mark.parametrize(("text", "code"), [
    ("tôi ở Hà Nội", "01"),
    ("minh o tp hcm", "79"),
    ("nhà em ở Bình Dương cũ", "79"),
    ("ở hn thì lệ phí bao nhiêu", "01"),
    ("Ở HN thì lệ phí bao nhiêu?", "01"),
    ("sg thu phí cấp căn cước bao nhiêu", "79"),
    ("mình ở tp.hcm nha", "79"),
    ("em o ha noi", "01"),
    ("tôi sống ở Huế", "46"),
    ("quê tôi ở thành phố Huế", "46"),
    ("lệ phí ở Bà Rịa - Vũng Tàu thế nào", "79"),
    ("nhà em ở Đắk Lắk, làm hộ chiếu hết bao nhiêu", "66"),
    ("tôi tên Huệ, ở Đà Nẵng", "48"),          # "Huệ" is not Huế
    ("từ Hải Phòng chuyển lên Hà Nội", "31"),  # the first one named
    ("Hà Nội hay Hải Phòng rẻ hơn", "01"),
    ("xã Hòa Bình, tỉnh Bình Dương", "79"),    # a commune named like a province
    ("số 5 phố Huế, Hà Nội", "01"),            # a street named like a province
    ("tôi ở Thái Bình Dương Hà Nội", "01"),    # the Pacific is skipped, not Thái Bình
    ("Tôi ở Thanh Hoá", "38"),
])
def test_province_in_text(text: str, code: str) -> None:
    found = province_in_text(text)
    assert found is not None, text
    assert found.code == code


@pytest.mark.parametrize("text", [
    "",
    "lệ phí cấp căn cước bao nhiêu",
    "nhà nội dung hồ sơ",           # "nhà nội" is not "hà nội": whole words only
    "nha noi dung ho so",
    "kiểm tra nội dung",
    "hnx là gì",                    # short aliases only as whole words
    "sách sgk lớp 1",
    "mình ở phòng 01",              # codes are not read from messages
    "chị Huệ hỏi lệ phí",
    "cần thợ sửa nhà",
    "phố Huế có xa không",
    "biển Thái Bình Dương",
    "tham gia lai khoa hoc",
    "học tư tưởng Hồ Chí Minh",
])
def test_province_in_text_none(text: str) -> None:
    assert province_in_text(text) is None


def test_province_in_text_returns_the_data_object() -> None:
    found = province_in_text("tôi ở Sài Gòn")
    assert isinstance(found, Province)
    assert found == load_provinces()["79"]
    assert "Bình Dương" in found.former


# --- malformed files ---------------------------------------------------------------------

GOOD = """\
provinces:
  - code: "01"
    name: Thành phố Hà Nội
    short: Hà Nội
    aliases: [hn]
    former: []
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "provinces.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_valid_file_loads(tmp_path: Path) -> None:
    provinces = load_provinces(_write(tmp_path, GOOD))
    assert provinces == {"01": Province("01", "Thành phố Hà Nội", "Hà Nội", ("hn",), ())}


@pytest.mark.parametrize(("text", "expected"), [
    ("provinces: [\n", ["YAML không hợp lệ"]),
    ("- code: '01'\n", ["cần khóa provinces"]),
    ("provinces: []\n", ["cần khóa provinces"]),
    ("provinces:\n  - just a string\n", ["mục 1", "cần các khóa"]),
    (GOOD.replace('"01"', "01"), ["mục 1 (Hà Nội)", "ngoặc kép"]),
    (GOOD.replace('"01"', '"1"'), ["mục 1 (Hà Nội)", "2 chữ số"]),
    (GOOD.replace('"01"', '"HN"'), ["mục 1 (Hà Nội)", "2 chữ số"]),
    (GOOD.replace("    short: Hà Nội\n", ""), ["mục 1 (01)", "short"]),
    (GOOD.replace("name: Thành phố Hà Nội", "name: ''"), ["mục 1 (Hà Nội)", "name"]),
    (GOOD.replace("aliases: [hn]", "aliases: hn"), ["mục 1 (Hà Nội)", "aliases"]),
    (GOOD.replace("former: []", "formers: []"), ["mục 1 (Hà Nội)", "formers"]),
    (GOOD + GOOD.split("\n", 1)[1].replace("Hà Nội", "Hải Phòng").replace("[hn]", "[]"),
     ["mục 2 (Hải Phòng)", "mã 01 đã dùng cho Hà Nội"]),
    (GOOD + '  - {code: "31", name: Thành phố Hải Phòng, short: Hải Phòng, aliases: [],'
            " former: [Ha Noi]}\n",
     ["mục 2 (Hải Phòng)", "trùng với tên của Hà Nội (01)"]),
])
def test_malformed_file_raises_a_useful_error(tmp_path: Path, text: str,
                                              expected: list[str]) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ProvinceError) as err:
        load_provinces(path)
    message = str(err.value)
    assert str(path) in message
    for part in expected:
        assert part in message, message


def test_every_bad_entry_is_reported_at_once(tmp_path: Path) -> None:
    text = GOOD.replace('"01"', "01") + '  - {code: "31", name: "", short: Hải Phòng}\n'
    with pytest.raises(ProvinceError) as err:
        load_provinces(_write(tmp_path, text))
    message = str(err.value)
    assert "mục 1 (Hà Nội)" in message and "mục 2 (Hải Phòng)" in message


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ProvinceError, match="không có tệp này"):
        load_provinces(tmp_path / "nope.yaml")


def test_province_error_is_a_value_error() -> None:
    assert issubclass(ProvinceError, ValueError)


def test_a_fixed_file_loads_after_an_error(tmp_path: Path) -> None:
    path = _write(tmp_path, "provinces: [\n")
    with pytest.raises(ProvinceError):
        load_provinces(path)
    path.write_text(GOOD, encoding="utf-8")
    assert list(load_provinces(path)) == ["01"]

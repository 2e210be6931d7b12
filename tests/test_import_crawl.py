"""Parsing of the national portal crawl into canonical catalog records.

Cell parsers are checked on short literal cells; the record parser on real records of
../shared/data/dvcqg/procedures_2026-06.jsonl.gz, selected by procedure code, with exact
expected values, plus whole-file coverage floors so a parsing regression fails.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

import pytest

from bot.catalog.importers import crawl
from bot.catalog.importers.cells import (
    TIME_UNITS,
    channel_kind,
    clean,
    find_number,
    parse_fee,
    parse_time,
)
from bot.catalog.importers.coverage import coverage, format_coverage
from bot.catalog.seed import TIME_UNITS as SEED_TIME_UNITS
from bot.catalog.seed import CatalogError, normalize_record
from tests.exports import CRAWL, export_records

if not CRAWL.exists():
    pytest.skip(f"shared crawl export not found: {CRAWL}", allow_module_level=True)


def raw(code: str) -> dict[str, Any]:
    return next(r for r in export_records(CRAWL) if r["ma_thu_tuc"] == code)


def rec(code: str) -> dict[str, Any]:
    return crawl.parse_record(raw(code))


def rows(record: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [(c["channel"], c["time_value"], c["time_unit"], c["fee"])
            for c in record["channels"]]


# --- cell parsers ---------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "fee"), [
    ("10,000 Việt Nam Đồng", 10000),
    ("50.000 đồng", 50000),
    ("Lệ phí : 50.000 Đồng", 50000),
    ("70,000 VNĐ(70.000 đồng/Giấy chứng nhận)", 70000),  # same amount restated
    ("01 triệu đồng/lần cấp", 1000000),
    ("Phí : 50.000 Đồng\nLệ phí : 20.000 Đồng", 70000),  # two separate charges
    ("Miễn phí", 0),
    ("Không thu phí", 0),
    ("0 Đồng", 0),
    ("Phí : 0 Đồng", 0),
    ("Phí : Không Đồng", 0),
    ("Miễn phí(Không có)", 0),
    ("Miễn phí(Không quy định.)", 0),
])
def test_fee_known(text: str, fee: int) -> None:
    assert parse_fee(text) == fee


@pytest.mark.parametrize("text", [
    None, "", "Không có thông tin",
    "10 USD(/lần)",  # foreign currency
    "Lệ phí : 1.5 USD",
    "Miễn phí(Cho một loại hình: 8.000.000/lần; thêm một loại hình: 2.000.000/lần.)",
    "Miễn phí(- Lệ phí cấp giấy phép lái xe: 135.000 đồng/lần.)",  # free with an amount
    "Miễn phí(Mức lệ phí cụ thể do Hội đồng nhân dân tỉnh quyết định.)",  # set elsewhere
    "Miễn phí(Theo quy định của HĐND tỉnh)",
    "Miễn phí(Chưa quy định.)",
    "Miễn phí(Theo quy định của Luật phí và lệ phí.)",
    "20 VNĐ(20.000 vnđ /tờ khai)",  # cell and text disagree
    "100 VNĐ",  # implausibly small: the portal means 100.000 đ
    "50,000 Việt Nam Đồng(Kể từ ngày 01/7/2025 bằng 50% mức thu)",  # reduction
    "Phí : 2.000.000 Đồng (A)\nPhí : 3.500.000 Đồng (B)",  # alternatives
    "Phí : o Đồng",  # a typo is not an explicit "0"
    "Phí :  Đồng",
])
def test_fee_unknown_or_ambiguous(text: str | None) -> None:
    assert parse_fee(text) is None


@pytest.mark.parametrize(("text", "expected"), [
    ("5 Ngày làm việc", (5.0, "ngày làm việc")),
    ("15 Ngày", (15.0, "ngày")),
    ("8 Giờ", (8.0, "giờ")),
    ("01 Giờ", (1.0, "giờ")),
    ("0.5 Giờ", (0.5, "giờ")),
    ("3 Tháng", (3.0, "tháng")),
    ("1", (1.0, None)),  # unit-less, as in hộ tịch records
    ("5", (5.0, None)),
    ("0 Giờ", (None, None)),
    ("Không quy định", (None, None)),
    ("10-25", (None, None)),
    ("Không có thông tin", (None, None)),
    (None, (None, None)),
])
def test_parse_time(text: str | None, expected: tuple[Any, Any]) -> None:
    assert parse_time(text) == expected


def test_time_units_match_the_seed_loader() -> None:
    assert TIME_UNITS == SEED_TIME_UNITS


@pytest.mark.parametrize(("label", "kind"), [
    ("Trực tuyến", "online"), ("Trực tiếp", "in_person"), ("Dịch vụ bưu chính", "post"),
    ("Qua bưu chính", "post"), (" trực\xa0tuyến ", "online"), ("Fax", None), (None, None),
])
def test_channel_kind(label: str | None, kind: str | None) -> None:
    assert channel_kind(label) == kind


def test_clean() -> None:
    assert clean("Không có thông tin") is None
    assert clean("  Cục\xa0Quản lý  ") == "Cục Quản lý"
    assert clean("Cu\u0323c") == "C\u1ee5c"  # NFD in, NFC out


def test_find_number() -> None:
    assert find_number("Quyết định số 12/2021/QĐ-TTg ngày 24/3/2021") == "12/2021/QĐ-TTg"
    assert find_number("191/2005/TTLT/BQP-BLĐTBXH-BTC") == "191/2005/TTLT/BQP-BLĐTBXH-BTC"
    assert find_number("105/2025/NĐ- CP") == "105/2025/NĐ-CP"
    assert find_number("12") is None


def test_channel_row_cell() -> None:
    row = crawl.parse_channels("Hình thức nộpThời gianPhí, lệ phíMô tả"
                               "Trực tuyến7 Ngày làm việc10,000 Việt Nam Đồng(10.000 đồng/lần)"
                               "Nộp qua Cổng")
    assert row == [{"channel": "online", "time_value": 7.0, "time_unit": "ngày làm việc",
                    "time_text": "7 Ngày làm việc", "fee": 10000,
                    "fee_text": "10,000 Việt Nam Đồng(10.000 đồng/lần)", "note": "Nộp qua Cổng"}]


# --- real records -----------------------------------------------------------------------------

def test_usd_fee_result_and_fields_1_000771() -> None:
    r = rec("1.000771")
    assert r["code"] == "1.000771"
    assert r["url"].startswith("https://dichvucong.gov.vn/")
    assert r["decision"] == "5568/QĐ-BCA"
    assert r["level"] == "Cấp bộ"
    assert r["result"] == "Gia hạn tạm trú (không quá 06 tháng)"
    assert rows(r) == [("online", 5.0, "ngày làm việc", None),
                       ("post", 5.0, "ngày làm việc", None),
                       ("in_person", 5.0, "ngày làm việc", None)]
    assert {c["fee_text"] for c in r["channels"]} == {"10 USD(/lần)"}
    assert [s[:7] for s in r["steps"]] == ["Bước 1:", "Bước 2:", "Bước 3:"]
    assert set(r["raw"]) == set(crawl.RAW_KEYS)
    assert (r["short_name"], r["summary"], r["online_howto"], r["aliases"]) == (
        None, None, None, [])


def test_documents_file_name_and_zero_copies_1_000771() -> None:
    docs = rec("1.000771")["documents"]
    assert len(docs) == 4
    assert docs[2]["name"].endswith("của Bộ Công an.")  # "NA5.doc" removed
    assert docs[2]["copies"] == "1 bản chính"
    assert docs[1]["copies"] is None  # "0 bản chính": a note row, no copies
    assert docs[3] == {"name": "Giấy miễn thị thực.", "copies": "1 bản chính", "case": None}


def test_legal_basis_year_glued_onto_number_1_000771() -> None:
    basis = rec("1.000771")["legal_basis"]
    assert basis[0]["number"] == "23/2023/QH15"  # "...sửa đổi 2023" + "23/2023/QH15"
    assert basis[0]["title"].endswith("tại Việt Nam sửa đổi 2023")
    assert basis[1] == {"number": "51/2019/QH14", "title": "Luật 51/2019/QH14"}
    assert basis[2]["number"] == "47/2014/QH13"
    assert basis[3]["number"] == "04/2015/TT-BCA"
    # the next title in capitals is not eaten by the issuer code ("TT-BCAQUY ĐỊNH")
    assert basis[4]["title"].startswith("QUY ĐỊNH MỨC THU")
    assert basis[4]["number"] == "25/2021/TT-BTC"
    assert [b["number"] for b in basis[5:]] == ["22/2023/TT-BCA", "82/2015/NĐ-CP"]


def test_legal_basis_title_ending_with_a_number_2_000815() -> None:
    basis = rec("2.000815")["legal_basis"]
    b = next(x for x in basis if x["number"] == "280/2025/NĐ-CP")
    assert b["title"].startswith("Nghị định số 280/2025/NĐ-CP sửa đổi")
    assert b["title"].endswith("bởi Nghị định số 07/2025/NĐ-CP")
    assert {"number": "226/2016/TT-BTC", "title": "Thông tư 226/2016/TT-BTC"} in basis


def test_legal_basis_dash_between_number_and_title_1_001248() -> None:
    basis = rec("1.001248")["legal_basis"]
    assert basis[0] == {"number": "63/2011/NĐ-CP", "title": (
        "Nghị định 63/2011/NĐ-CP - Quy định chi tiết và hướng dẫn thi hành một số điều của "
        "Luật Trọng tài thương mại")}


def test_quantity_glued_onto_form_number_1_012781() -> None:
    docs = rec("1.012781")["documents"]
    form = docs[1]
    assert form["name"] == ("Đơn đăng ký biến động đất đai, tài sản gắn liền với đất "
                            "theo Mẫu số 18")  # source: "…Mẫu số 181 bản chính,1 bản sao"
    assert form["copies"] == "1 bản chính, 1 bản sao"
    assert form["case"].startswith("a) Đối với trường hợp thửa đất gốc đã có Giấy chứng nhận")
    assert docs[5]["case"].startswith("b) ")


def test_form_file_names_and_cases_1_003777() -> None:
    docs = rec("1.003777")["documents"]
    assert docs[0]["name"] == "Bản khai cá nhân (Mẫu số 03)."  # "Mẫu 03.TT41.doc" removed
    assert docs[1]["name"].endswith("(Mẫu số 05A)")  # "Mẫu 05A.TT41.doc" removed
    assert docs[0]["case"].startswith("Hồ sơ hưởng chế độ hằng tháng")
    assert docs[3]["case"] == "Hồ sơ đề nghị xét hưởng chế độ trợ cấp"
    assert not any(".doc" in d["name"] for d in docs)


def test_form_file_name_after_semicolon_1_000823() -> None:
    docs = rec("1.000823")["documents"]
    assert docs[0]["name"] == ("Đơn đề nghị chuyển đổi Giấy phép theo Mẫu số 08 quy định tại "
                               "Phụ lục II ban hành kèm theo Nghị định số 121/2021/NĐ-CP "
                               "ngày 27/12/2021")  # ";Mus08.docx" removed
    assert [d["copies"] for d in docs] == ["1 bản chính"] * 3


def test_same_channel_several_rows_kept_in_order_1_011726() -> None:
    r = rec("1.011726")
    assert rows(r) == [("online", 2.0, "ngày làm việc", None), ("post", 2.0, "ngày làm việc", None),
                       ("in_person", 2.0, "ngày làm việc", None),
                       ("in_person", 3.0, "ngày làm việc", None),
                       ("online", 3.0, "ngày làm việc", None), ("post", 3.0, "ngày làm việc", None)]
    assert r["channels"][0]["fee_text"] is None  # "Không có thông tin"
    assert r["channels"][0]["note"].startswith("+ Trong thời hạn 02 ngày làm việc")


def test_ho_tich_unitless_time_and_free_set_by_province_1_000689() -> None:
    r = rec("1.000689")
    assert rows(r) == [("online", 3.0, None, None), ("post", 3.0, None, None),
                       ("in_person", 3.0, None, None)]
    assert r["channels"][0]["time_text"] == "3"
    assert "Hội đồng nhân dân" in r["channels"][0]["fee_text"]


def test_free_with_bracketed_amounts_is_not_free_3_000340() -> None:
    r = rec("3.000340")
    assert rows(r) == [("online", 12.0, "ngày", None), ("post", 12.0, "ngày", None),
                       ("in_person", 12.0, "ngày", None)]
    assert r["channels"][0]["fee_text"].startswith("Miễn phí(Cho một loại hình")


def test_gplx_free_with_amounts_is_unknown_3_000346() -> None:
    assert [c["fee"] for c in rec("3.000346")["channels"]] == [None, None, None]


def test_unitless_time_glued_to_amount_2_002009() -> None:
    # "Trực tuyến1100 VNĐ(Phí công bố…: 100.000 đồng/lần…)": time "1" + fee "100 VNĐ"
    r = rec("2.002009")
    assert rows(r) == [("online", 1.0, None, None), ("post", 1.0, None, None),
                       ("in_person", 1.0, None, None)]
    assert r["channels"][0]["time_text"] == "1"
    assert r["channels"][0]["fee_text"].startswith("100 VNĐ(Phí công bố")


def test_amounts_and_free() -> None:
    assert [c["fee"] for c in rec("1.004002")["channels"]] == [70000] * 3
    assert [c["fee"] for c in rec("1.011325")["channels"]] == [2000000] * 3
    assert rows(rec("6.003636")) == [("in_person", 15.0, "ngày", 0), ("online", 15.0, "ngày", 0),
                                     ("post", 15.0, "ngày", 0)]


def test_steps_without_markers() -> None:
    assert rec("1.008124")["steps"] == [
        "Thực hiện theo quy định của pháp luật về chất lượng sản phẩm, hàng hóa."]
    steps = rec("1.004209")["steps"]
    assert len(steps) == 4 and steps[1].startswith("b) Công an đơn vị")


def test_steps_split_without_newlines() -> None:
    steps = crawl.parse_steps("Bước 1: Nộp hồ sơ. Bước 2: Nhận kết quả tại Bước 1 nêu trên.")
    assert steps == ["Bước 1: Nộp hồ sơ.", "Bước 2: Nhận kết quả tại Bước 1 nêu trên."]


def test_rejects_records_without_code_or_name() -> None:
    with pytest.raises(CatalogError, match="mã thủ tục"):
        crawl.parse_record({"ma_thu_tuc": " ", "ten_thu_tuc": "X"})
    with pytest.raises(CatalogError, match="tên thủ tục"):
        crawl.parse_record({"ma_thu_tuc": "1.000771", "ten_thu_tuc": "Không có thông tin"})
    with pytest.raises(CatalogError):
        crawl.parse_record(["not", "a", "dict"])
    assert crawl.parse_record({"ma_thu_tuc": "1. 000771", "ten_thu_tuc": "X"})["code"] == "1.000771"


def test_looks_like() -> None:
    assert crawl.looks_like(raw("1.000771"))
    assert not crawl.looks_like({"metadata": {}, "tables": {}})
    assert not crawl.looks_like("1.000771")


# --- whole file -------------------------------------------------------------------------------

@lru_cache(maxsize=1)
def _all() -> tuple[dict[str, Any], ...]:
    return tuple(crawl.parse_record(r) for r in export_records(CRAWL))


def test_whole_file_parses_and_loads() -> None:
    records = _all()
    assert len(records) == 2642
    for r in records:
        normalize_record(r)  # the seed loader accepts every parsed record
        json.dumps(r["raw"], ensure_ascii=False)
        for d in r["documents"]:
            assert ".doc" not in d["name"].lower()[-6:]


def test_whole_file_coverage_floors() -> None:
    cov = coverage(_all())
    print(format_coverage(cov))
    assert cov["total"] == 2642
    where = cov["where_source_has"]
    assert where["channel"]["share"] >= 0.99
    assert where["time"]["share"] >= 0.99
    assert where["document"]["share"] >= 0.99
    assert where["fee"]["share"] >= 0.78
    assert cov["step"]["share"] >= 0.99
    assert cov["legal_basis"]["share"] >= 0.95


def test_time_from_the_description_when_the_cell_has_none_1_004656() -> None:
    """"Không có thông tin" in the time cell, "05 ngày làm việc kể từ …" in the description."""
    channels = rec("1.004656")["channels"]
    assert channels and all(c["time_value"] == 5.0 for c in channels)
    assert all(c["time_unit"] == "ngày làm việc" for c in channels)
    assert all("Không có thông tin" in c["time_text"] for c in channels)


def test_dates_in_the_description_are_not_times_1_000221() -> None:
    """"… ngày 20 tháng …" is a date, not "20 tháng" of processing."""
    assert all(c["time_value"] is None for c in rec("1.000221")["channels"])

"""Parsing of the Ministry of Defence export into canonical catalog records.

Real records of ../shared/data/dvcqg/procedures_bqp_207.jsonl.gz, selected by procedure
code, with exact expected values, plus whole-file coverage floors.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

import pytest

from bot.catalog.importers import bqp
from bot.catalog.importers.coverage import coverage, format_coverage
from bot.catalog.seed import CatalogError, normalize_record
from tests.exports import BQP, export_records

if not BQP.exists():
    pytest.skip(f"shared defence export not found: {BQP}", allow_module_level=True)


def raw(code: str) -> dict[str, Any]:
    return next(r for r in export_records(BQP) if r["thu_tuc_id"] == code)


def rec(code: str) -> dict[str, Any]:
    return bqp.parse_record(raw(code))


def test_full_record_1_013124() -> None:
    r = rec("1.013124")
    assert r["code"] == "1.013124"
    assert r["name"].startswith("Thủ tục thẩm định và phê duyệt kế hoạch ứng phó sự cố tràn dầu")
    assert r["decision"] == "6225/QĐ-BQP"  # from "Quyết định số 6225/QĐ-BQP"
    assert r["level"] == "Cấp Bộ"
    assert r["field"] == "Ứng phó sự cố tràn dầu"
    assert r["conditions"] is None  # "Không"
    assert r["url"] is None and r["aliases"] == []
    assert [(c["channel"], c["time_value"], c["time_unit"], c["fee"]) for c in r["channels"]] == [
        ("in_person", 30.0, "ngày làm việc", 0), ("online", 30.0, "ngày làm việc", 0),
        ("post", 30.0, "ngày làm việc", 0)]
    assert r["channels"][1]["note"] == "hoặc bằng các hình thức phù hợp khác"
    assert r["channels"][0]["fee_text"] == "Phí : 0 Đồng"
    assert [d["copies"] for d in r["documents"]] == ["1 bản chính", "1 bản chính"]
    # so_ky_hieu is only "12": the full number comes from trich_yeu
    assert r["legal_basis"] == [{"number": "12/2021/QĐ-TTg", "title": (
        "Quyết định số 12/2021/QĐ-TTg ngày 24/3/2021 của Thủ tướng Chính phủ ban hành Quy chế "
        "hoạt động ứng phó với sự cố tràn dầu")}]
    assert [s[:7] for s in r["steps"]] == ["Bước 1:", "Bước 2:", "Bước 3:"]
    assert set(r["raw"]) == {"hinh_thuc_nop", "thanh_phan_ho_so", "can_cu_phap_ly",
                             "trinh_tu_thuc_hien"}
    json.dumps(r["raw"], ensure_ascii=False)


def test_usd_fee_and_zero_hour_1_013562() -> None:
    ch = rec("1.013562")["channels"]
    assert [(c["channel"], c["time_value"], c["time_unit"], c["fee"]) for c in ch] == [
        ("in_person", None, None, None)]  # "0 Giờ" is a placeholder; fee in USD
    assert ch[0]["time_text"] == "0 Giờ"
    assert ch[0]["fee_text"].startswith("Lệ phí : 03 USD")


def test_fee_written_khong_dong_and_title_in_number_column_1_013577() -> None:
    r = rec("1.013577")
    assert [(c["fee"], c["fee_text"]) for c in r["channels"]] == [(0, "Phí : Không Đồng")]
    assert r["documents"][1] == {"name": "Bản khai chung (bản chính)", "copies": "3 bản chính",
                                 "case": None}  # bullet "+ " and ";" dropped
    assert r["documents"][0]["copies"] is None  # "Bản chính: 0\nBản sao: 0"
    hang_hai = [b for b in r["legal_basis"] if b["title"] == "BỘ LUẬT HÀNG HẢI VIỆT NAM"]
    assert hang_hai and all(b["number"] is None for b in hang_hai)


def test_alternative_amounts_are_unknown() -> None:
    assert [c["fee"] for c in rec("1.013539")["channels"]] == [None, None, None]  # 2.0/3.5/4/5 tr
    fee = rec("3.000422")["channels"][0]
    assert fee["fee"] is None  # 50.000 đ, but 120.000 đ for some
    assert fee["fee_text"].startswith("Phí : 50.000 Đồng")


def test_decision_with_space_before_slash_1_013524() -> None:
    r = rec("1.013524")
    assert r["decision"] == "3980/QĐ-BQP"
    assert [c["fee"] for c in r["channels"]] == [None, None]  # empty fee cells
    assert r["documents"][0]["copies"] == "1 bản chính, 1 bản sao"


def test_copies_from_note() -> None:
    assert bqp.copies_from_note("Bản chính: 1\nBản sao: 0") == "1 bản chính"
    assert bqp.copies_from_note("Bản chính: 0\nBản sao: 5") == "5 bản sao"
    assert bqp.copies_from_note("Bản chính: 1\nBản sao: 1") == "1 bản chính, 1 bản sao"
    assert bqp.copies_from_note("Bản chính: 0\nBản sao: 0") is None
    assert bqp.copies_from_note("") is None


def test_rejects_and_shape() -> None:
    assert bqp.looks_like(raw("1.013124"))
    assert not bqp.looks_like({"ma_thu_tuc": "1", "ten_thu_tuc": "x"})
    with pytest.raises(CatalogError, match="mã thủ tục"):
        bqp.parse_record({"metadata": {"tên_thủ_tục": "X"}, "tables": {}})
    with pytest.raises(CatalogError, match="tên thủ tục"):
        bqp.parse_record({"thu_tuc_id": "1.013124", "metadata": {}, "tables": {}})
    with pytest.raises(CatalogError):
        bqp.parse_record(None)


@lru_cache(maxsize=1)
def _all() -> tuple[dict[str, Any], ...]:
    return tuple(bqp.parse_record(r) for r in export_records(BQP))


def test_whole_file_parses_and_loads() -> None:
    records = _all()
    assert len(records) == 207
    for r in records:
        normalize_record(r)
        json.dumps(r["raw"], ensure_ascii=False)


def test_whole_file_coverage_floors() -> None:
    cov = coverage(_all())
    print(format_coverage(cov))
    assert cov["total"] == 207
    where = cov["where_source_has"]
    assert where["channel"]["share"] >= 0.99
    assert where["time"]["share"] >= 0.99
    assert where["document"]["share"] >= 0.99
    assert where["fee"]["share"] >= 0.85
    assert cov["step"]["share"] >= 0.99
    assert cov["legal_basis"]["share"] >= 0.99

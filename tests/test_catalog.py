"""Catalog: seed validity, idempotent upsert, bad records, queries and search."""

from __future__ import annotations

import copy

import pytest
import yaml
from sqlalchemy import func, select

from bot.catalog.db import session_scope
from bot.catalog.models import Alias, Channel, FeeRule, Procedure
from bot.catalog.search import CatalogIndex
from bot.catalog.seed import (
    SEED_DIR,
    CatalogError,
    normalize_record,
    read_catalog_file,
    upsert_records,
)

RECORD = {
    "code": "9.999001",
    "name": "Thủ tục thử nghiệm cấp giấy xác nhận",
    "short_name": "Cấp giấy xác nhận thử",
    "level": "Cấp Xã",
    "agency": "Ủy ban nhân dân cấp xã",
    "aliases": ["xin giấy xác nhận thử"],
    "channels": [
        {"channel": "online", "time_value": 1, "time_unit": "ngày làm việc", "fee": 0},
        {"channel": "in_person", "time_value": 3, "time_unit": "ngày làm việc", "fee": None},
    ],
    "documents": [{"name": "Tờ khai", "copies": "1 bản chính"}],
    "steps": ["Nộp tờ khai", "Nhận kết quả"],
    "legal_basis": [{"number": "01/2099/TT-TEST", "title": "Thông tư thử"}],
}


def seed_records() -> list[dict]:
    records = []
    for path in sorted(SEED_DIR.glob("*.yaml")):
        records.extend(read_catalog_file(path))
    return records


def test_seed_catalog_is_valid_and_big_enough() -> None:
    records = seed_records()
    assert len(records) >= 30
    codes = [normalize_record(r)["code"] for r in records]
    assert len(codes) == len(set(codes))
    for r in records:
        rec = normalize_record(r)
        assert rec["channels"], f"{rec['code']} has no channel"
        assert rec["url"] and rec["url"].startswith("https://dichvucong.gov.vn/"), rec["code"]
        assert rec["aliases"], f"{rec['code']} has no alias"


def test_seed_matches_the_portal_crawl(shared_crawl: dict[str, dict]) -> None:
    """Codes, names and links are facts from ../shared: they must agree with the crawl."""
    for r in seed_records():
        src = shared_crawl.get(r["code"])
        assert src is not None, f"{r['code']} not in the portal crawl"
        assert r["name"] == src["ten_thu_tuc"].strip()
        assert r["url"] == src["detail_url"]


@pytest.fixture(scope="module")
def shared_crawl() -> dict[str, dict]:
    import gzip
    import json

    from tests.conftest import SHARED

    path = SHARED / "data" / "dvcqg" / "procedures_2026-06.jsonl.gz"
    if not path.exists():
        pytest.skip("../shared is not beside the checkout")
    out = {}
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            out[row["ma_thu_tuc"]] = row
    return out


def test_upsert_is_idempotent_and_updates_changes(db_url: str) -> None:
    with session_scope(db_url) as s:
        rep = upsert_records(s, [RECORD])
        assert (rep.new, rep.updated, rep.unchanged) == (1, 0, 0)
    with session_scope(db_url) as s:
        rep = upsert_records(s, [RECORD])
        assert (rep.new, rep.updated, rep.unchanged) == (0, 0, 1)
    changed = copy.deepcopy(RECORD)
    changed["channels"][1]["fee"] = 20000
    with session_scope(db_url) as s:
        rep = upsert_records(s, [changed])
        assert (rep.new, rep.updated, rep.unchanged) == (0, 1, 0)
    with session_scope(db_url) as s:
        fees = s.execute(select(Channel.fee).where(Channel.procedure_code == "9.999001")
                         .order_by(Channel.position)).scalars().all()
        assert fees == [0, 20000]
        # one fee rule per channel, replaced, not duplicated
        assert s.execute(select(func.count(FeeRule.id))).scalar_one() == 2
        assert s.execute(select(func.count(Alias.id))).scalar_one() == 1


def test_unknown_fee_stays_unknown(db_url: str) -> None:
    with session_scope(db_url) as s:
        upsert_records(s, [RECORD])
    with session_scope(db_url) as s:
        p = s.get(Procedure, "9.999001")
        assert [c.fee for c in p.channels] == [0, None]


@pytest.mark.parametrize("mutate, message", [
    (lambda r: r.pop("code"), "code"),
    (lambda r: r["channels"][0].update(channel="fax"), "channel"),
    (lambda r: r["channels"][0].update(fee="mười nghìn"), "lệ phí"),
    (lambda r: r["channels"][0].update(fee=-5), "lệ phí"),
    (lambda r: r["channels"][0].update(time_unit="tuần trăng"), "time_unit"),
    (lambda r: r.update(documents=[{"copies": "1 bản"}]), "name"),
])
def test_bad_records_are_rejected_with_a_reason(db_url: str, mutate, message: str) -> None:
    bad = copy.deepcopy(RECORD)
    mutate(bad)
    with pytest.raises(CatalogError, match=message):
        normalize_record(bad)
    good = copy.deepcopy(RECORD)
    good["code"] = "9.999002"
    with session_scope(db_url) as s:
        rep = upsert_records(s, [bad, good, "not a mapping"])
    assert rep.new == 1 and rep.rejected == 2 and len(rep.errors) == 2
    with session_scope(db_url) as s:
        assert s.get(Procedure, "9.999002") is not None  # the good one is not lost


def test_unreadable_file_gives_clear_error(tmp_path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("procedures: [unclosed", encoding="utf-8")
    with pytest.raises(CatalogError, match="không đọc được"):
        read_catalog_file(bad)
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump({"something": 1}), encoding="utf-8")
    with pytest.raises(CatalogError, match="procedures"):
        read_catalog_file(other)


@pytest.fixture()
def index(seeded_db: str) -> CatalogIndex:
    with session_scope(seeded_db) as s:
        return CatalogIndex.from_session(s)


def _code_named(seeded_db: str, words: str) -> set[str]:
    """Codes of seed procedures whose official name contains `words` (accent-free)."""
    from bot.text import fold

    with session_scope(seeded_db) as s:
        return {p.code for p in s.query(Procedure).all() if fold(words) in fold(p.name)}


@pytest.mark.parametrize("query, name_part", [
    ("đăng ký khai sinh", "đăng ký khai sinh"),
    ("dang ky khai sinh", "đăng ký khai sinh"),
    ("đăng ký kết hôn", "đăng ký kết hôn"),
    ("dang ky tam tru", "đăng ký tạm trú"),
    ("lý lịch tư pháp", "lý lịch tư pháp"),
    ("cap ho chieu pho thong", "hộ chiếu"),
    ("chứng thực bản sao từ bản chính", "chứng thực bản sao từ bản chính"),
    ("giay phep xay dung nha o rieng le", "giấy phép xây dựng"),
])
def test_search_finds_procedure_with_and_without_diacritics(
    seeded_db: str, index: CatalogIndex, query: str, name_part: str
) -> None:
    expected = _code_named(seeded_db, name_part)
    assert expected, f"seed has no procedure named like {name_part!r}"
    results = index.search(query, limit=3)
    assert results and results[0].code in expected, (query, results)


def test_search_tolerates_typos(seeded_db: str, index: CatalogIndex) -> None:
    expected = _code_named(seeded_db, "đăng ký kết hôn")
    results = index.search("dang ky ket honn", limit=3)
    assert results and results[0].code in expected


def test_search_nothing_for_unrelated_text(index: CatalogIndex) -> None:
    assert index.search("thời tiết hôm nay thế nào", limit=3) == []
    assert index.search("   ", limit=3) == []


def test_search_results_are_ranked_and_limited(index: CatalogIndex) -> None:
    results = index.search("căn cước", limit=3)
    assert 1 <= len(results) <= 3
    scores = [r.score for r in results]
    assert scores == sorted(scores, reverse=True)
    assert all(0 < r.score <= 1 for r in results)


def test_seed_sync_adds_and_updates_seed_records_but_keeps_imported_ones(db_url: str) -> None:
    from bot.catalog.seed import ensure_seeded, load_seed

    with session_scope(db_url) as s:
        first = ensure_seeded(s)
    assert first.new >= 30 and first.changed
    code = seed_records()[0]["code"]
    other = seed_records()[1]["code"]
    with session_scope(db_url) as s:
        s.get(Procedure, code).summary = "sửa tay, sẽ được seed cập nhật lại"
        imported = s.get(Procedure, other)
        imported.source = "import:portal"
        imported.summary = "dữ liệu nhập từ cổng"
        s.delete(s.get(Procedure, seed_records()[2]["code"]))
    with session_scope(db_url) as s:
        again = ensure_seeded(s)
    assert (again.new, again.updated, again.kept) == (1, 1, 1)
    with session_scope(db_url) as s:
        assert s.get(Procedure, code).summary != "sửa tay, sẽ được seed cập nhật lại"
        assert s.get(Procedure, other).summary == "dữ liệu nhập từ cổng"
    with session_scope(db_url) as s:
        assert not ensure_seeded(s).changed
        assert load_seed(s).updated == 1  # a plain load does overwrite the imported one

"""`bot catalog import` end to end: shape detection, batched upserts and merge rules.

Every test runs on a real SQLite file in tmp_path with small files built from the first
lines of the real exports in ../shared/data/dvcqg (never copied into the repository). One
test imports the whole crawl, the defence export and every portal list, twice, to check
that re-importing all sources changes nothing.
"""

from __future__ import annotations

import gzip
import json
import sqlite3
import time
from collections.abc import Iterator, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, inspect, select
from sqlalchemy.orm import Session

from bot.catalog.db import get_engine, session_factory
from bot.catalog.importers import crawl
from bot.catalog.importers.cells import clean
from bot.catalog.importers.load import BATCH, Shape, detect, expand_paths, import_file, read_items
from bot.catalog.live_index import LiveIndex
from bot.catalog.models import Procedure
from bot.catalog.revision import catalog_revision
from bot.catalog.seed import CatalogError, LoadReport, ensure_seeded, read_catalog_file
from bot.cli import main
from tests.exports import BQP, CRAWL, DATA, LISTS, export_lines

ROOT = Path(__file__).resolve().parents[1]
SEED = ROOT / "data" / "catalog" / "procedures.yaml"

if not (CRAWL.exists() and BQP.exists() and LISTS.is_dir()):
    pytest.skip(f"shared exports not found under {DATA}", allow_module_level=True)

HEADER = ("Mã số", "Tên", "Cơ quan ban hành", "Cơ quan thực hiện", "Lĩnh vực")
TITLE = "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM\nDANH SÁCH THỦ TỤC HÀNH CHÍNH"
SHEET = "Danh sách TTHC"
NO_AGENCY = "1.012537"  # crawl says "Không có thông tin" for its agency
SEED_CODE = "1.001193"  # "Thủ tục đăng ký khai sinh": in the seed and in the crawl


# --- helpers --------------------------------------------------------------------------------

def crawl_lines() -> tuple[str, ...]:
    """Every non-blank line of the real crawl, as text."""
    return export_lines(CRAWL)


def bqp_lines() -> tuple[str, ...]:
    return export_lines(BQP)


@lru_cache(maxsize=1)
def seed_codes() -> frozenset[str]:
    return frozenset(str(r["code"]) for r in read_catalog_file(SEED))


@lru_cache(maxsize=1)
def fresh_lines() -> tuple[str, ...]:
    """Crawl lines in file order, without the procedures the shipped seed curates (an import
    keeps those when the seed is loaded, so they would not count as new)."""
    return tuple(line for line in crawl_lines() if code_of(line) not in seed_codes())


def crawl_line(code: str) -> str:
    return next(line for line in crawl_lines() if json.loads(line)["ma_thu_tuc"] == code)


def crawl_obj(i: int) -> dict[str, Any]:
    return json.loads(crawl_lines()[i])


def code_of(line: str) -> str:
    return json.loads(line)["ma_thu_tuc"]


def write_lines(path: Path, lines: Sequence[str]) -> Path:
    """Write JSON lines, gzip-compressed when the name ends with .gz."""
    text = "".join(line + "\n" for line in lines)
    if path.name.lower().endswith(".gz"):
        with gzip.open(path, "wt", encoding="utf-8") as f:
            f.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def write_xlsx(path: Path, rows: Sequence[Sequence[Any]], header: bool = True) -> Path:
    """A portal-style list: a title row, the header row (unless told not to), then rows."""
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.title = SHEET
    ws.append([TITLE])
    if header:
        ws.append(list(HEADER))
    for row in rows:
        ws.append(list(row))
    wb.save(path)
    return path


def crawl_subset(tmp_path: Path, n: int = 30, extra: Sequence[str] = (),
                 name: str = "crawl_subset.jsonl.gz") -> Path:
    """The first `n` real crawl lines not in the seed, plus the lines of the `extra` codes."""
    return write_lines(tmp_path / name, [*fresh_lines()[:n], *map(crawl_line, extra)])


def load(session: Session, path: Path, keep_curated: bool = True) -> LoadReport:
    return import_file(session, path, keep_curated=keep_curated, progress=False)[1]


def count(session: Session) -> int:
    return session.execute(select(func.count()).select_from(Procedure)).scalar_one()


def proc(session: Session, code: str) -> Procedure:
    session.expire_all()
    p = session.get(Procedure, code)
    assert p is not None, code
    return p


@pytest.fixture()
def session(db_url: str) -> Iterator[Session]:
    s = session_factory(db_url)()
    try:
        yield s
    finally:
        s.close()


# --- 1. shape detection ---------------------------------------------------------------------

@pytest.mark.parametrize(("path", "kind", "source", "partial"), [
    (CRAWL, "crawl", "dvcqg-crawl", False),
    (BQP, "bqp", "dvcqg-bqp", False),
    (LISTS / "toa-an-nhan-dan.xlsx", "portal-list", "dvcqg-list", True),
    (LISTS / "danh-sach-tthc-BoTuPhap.xlsx", "portal-list", "dvcqg-list", True),
    (SEED, "catalog-yaml", "import-yaml", False),
])
def test_detect_real_files(path: Path, kind: str, source: str, partial: bool) -> None:
    assert detect(path) == Shape(kind, source, partial)


def test_detect_plain_and_gz_subsets(tmp_path: Path) -> None:
    lines = crawl_lines()[:3]
    assert detect(write_lines(tmp_path / "a.jsonl", lines)).kind == "crawl"
    assert detect(write_lines(tmp_path / "a.jsonl.gz", lines)).kind == "crawl"
    assert detect(write_lines(tmp_path / "b.jsonl", bqp_lines()[:3])).kind == "bqp"
    # A broken first line does not decide the shape: the first readable line does.
    assert detect(write_lines(tmp_path / "c.jsonl", ["{oops", *lines])).kind == "crawl"


def _unreadable(tmp_path: Path) -> dict[str, Path]:
    files = {
        "other-json": write_lines(tmp_path / "other.jsonl", ['{"foo": 1, "bar": [2]}']),
        "json-list": write_lines(tmp_path / "list.jsonl", ["[1, 2, 3]"]),
        "only-broken": write_lines(tmp_path / "broken.jsonl", ["not json", "{oops"]),
        "blank-lines": write_lines(tmp_path / "blank.jsonl", ["", "   "]),
        "empty-gz": write_lines(tmp_path / "empty.jsonl.gz", []),
        "missing": tmp_path / "nowhere" / "missing.jsonl.gz",
    }
    files["empty"] = tmp_path / "empty.jsonl"
    files["empty"].write_bytes(b"")
    files["garbage-xlsx"] = tmp_path / "garbage.xlsx"
    files["garbage-xlsx"].write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff\xfe\xfd not a workbook")
    files["gz-not-gzip"] = tmp_path / "plain.jsonl.gz"
    files["gz-not-gzip"].write_text(crawl_lines()[0] + "\n", encoding="utf-8")
    return files


@pytest.mark.parametrize("case", ["other-json", "json-list", "only-broken", "blank-lines",
                                  "empty-gz", "missing", "empty", "garbage-xlsx", "gz-not-gzip"])
def test_detect_unreadable_files_name_the_file(tmp_path: Path, case: str) -> None:
    path = _unreadable(tmp_path)[case]
    with pytest.raises(CatalogError) as err:
        detect(path)
    assert path.name in str(err.value)


def test_detect_message_lists_keys_and_supported_shapes(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "other.jsonl", ['{"foo": 1, "bar": [2]}'])
    with pytest.raises(CatalogError, match=r"không nhận ra dạng dữ liệu.*bar, foo"):
        detect(path)


def test_xlsx_without_header_is_refused_naming_the_file(tmp_path: Path,
                                                        session: Session) -> None:
    """A workbook without the "Mã số | Tên" header is detected as a list (it is a workbook)
    but reading it fails with a message naming the file, and nothing is stored."""
    path = write_xlsx(tmp_path / "no-header.xlsx",
                      [("1.000178", "Tên", "Bộ", "Sở", "Lĩnh vực")], header=False)
    with pytest.raises(CatalogError) as err:
        list(read_items(path, detect(path)))
    assert path.name in str(err.value) and "Mã số" in str(err.value)
    with pytest.raises(CatalogError, match="no-header.xlsx"):
        load(session, path)
    assert count(session) == 0


def test_uppercase_gz_suffix_is_read_like_lowercase(tmp_path: Path) -> None:
    """expand_paths picks up "X.JSONL.GZ" (its suffix check ignores case), so the reader
    must decompress it too, like portal_list.looks_like and the YAML check do."""
    path = write_lines(tmp_path / "EXPORT.JSONL.GZ", crawl_lines()[:3])
    assert expand_paths([tmp_path]) == [path]
    assert detect(path).kind == "crawl"
    assert len([r for _, r in read_items(path, detect(path)) if isinstance(r, dict)]) == 3


def test_expand_paths_keeps_supported_files_of_folders(tmp_path: Path) -> None:
    a = write_lines(tmp_path / "a.jsonl.gz", crawl_lines()[:1])
    b = write_xlsx(tmp_path / "b.xlsx", [])
    (tmp_path / "notes.txt").write_text("x", encoding="utf-8")
    single = tmp_path / "notes.txt"
    assert expand_paths([tmp_path, single]) == [a, b, single]


# --- 2. malformed lines ---------------------------------------------------------------------

def _malformed_lines() -> tuple[list[str], dict[int, str]]:
    """Real crawl lines with bad ones at known line numbers (1-based) → expected reason."""
    good = list(fresh_lines()[:22])
    no_code = crawl_obj(40)
    del no_code["ma_thu_tuc"]
    blank_code = dict(crawl_obj(41), ma_thu_tuc="  ")
    lines = good[:4] + ['{"ma_thu_tuc": "1.999999", "ten_thu_tuc": '] + good[4:8]
    lines += [bqp_lines()[0]] + good[8:12]
    lines += [json.dumps(no_code, ensure_ascii=False)] + good[12:16]
    lines += ["", json.dumps(blank_code, ensure_ascii=False)] + good[16:]
    bad = {5: "không phải JSON hợp lệ", 10: "không đúng dạng crawl",
           15: "không đúng dạng crawl", 21: "thiếu mã thủ tục"}
    return lines, bad


@pytest.mark.parametrize("name", ["malformed.jsonl", "malformed.jsonl.gz"])
def test_malformed_lines_are_rejected_with_line_numbers(tmp_path: Path, session: Session,
                                                        name: str) -> None:
    lines, bad = _malformed_lines()
    assert lines[4].startswith('{"ma_thu_tuc": "1.999999"') and lines[19] == ""
    report = load(session, write_lines(tmp_path / name, lines))
    assert report.rejected == len(bad) == len(report.errors)
    for (n, reason), error in zip(sorted(bad.items()), report.errors, strict=True):
        assert error.startswith(f"dòng {n}: ") and reason in error, error
    assert report.new == 22 and report.updated == report.unchanged == 0
    assert count(session) == 22
    stored = set(session.execute(select(Procedure.code)).scalars())
    assert stored == {code_of(line) for line in fresh_lines()[:22]}


# --- 3. idempotency and duplicates ----------------------------------------------------------

def test_reimport_is_unchanged_and_a_changed_line_is_one_update(tmp_path: Path,
                                                               session: Session) -> None:
    path = crawl_subset(tmp_path, n=25)
    first = load(session, path)
    assert (first.new, first.updated, first.rejected) == (25, 0, 0), first.errors
    rev = catalog_revision(session)
    assert rev >= 1

    again = load(session, path)
    assert (again.new, again.updated, again.unchanged, again.rejected) == (0, 0, 25, 0)
    assert catalog_revision(session) == rev

    lines = list(fresh_lines()[:25])
    obj = json.loads(lines[3])
    obj["ten_thu_tuc"] = obj["ten_thu_tuc"] + " (đã sửa tên)"
    lines[3] = json.dumps(obj, ensure_ascii=False)
    changed = load(session, write_lines(tmp_path / "changed.jsonl.gz", lines))
    assert (changed.new, changed.updated, changed.unchanged, changed.rejected) == (0, 1, 24, 0)
    assert catalog_revision(session) > rev
    assert proc(session, obj["ma_thu_tuc"]).name.endswith("(đã sửa tên)")


def test_duplicate_code_in_one_file_rejects_the_second(tmp_path: Path,
                                                       session: Session) -> None:
    lines = [*fresh_lines()[:6], fresh_lines()[2]]
    report = load(session, write_lines(tmp_path / "dup.jsonl", lines))
    dup = code_of(fresh_lines()[2])
    assert (report.new, report.rejected) == (6, 1)
    assert report.errors == [f"dòng 7: mã {dup} bị lặp trong cùng tệp"]
    assert count(session) == 6


def test_duplicate_code_in_a_later_batch_is_rejected(tmp_path: Path, session: Session) -> None:
    """Batches are committed separately; a code repeated past the batch size is still a repeat."""
    n = BATCH + 5
    lines = [*fresh_lines()[:n], fresh_lines()[0]]
    report = load(session, write_lines(tmp_path / "dup.jsonl", lines))
    assert (report.new, report.rejected) == (n, 1)
    dup = code_of(fresh_lines()[0])
    assert report.errors == [f"dòng {n + 1}: mã {dup} bị lặp trong cùng tệp"]
    assert count(session) == n


# --- 4. the curated seed --------------------------------------------------------------------

def _seed_record(code: str) -> dict[str, Any]:
    return next(r for r in read_catalog_file(SEED) if r["code"] == code)


def test_import_keeps_curated_seed_records(tmp_path: Path, session: Session) -> None:
    seed = _seed_record(SEED_CODE)
    assert seed["aliases"], "the chosen seed record must have aliases"
    ensure_seeded(session)
    session.commit()
    before = count(session)
    path = crawl_subset(tmp_path, n=5, extra=[SEED_CODE])

    report = load(session, path)
    assert report.kept >= 1 and report.new == 5, report.summary()
    p = proc(session, SEED_CODE)
    assert p.source == "seed" and p.name == seed["name"]
    assert {a.alias for a in p.aliases} == set(seed["aliases"])
    assert count(session) == before + 5

    replaced = load(session, path, keep_curated=False)
    assert replaced.updated == 1 and replaced.kept == 0, replaced.summary()
    p = proc(session, SEED_CODE)
    parsed = crawl.parse_record(json.loads(crawl_line(SEED_CODE)))
    assert p.source == crawl.SOURCE and p.name == parsed["name"]
    assert p.raw is not None and "cach_thuc_thuc_hien" in json.loads(p.raw)


# --- 5. partial merge from a portal list ----------------------------------------------------

def test_portal_list_fills_empty_fields_and_survives_reimport(tmp_path: Path,
                                                              session: Session) -> None:
    """The list fills the agency the crawl lacks (not the name), remembers it in `filled`,
    and re-importing the crawl keeps it: importing both sources again changes nothing."""
    subset = crawl_subset(tmp_path, n=10, extra=[NO_AGENCY])
    assert load(session, subset).new == 11
    crawled = proc(session, NO_AGENCY)
    assert crawled.agency is None and crawled.field and crawled.filled is None
    name = crawled.name

    xlsx = write_xlsx(tmp_path / "list.xlsx", [
        (NO_AGENCY, "Một tên hoàn toàn khác", "Bộ Công an", "Công an cấp xã\nCông an tỉnh",
         "Lĩnh vực khác"),
        ("9.999001", "Thủ tục thử nghiệm nhập danh sách", "Bộ Thử nghiệm",
         "Sở Thử nghiệm", "Lĩnh vực thử nghiệm"),
        ("không-phải-mã", "Tên", "Bộ", "Sở", "Lĩnh vực"),
        ("9.999002", None, "Bộ", "Sở", "Lĩnh vực"),  # a new procedure needs a name
        (None, None, None, None, None),
    ])
    rev = catalog_revision(session)
    shape, report = import_file(session, xlsx, progress=False)
    assert shape.kind == "portal-list" and shape.partial
    assert (report.new, report.updated, report.unchanged, report.rejected) == (1, 1, 0, 2)
    assert report.errors == [f"{SHEET}!dòng 5: mã thủ tục không hợp lệ: 'không-phải-mã'",
                             f"{SHEET}!dòng 6: thủ tục 9.999002 mới nhưng thiếu tên"]
    assert catalog_revision(session) > rev

    merged = proc(session, NO_AGENCY)
    assert merged.agency == "Công an cấp xã; Công an tỉnh"
    assert merged.name == name and merged.field == crawled.field
    assert merged.filled == "agency" and merged.source == crawl.SOURCE

    new = proc(session, "9.999001")
    assert (new.name, new.field, new.agency, new.source) == (
        "Thủ tục thử nghiệm nhập danh sách", "Lĩnh vực thử nghiệm", "Sở Thử nghiệm",
        "dvcqg-list")

    rev = catalog_revision(session)
    again = load(session, subset)
    assert (again.new, again.updated, again.unchanged) == (0, 0, 11), again.summary()
    kept = proc(session, NO_AGENCY)
    assert kept.agency == "Công an cấp xã; Công an tỉnh" and kept.filled == "agency"
    list_again = load(session, xlsx)
    assert (list_again.new, list_again.updated, list_again.unchanged) == (0, 0, 2)
    assert list_again.rejected == 2 and count(session) == 12
    assert catalog_revision(session) == rev


def test_full_import_with_the_field_wins_over_a_filled_value(tmp_path: Path,
                                                             session: Session) -> None:
    """Once the full source states the field itself, it replaces the list's value."""
    load(session, crawl_subset(tmp_path, n=0, extra=[NO_AGENCY]))
    load(session, write_xlsx(tmp_path / "l.xlsx",
                             [(NO_AGENCY, "x", "Bộ", "Công an cấp xã", "Chính sách")]))
    assert proc(session, NO_AGENCY).filled == "agency"
    obj = json.loads(crawl_line(NO_AGENCY))
    obj["co_quan_thuc_hien"] = "Công an xã (nguồn đầy đủ)"
    report = load(session, write_lines(tmp_path / "c.jsonl", [json.dumps(obj)]))
    assert report.updated == 1
    p = proc(session, NO_AGENCY)
    assert p.agency == "Công an xã (nguồn đầy đủ)" and p.filled is None


# --- 6. raw texts and fees ------------------------------------------------------------------

def test_raw_texts_and_channel_fees_are_stored(tmp_path: Path, session: Session) -> None:
    assert load(session, crawl_subset(tmp_path, n=30)).new == 30
    abtc = proc(session, "1.000811")
    source = json.loads(crawl_line("1.000811"))
    raw = json.loads(abtc.raw)
    assert raw["cach_thuc_thuc_hien"] == clean(source["cach_thuc_thuc_hien"])
    assert "Trực tuyến21 Ngày1,200,000 Việt Nam Đồng" in raw["cach_thuc_thuc_hien"]
    assert raw["thanh_phan_ho_so"] == clean(source["thanh_phan_ho_so"])
    assert [(c.channel, c.fee) for c in abtc.channels] == [
        ("online", 1200000), ("post", 0), ("in_person", 1200000)]
    assert abtc.channels[0].fee_text.startswith("1,200,000 Việt Nam Đồng")
    assert [c.time_value for c in abtc.channels] == [21.0, 21.0, 21.0]
    assert sorted((r.channel, r.amount) for r in abtc.fee_rules) == [
        ("in_person", 1200000), ("online", 1200000), ("post", 0)]

    usd = proc(session, "1.000771")
    assert usd.channels and all(c.fee is None for c in usd.channels)
    assert {c.fee_text for c in usd.channels} == {"10 USD(/lần)"}
    assert all(r.amount is None for r in usd.fee_rules)


# --- 7. schema upgrade ----------------------------------------------------------------------

OLD_PROCEDURES = """
CREATE TABLE procedures (
    code VARCHAR(32) NOT NULL PRIMARY KEY, name TEXT NOT NULL, short_name TEXT,
    name_folded TEXT NOT NULL, field TEXT, level TEXT, agency TEXT, authority TEXT, url TEXT,
    summary TEXT, result TEXT, online_howto TEXT, source VARCHAR(64) NOT NULL
)"""


def test_get_engine_adds_new_columns_to_an_old_database(tmp_path: Path) -> None:
    path = tmp_path / "old" / "catalog.sqlite3"
    path.parent.mkdir()
    with sqlite3.connect(path) as conn:
        conn.execute(OLD_PROCEDURES)
        conn.execute("INSERT INTO procedures (code, name, name_folded, agency, source) "
                     "VALUES ('9.000001', 'Thủ tục cũ', 'thu tuc cu', 'Sở cũ', 'seed')")
    conn.close()
    url = f"sqlite:///{path}"
    engine = get_engine(url)
    columns = {c["name"] for c in inspect(engine).get_columns("procedures")}
    assert {"audience", "conditions", "decision", "raw", "filled"} <= columns
    assert inspect(engine).has_table("catalog_counters")

    with session_factory(url)() as s:
        old = s.get(Procedure, "9.000001")
        assert old is not None
        assert (old.name, old.agency, old.raw, old.filled) == ("Thủ tục cũ", "Sở cũ", None, None)
        report = load(s, crawl_subset(tmp_path, n=3))
        assert report.new == 3 and count(s) == 4
        assert all(p.raw for p in s.execute(select(Procedure).where(
            Procedure.source == crawl.SOURCE)).scalars())


# --- 8. the live index ----------------------------------------------------------------------

def test_live_index_follows_an_import(tmp_path: Path, db_url: str) -> None:
    live = LiveIndex(db_url, check_every=0)
    live.load()
    size, rev = live.size, live.revision
    assert size > 0 and rev is not None
    code = "1.000811"
    name = json.loads(crawl_line(code))["ten_thu_tuc"]
    assert code not in [r.code for r in live.get().search(name)]

    with session_factory(db_url)() as s:
        assert load(s, crawl_subset(tmp_path, n=30)).new == 30

    deadline = time.monotonic() + 30
    while live.size <= size and time.monotonic() < deadline:
        live.get()
        time.sleep(0.05)
    assert live.size == size + 30, live.error
    assert live.revision is not None and live.revision > rev
    assert code in [r.code for r in live.get().search(name, limit=3)]


# --- 9. command line ------------------------------------------------------------------------

def test_cli_import_reports_each_file_and_fails_on_unreadable_ones(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'c.sqlite3'}")
    good = crawl_subset(tmp_path, n=10, name="good.jsonl.gz")
    bad = tmp_path / "bad.xlsx"
    bad.write_bytes(b"\x00\xff garbage")
    missing = tmp_path / "missing.jsonl.gz"

    assert main(["catalog", "import", str(good), str(bad), str(missing), "--no-progress"]) == 1
    out, err = capsys.readouterr()
    assert "good.jsonl.gz (crawl): 10 mới, 0 cập nhật, 0 không đổi, 0 bị từ chối" in out
    assert "bad.xlsx" in err and "missing.jsonl.gz" in err
    assert "good.jsonl.gz" not in err

    assert main(["catalog", "import", str(good), "--no-progress"]) == 0
    out, err = capsys.readouterr()
    assert "good.jsonl.gz (crawl): 0 mới, 0 cập nhật, 10 không đổi, 0 bị từ chối" in out

    assert main(["catalog", "coverage", str(good)]) == 0
    out, _ = capsys.readouterr()
    assert "Tổng số thủ tục: 10" in out


def test_cli_import_prints_rejected_lines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'c.sqlite3'}")
    lines, bad = _malformed_lines()
    path = write_lines(tmp_path / "m.jsonl", lines)
    assert main(["catalog", "import", str(path), "--no-progress", "--max-errors", "2"]) == 0
    out, err = capsys.readouterr()
    assert f"22 mới, 0 cập nhật, 0 không đổi, {len(bad)} bị từ chối" in out
    assert "dòng 5:" in err and "dòng 10:" in err and "dòng 15:" not in err
    assert f"và {len(bad) - 2} lỗi khác" in err


# --- whole files ----------------------------------------------------------------------------

def test_whole_exports_import_and_reimport_unchanged(db_url: str) -> None:
    """The whole crawl, the defence export and a real portal list (which fills fields the
    crawl lacks) import without rejects, and importing them all again changes nothing."""
    files = [CRAWL, BQP, LISTS / "danh-sach-tthc-BoTuPhap.xlsx"]
    with session_factory(db_url)() as s:
        first = {f.name: load(s, f) for f in files}
        for name, r in first.items():
            assert r.rejected == 0, (name, r.errors[:5])
        assert first[CRAWL.name].new == len(crawl_lines())
        assert first[BQP.name].new == len(bqp_lines())
        assert count(s) == len(crawl_lines()) + len(bqp_lines())
        filled = s.execute(select(func.count()).select_from(Procedure)
                           .where(Procedure.filled.is_not(None))).scalar_one()
        assert filled == sum(r.updated for name, r in first.items() if name.endswith(".xlsx"))
        assert filled > 0
        rev = catalog_revision(s)

        for f in files:
            r = load(s, f)
            assert (r.new, r.updated, r.rejected) == (0, 0, 0), (f.name, r.summary())
        assert catalog_revision(s) == rev

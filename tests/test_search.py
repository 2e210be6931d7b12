"""Retrieval over the whole national catalog (crawl + Bộ Quốc phòng + curated seed).

The index is built straight from the parsed exports (no database) once per module. The
floors below are the measured figures minus a small margin, so a change that makes search
worse fails here; the evaluation sets are read by path, never copied.
"""

from __future__ import annotations

import json
import random
import re
from collections import defaultdict
from pathlib import Path

import pytest

from bot.catalog.importers.load import parse_files
from bot.catalog.search import (
    STOPWORDS,
    CatalogIndex,
    IndexDoc,
    docs_from_records,
    expand,
    levels_of,
    strip_level,
    variant_of,
)
from bot.catalog.search_eval import NameBM25, evaluate, index_rank, load_cases
from bot.cli import main
from bot.text import fold, fold_words
from tests.exports import BQP, CRAWL, DATA

FAQ = DATA / "faq_dev.jsonl"
CITIZEN = DATA.parents[1] / "eval" / "citizen_dev.jsonl"

if not CRAWL.exists():
    pytest.skip("../shared data is not available", allow_module_level=True)


@pytest.fixture(scope="module")
def records() -> list[dict]:
    return parse_files([CRAWL, BQP])


@pytest.fixture(scope="module")
def index(records: list[dict]) -> CatalogIndex:
    return CatalogIndex(docs_from_records(records))


def test_faq_beats_the_name_baseline(index: CatalogIndex) -> None:
    cases, _ = load_cases(FAQ)
    ours = evaluate(index_rank(index), cases)
    base = evaluate(NameBM25(index.docs).rank, cases)
    assert ours.n == 400
    assert ours.top(1) >= 0.60 and ours.top(3) >= 0.78 and ours.top(10) >= 0.88
    assert ours.top(1) >= base.top(1) + 0.05
    assert ours.top(3) >= base.top(3) + 0.05
    assert ours.mrr > base.mrr


def test_citizen_questions_find_their_procedure(index: CatalogIndex) -> None:
    cases, skipped = load_cases(CITIZEN)
    m = evaluate(index_rank(index), cases)
    assert skipped > 0 and m.n == len(cases)
    assert m.top(1) >= 0.85 and m.top(3) >= 0.92


@pytest.mark.parametrize(("query", "codes"), [
    ("làm lại cccd", {"1.014064", "2.001194"}),
    ("lam lai the can cuoc bi mat", {"1.014064", "2.001194"}),
    ("xin giấy phép xây nhà ở", {"1.013225"}),
    ("cong chung giay to", {"2.000815"}),
    ("chứng thực bản sao bằng tốt nghiệp", {"2.000815"}),
    ("dang ki ket hon", {"1.000894"}),
    ("đăng kí tạm trú cho người thuê trọ", {"1.004194"}),
    ("cấp lại sổ đỏ bị mất", {"1.012786"}),
])
def test_fixed_sample(index: CatalogIndex, query: str, codes: set[str]) -> None:
    """Colloquial names, abbreviations and missing diacritics, written for this test."""
    results = index.search(query, limit=3)
    assert results and results[0].code in codes, [r.as_dict() for r in results]


def test_search_ignores_diacritics_and_case(index: CatalogIndex) -> None:
    rng = random.Random(3)
    for doc in rng.sample(index.docs, 40):
        name = doc.names[-1][0]
        top = index.search(name, limit=1)
        assert top, name
        assert index.search(fold(name), limit=1)[0].code == top[0].code, name
        assert index.search(name.upper(), limit=1)[0].code == top[0].code, name


def test_acronyms_are_learned_from_the_catalog(index: CatalogIndex) -> None:
    """An acronym of a catalog phrase expands to a catalog phrase with the same initials."""
    rng = random.Random(5)
    checked = 0
    for doc in rng.sample(index.docs, 200):
        words = fold_words(strip_level(doc.names[-1][0]), expand_teencode=False)
        spans = [words[i:i + 4] for i in range(len(words) - 3)
                 if not set(words[i:i + 4]) & STOPWORDS]
        if not spans:
            continue
        acronym = "".join(w[0] for w in spans[0])
        if acronym in index.known:
            continue
        expanded = index.query_words(acronym.upper())
        assert len(expanded) == 4 and "".join(w[0] for w in expanded) == acronym
        assert all(w in index.known for w in expanded)
        checked += 1
    assert checked >= 20


def generic_name(name: str) -> str:
    """The name without the level it is done at ("(thực hiện tại cấp tỉnh)", "tại cấp xã")."""
    name = re.sub(r"\([^)]*\)", " ", fold(name))
    name = re.sub(r"\b(thuc hien )?tai cap (xa|tinh|trung uong|bo)\b", " ", name)
    return " ".join(name.split())


def test_level_preference(index: CatalogIndex) -> None:
    """Same name at several levels: xã first unless the question names the level."""
    groups: dict[str, list] = defaultdict(list)
    for doc in index.docs:
        groups[generic_name(doc.names[-1][0])].append(doc)
    rank = {"xa": 0, "tinh": 1, "bo": 2, "khac": 3}
    right, wrong = 0, []
    for name, docs in groups.items():
        levels = {min(rank[lv] for lv in d.levels) for d in docs}
        if len(docs) < 2 or len(levels) < len(docs):
            continue
        codes = {d.code: min(rank[lv] for lv in d.levels) for d in docs}
        ranked = [r.code for r in index.search(name, limit=20, min_score=0) if r.code in codes]
        if ranked and codes[ranked[0]] == min(codes.values()):
            right += 1
        else:
            wrong.append(name)
    # A few variants differ in more than the level; the rest must follow the preference.
    assert right >= 50 and right >= 0.9 * (right + len(wrong)), wrong


def test_named_level_wins(index: CatalogIndex) -> None:
    results = index.search("cấp hộ chiếu phổ thông tại cấp trung ương", limit=5)
    assert results
    top = next(d for d in index.docs if d.code == results[0].code)
    assert "bo" in top.levels


def test_levels_of() -> None:
    assert levels_of("Cấp bộ, Cấp tỉnh") == {"bo", "tinh"}
    assert levels_of("Cấp xã, Cơ quan khác") == {"xa"}
    assert levels_of(None) == {"khac"}


def test_unrelated_text_finds_nothing(index: CatalogIndex) -> None:
    assert index.search("thời tiết hôm nay thế nào", limit=3) == []
    assert index.search("  ?? ", limit=3) == []


def test_eval_search_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                         capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path}/cat.sqlite3")
    data = tmp_path / "eval.jsonl"
    data.write_text("\n".join(json.dumps(x, ensure_ascii=False) for x in [
        {"question": "đăng ký kết hôn", "procedure_codes": ["1.000894"]},
        {"text": "dang ky khai sinh cho be", "procedures": ["1.001193"]},
        {"text": "xin chào", "procedures": []},
    ]), encoding="utf-8")
    assert main(["eval", "search", str(data), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["search"]["n"] == 2 and out["skipped_without_codes"] == 1
    assert out["search"]["top1"] == 1.0
    assert set(out["baseline_bm25_names"]) == {"n", "top1", "top3", "top10", "mrr"}

    data.write_text('{"question": "a", "procedure_codes": []}\n{oops\n', encoding="utf-8")
    assert main(["eval", "search", str(data)]) == 2
    assert "dòng 2" in capsys.readouterr().err


def test_variant_of() -> None:
    assert variant_of(fold_words("Thủ tục cấp lại thẻ ABTC")) == "cap lai"
    assert variant_of(fold_words("Gia hạn giấy phép")) == "gia han"
    assert variant_of(fold_words("Cấp giấy phép xây dựng")) is None


def test_long_question_means_the_base_procedure() -> None:
    """A long question about a paper that does not ask to reissue it means issuing it,
    even when the reissue's name shares more of the question's other words."""
    def doc(code: str, name: str) -> IndexDoc:
        return IndexDoc(code, name, ((name, 0.9),), levels=frozenset({"bo"}))

    index = CatalogIndex([
        doc("1", "Cấp giấy phép kinh doanh vận chuyển hàng không"),
        doc("2", "Cấp lại giấy phép kinh doanh vận chuyển hàng không cho doanh nghiệp, "
                 "hãng hàng không"),
        doc("3", "Đăng ký thành lập doanh nghiệp tư nhân"),
        doc("4", "Cấp giấy chứng nhận đủ điều kiện kinh doanh dịch vụ bảo vệ"),
    ])
    question = ("Doanh nghiệp hàng không muốn được cấp giấy phép kinh doanh vận chuyển hàng "
                "không thì cần chuẩn bị hồ sơ gì và đáp ứng điều kiện gì?")
    assert [r.code for r in index.search(question, limit=2)] == ["1", "2"]
    assert index.search("cấp lại giấy phép kinh doanh vận chuyển hàng không cho doanh "
                        "nghiệp bị mất thì làm thế nào, cần hồ sơ gì?", limit=1)[0].code == "2"


@pytest.mark.parametrize(("text", "words"), [
    ("làm lại HC", "lam lai ho chieu"),
    ("sổ hồng", "giay chung nhan quyen su dung dat"),
    ("so do", "giay chung nhan quyen su dung dat"),
    ("nhập hộ khẩu", "nhap thuong tru"),
    ("UBND xã", "uy ban nhan dan xa"),
    ("cmnd", "chung minh nhan dan"),
    ("gplx ko", "giay phep lai xe khong"),
])
def test_abbreviations_expand(text: str, words: str) -> None:
    assert " ".join(expand(fold_words(text))) == words

"""The official Q&A: loading, matching with a quote threshold, shortening, evaluation.

Fast: the e5 tests use a subset of the shipped Q&A, its vectors cached once per session in
a temporary file (plus the shipped snapshot when present). The messages below are our own
rewordings of rows of data/dvcqg/faq_kb.jsonl, not lines of any evaluation set.
"""

from __future__ import annotations

import argparse
import json
import logging
import unicodedata
from pathlib import Path

import pytest

from bot.embedding import DEFAULT_CACHE_PATHS, VectorCache
from bot.faq import FAQ_FILE, FaqHit, FaqIndex, load_faq, quote, shorten
from bot.faq.accents import AccentRestorer, accented_share
from bot.faq.evaluate import add_parser, cmd_eval_faq, evaluate_faq
from bot.faq.hybrid import HybridIndex, Passage
from bot.faq.matcher import default_restorer, for_abroad
from bot.faq.quote import LIMIT, clean

# Rows of the shipped file the e5 tests index: the targets of the rewordings below and
# neighbours on the same subjects (weapons, practising certificates, licences, time limits).
SUBSET = (20082, 19974, 13069, 14410, 20301, 19611, 19627, 15818, 15844, 15845, 20065, 13339,
          20255, 13332, 14463, 12649, 19465, 11486, 17950, 13542, 14313)
REWORDINGS = [  # (message, expected id)
    ("Những ai thì không được đăng ký nghĩa vụ quân sự?", 20082),
    ("Giấy phép kinh doanh dịch vụ mật mã dân sự có giá trị trong mấy năm?", 19974),
    ("giay phep kinh doanh mat ma dan su duoc bao nhieu nam", 19974),
    ("Bằng lái A1 công an cấp từ năm 1994 bị hỏng, muốn đổi sang bằng của ngành giao thông "
     "thì làm sao?", 13069),
    ("bang bao ho cua cong ty bi chay mat, xin cap lai can thu tuc gi", 14410),
]
SMALL_TALK = ["xin chào", "cảm ơn", "bạn là ai", "chao ban", "cam on nhe", "ok"]


@pytest.fixture(scope="session")
def entries():
    return load_faq()


@pytest.fixture(scope="session")
def restorer(entries):
    return default_restorer(entries)


@pytest.fixture(scope="session")
def vectors(tmp_path_factory):
    return VectorCache([tmp_path_factory.mktemp("vectors") / "passages.npz",
                        DEFAULT_CACHE_PATHS[1]])


@pytest.fixture(scope="session")
def index(entries, restorer, vectors):
    subset = [e for e in entries if e.id in SUBSET]
    assert len(subset) == len(SUBSET)
    return FaqIndex(subset, vectors, restorer)


# -- the shipped file -------------------------------------------------------------------

def test_shipped_file_is_a_normalised_snapshot(entries):
    assert FAQ_FILE.name == "faq_kb.jsonl" and FAQ_FILE.parent.name == "dvcqg"
    assert len(entries) == 2023
    ids = [e.id for e in entries]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    lines = FAQ_FILE.read_text(encoding="utf-8").splitlines()
    first = json.loads(lines[0])
    assert list(first) == ["id", "question", "ministry", "official_answer", "url"]
    for e in entries[:200]:
        assert unicodedata.is_normalized("NFC", e.question + e.answer + e.ministry)
        assert e.url.startswith("https://dichvucong.gov.vn/") and f"id={e.id}" in e.url
    assert (FAQ_FILE.parent / "README.md").read_text(encoding="utf-8").count("dichvucong.gov.vn")


def test_bad_lines_are_skipped_with_a_warning(tmp_path, caplog):
    good = {"id": 1, "question": "Hỏi?", "ministry": "Bộ Tư pháp", "official_answer": "Đáp.",
            "url": "https://dichvucong.gov.vn/p/home/dvc-chi-tiet-cau-hoi.html?id=1"}
    path = tmp_path / "faq.jsonl"
    path.write_text("\n".join([
        json.dumps(good, ensure_ascii=False),
        "{not json",
        json.dumps({"id": 2, "question": "Thiếu trả lời?"}, ensure_ascii=False),
        json.dumps({**good, "id": "ba"}, ensure_ascii=False),
        json.dumps({**good, "official_answer": "   "}, ensure_ascii=False),
        json.dumps(good, ensure_ascii=False),  # repeated id
        "[1, 2]",
        "",
        json.dumps({**good, "id": 3, "question": "Ho\u0309i?"}, ensure_ascii=False),  # NFD
    ]), encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="bot.faq.store"):
        got = load_faq(path)
    assert [e.id for e in got] == [1, 3]
    assert got[1].question == "Hỏi?"  # NFC
    assert len([r for r in caplog.records if "skipped" in r.getMessage()]) == 6
    assert "line 2" in caplog.text


def test_missing_file_gives_no_entries(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        assert load_faq(tmp_path / "nope.jsonl") == []
    assert "unreadable" in caplog.text


# -- diacritics restoration -------------------------------------------------------------

def test_restorer_puts_marks_back_from_its_corpus():
    r = AccentRestorer(["Thời hạn cấp hộ chiếu là bao lâu?", "Hồ sơ gồm những giấy tờ gì?",
                        "Hộ kinh doanh nộp hồ sơ ở đâu?", "huyện, thị xã, thành phố"])
    assert r.restore("ho chieu cap bao lau") == "hộ chiếu cấp bao lâu"
    assert r.restore("Ho so gom giay to gi?") == "Hồ sơ gồm giấy tờ gì?"  # case, punctuation
    # marked text keeps its syllables; only teencode is expanded
    assert r.restore("hồ sơ gồm giấy tờ j") == "hồ sơ gồm giấy tờ gì"
    assert accented_share("hồ sơ gồm giấy tờ gì") > 0.5 > accented_share("ho so gom")


# -- matching ---------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "expected"), REWORDINGS)
def test_reworded_question_is_quoted(index, text, expected):
    hits = index.match(text)
    assert hits[0].id == expected, [(h.id, round(h.score, 3)) for h in hits]
    assert hits[0].confident and 0.0 <= hits[0].score <= 1.0
    assert hits[0].score >= index.threshold


def test_accent_free_message_still_ranks_the_answer_first(index):
    # Without diacritics e5 sees a restored text and the row says "NVQS": the right answer
    # comes first but may stay below the quote threshold (README "Official Q&A").
    hits = index.match("nhung ai khong duoc dang ky nghia vu quan su")
    assert hits[0].id == 20082
    assert hits[0].score > 2 * hits[1].score


@pytest.mark.parametrize("text", [*SMALL_TALK, "đăng ký khai sinh cần giấy tờ gì",
                                  "thời tiết hôm nay thế nào"])
def test_nothing_is_quoted_below_the_threshold(index, text):
    hits = index.match(text)
    assert not any(h.confident for h in hits), [(h.id, round(h.score, 3)) for h in hits]
    assert all(0.0 <= h.score < index.threshold for h in hits)


def test_answers_for_people_abroad_need_the_message_to_say_so(index, entries):
    consular = next(e for e in entries if e.id == 14313)  # chứng thực chữ ký, Bộ Ngoại giao
    assert for_abroad(consular)
    home = index.match("thủ tục chứng thực chữ ký gồm những giấy tờ gì")
    assert not any(h.confident and h.id == 14313 for h in home)
    abroad = index.match("ở nước ngoài muốn chứng thực chữ ký tại đại sứ quán cần giấy tờ gì")
    assert abroad[0].id == 14313 and abroad[0].confident


def test_lexical_only_index_without_vectors():
    idx = HybridIndex([Passage("a", ("Thời hạn cấp giấy phép là bao lâu?",)),
                       Passage("b", ("Hồ sơ xin cấp giấy phép gồm những gì?",))])
    ranked = idx.rank("giay phep cap trong bao lau")
    assert ranked[0].key == "a" and ranked[0].semantic == 0.0
    assert idx.rank("") == [] and idx.rank("xin chao")[0].score < 0.3


# -- quoting ----------------------------------------------------------------------------

def _hit(answer: str, ministry: str = "Bộ Tư pháp", id_: int = 7) -> FaqHit:
    url = f"https://dichvucong.gov.vn/p/home/dvc-chi-tiet-cau-hoi.html?id={id_}&row_limit=1"
    return FaqHit(id_, "Hỏi?", ministry, url, answer, 0.9, True)


def test_quote_attributes_the_ministry_and_links_the_answer():
    text = quote(_hit("Trả lời: Thời hạn giải quyết là 05 ngày làm việc."))
    assert text.splitlines() == [
        "Theo trả lời chính thức của Bộ Tư pháp trên Cổng Dịch vụ công quốc gia:",
        "«Thời hạn giải quyết là 05 ngày làm việc.»",
        "Xem đầy đủ: https://dichvucong.gov.vn/p/home/dvc-chi-tiet-cau-hoi.html?id=7&row_limit=1",
    ]
    assert "(Bộ TTTT cũ)" in quote(_hit("Có.", "Bộ Khoa học và Công nghệ ( Bộ TTTT cũ)"))


def test_shortening_keeps_whole_sentences():
    sentences = [f"Câu thứ {i} nói về một bước của thủ tục và giấy tờ cần nộp kèm theo hồ sơ."
                 for i in range(1, 30)]
    answer = "Xin chào bạn. " + " ".join(sentences)
    short = shorten(answer)
    assert len(short) <= LIMIT and short.endswith(" …")
    body = short.removesuffix(" …")
    assert body.startswith("Câu thứ 1 ")  # the greeting is cut
    kept = [s.strip() + "." for s in body.split(".") if s.strip()]
    assert kept == sentences[: len(kept)] and len(kept) >= 5
    quoted = quote(_hit(answer))
    assert quoted.endswith("?id=7&row_limit=1") and "«Câu thứ 1" in quoted


def test_shortening_boilerplate_glue_and_long_references():
    answer = ("- Căn cứ pháp lý: Thông tư số 1/2020/TT-BNG.\n- Trả lời: Theo quy định tại khoản 2 "
              "Điều 5 Nghị định số 10/2020/NĐ-CP ngày 01/01/2020 của Chính phủ quy định chi tiết "
              "một số điều của Luật về các trường hợp, điều kiện và trình tự, thủ tục cấp giấy "
              "tờ thì hồ sơ gồm:a) Tờ khai;b) Bản sao giấy tờ tùy thân.")
    assert clean(answer).startswith("Theo quy định tại khoản 2")  # legal-basis block cut
    assert "gồm: a) Tờ khai; b) Bản" in clean(answer)  # glued items separated
    short = shorten(answer, limit=150)
    assert "Nghị định số 10/2020/NĐ-CP … thì hồ sơ gồm:" in short
    assert "ngày 01/01/2020" not in short and len(short) <= 150
    assert shorten("Mức thu 1.000.000 đồng.") == "Mức thu 1.000.000 đồng."  # numbers intact


def test_every_shipped_answer_shortens_within_the_limit(entries):
    for e in entries:
        short = shorten(e.answer)
        assert 0 < len(short) <= LIMIT, e.id


# -- evaluation -------------------------------------------------------------------------

def test_evaluate_faq_reports_hits_and_false_quotes(index, tmp_path):
    path = tmp_path / "cases.jsonl"
    lines = [{"text": t, "faq_id": i} for t, i in REWORDINGS]
    lines.append({"text": REWORDINGS[0][0], "faq_ids": [20082, 20065], "diacritics": True})
    lines += [{"text": t} for t in SMALL_TALK[:3]]
    path.write_text("\n".join(json.dumps(x, ensure_ascii=False) for x in lines),
                    encoding="utf-8")
    report = evaluate_faq(path, index)
    assert report["n"] == len(REWORDINGS) + 1
    assert report["top1"] == report["top3"] == report["cited"] == 1.0
    assert report["confident_wrong"] == 0.0
    assert report["with_diacritics"]["n"] + report["without_diacritics"]["n"] == report["n"]
    assert report["without_diacritics"]["n"] == 2
    assert report["no_answer_expected"] == {"n": 3, "quoted": 0.0}


def test_eval_faq_subcommand(index, tmp_path, monkeypatch, capsys):
    parser = argparse.ArgumentParser()
    group = parser.add_subparsers(dest="eval_command")
    add_parser(group)
    path = tmp_path / "cases.jsonl"
    path.write_text(json.dumps({"text": REWORDINGS[0][0], "faq_id": REWORDINGS[0][1]},
                               ensure_ascii=False), encoding="utf-8")
    args = parser.parse_args(["faq", str(path), "--json"])
    monkeypatch.setattr("bot.faq.evaluate.default_index", lambda: index)
    assert args.func(args, None) == 0
    assert json.loads(capsys.readouterr().out)["cited"] == 1.0
    args = parser.parse_args(["faq", str(path)])
    assert cmd_eval_faq(args, None) == 0
    assert "top-1" in capsys.readouterr().out
    (tmp_path / "bad.jsonl").write_text('{"text": 5}\n', encoding="utf-8")
    args = parser.parse_args(["faq", str(tmp_path / "bad.jsonl")])
    assert cmd_eval_faq(args, None) == 2
    assert "dòng 1" in capsys.readouterr().err


def test_default_paths_are_in_the_checkout():
    assert Path(FAQ_FILE).is_file()

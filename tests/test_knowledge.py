"""General-knowledge entries: the data file's validation, matching, and the chat text.

The questions below are written for these tests (with and without diacritics) and differ
from the example questions in data/knowledge/general.yaml, so they show that the matcher
generalises rather than that it recalls its examples.
"""

from __future__ import annotations

from datetime import date

import pytest
import yaml

from bot.embedding import DEFAULT_CACHE_PATHS, VectorCache
from bot.faq.matcher import default_restorer
from bot.knowledge import (
    KNOWLEDGE_FILE,
    KnowledgeError,
    KnowledgeIndex,
    load_knowledge,
    parse_knowledge,
    render,
)

ASKED = {  # entry id → a question with diacritics, the same without
    "ha-noi-phi-truc-tuyen-0-dong": ("Ở Hà Nội, nộp hồ sơ trên mạng có phải trả lệ phí không?",
                                     "o ha noi nop tren mang co phai tra le phi khong"),
    "so-ho-khau-het-gia-tri": ("Tôi lỡ làm mất sổ hộ khẩu, có cần xin cấp lại không?",
                               "toi lo lam mat so ho khau co can xin cap lai khong"),
    "chinh-quyen-hai-cap": ("Bây giờ không còn huyện thì làm giấy tờ ở đâu?",
                            "bay gio khong con huyen thi lam giay to o dau"),
    "nop-ho-so-truc-tuyen": ("Tôi muốn tự nộp hồ sơ qua mạng, các bước ra sao?",
                             "toi muon tu nop ho so qua mang, cac buoc ra sao"),
    "tai-khoan-vneid": ("Tài khoản VNeID mức 2 đăng ký ở đâu?",
                        "tai khoan vneid muc 2 dang ky o dau"),
}
NOT_KNOWLEDGE = ["đăng ký khai sinh cần giấy tờ gì", "dang ky khai sinh can giay to gi",
                 "làm hộ chiếu mất bao lâu", "lệ phí cấp căn cước bao nhiêu",
                 "xin chào", "cảm ơn", "bạn là ai", "cam on ban nhe"]


@pytest.fixture(scope="session")
def entries():
    return load_knowledge()


@pytest.fixture(scope="session")
def index(entries, tmp_path_factory):
    vectors = VectorCache([tmp_path_factory.mktemp("kvectors") / "passages.npz",
                           DEFAULT_CACHE_PATHS[1]])
    return KnowledgeIndex(entries, vectors, default_restorer())


def _entry(**over):
    base = {"id": "a", "title": "Tiêu đề", "questions": ["Hỏi một?", "hoi hai"],
            "answer": "Trả lời.", "sources": [{"title": "Luật", "document": "1/2020/QH14"}],
            "reviewed": "2026-12-07"}
    base.update(over)
    return {k: v for k, v in base.items() if v is not None}


# -- the data file ----------------------------------------------------------------------

def test_shipped_file_is_valid_and_reviewed(entries):
    assert KNOWLEDGE_FILE.parent.name == "knowledge"
    raw = yaml.safe_load(KNOWLEDGE_FILE.read_text(encoding="utf-8"))
    assert list(raw) == ["knowledge"]  # never a key Rasa would read as training data
    assert {e.id for e in entries} == set(ASKED)
    for e in entries:
        assert len(e.questions) >= 3 and e.sources and e.reviewed <= date.today()
        assert 100 < len(e.answer) < 800
        assert all(s.url.startswith("https://") or s.document for s in e.sources)
    law = next(e for e in entries if e.id == "so-ho-khau-het-gia-tri")
    assert "31/12/2022" in law.answer and any("68/2020/QH14" in s.document for s in law.sources)


def test_valid_document_parses():
    (e,) = parse_knowledge({"knowledge": [_entry()]})
    assert e.id == "a" and e.questions == ("Hỏi một?", "hoi hai")
    assert e.reviewed == date(2026, 12, 7) and e.sources[0].label() == "Luật (1/2020/QH14)"


@pytest.mark.parametrize(("doc", "message"), [
    ({"rules": []}, "khóa gốc `knowledge:`"),
    ({"knowledge": [_entry()], "nlu": []}, "khóa gốc lạ nlu"),
    ({"knowledge": [_entry(answer=None)]}, "mục 1 (a): thiếu `answer`"),
    ({"knowledge": [_entry(title="  ")]}, "mục 1 (a): thiếu `title`"),
    ({"knowledge": [_entry(questions=["một"])]}, "mục 1 (a): `questions`"),
    ({"knowledge": [_entry(sources=[])]}, "mục 1 (a): `sources`"),
    ({"knowledge": [_entry(sources=[{"title": "X"}])]}, "mục 1 (a), nguồn 1: cần `url`"),
    ({"knowledge": [_entry(sources=[{"title": "X", "url": "ftp://x"}])]}, "https://"),
    ({"knowledge": [_entry(reviewed="7/12/2026")]}, "mục 1 (a): `reviewed`"),
    ({"knowledge": [_entry(), _entry()]}, "mục 2 (a): `id` trùng"),
    ({"knowledge": [_entry(extra=1)]}, "mục 1 (a): trường lạ extra"),
    ({"knowledge": ["text"]}, "mục 1: cần một mapping"),
])
def test_validation_names_the_entry_and_field(doc, message):
    with pytest.raises(KnowledgeError) as err:
        parse_knowledge(doc, "general.yaml")
    assert message in str(err.value)


def test_every_problem_is_reported_at_once(tmp_path):
    path = tmp_path / "k.yaml"
    path.write_text(yaml.safe_dump({"knowledge": [_entry(id="x", answer=None),
                                                  _entry(id="y", reviewed="hôm qua")]},
                                   allow_unicode=True), encoding="utf-8")
    with pytest.raises(KnowledgeError) as err:
        load_knowledge(path)
    assert "k.yaml, mục 1 (x): thiếu `answer`" in str(err.value)
    assert "k.yaml, mục 2 (y): `reviewed`" in str(err.value)
    path.write_text("knowledge: [", encoding="utf-8")
    with pytest.raises(KnowledgeError, match="không phải YAML"):
        load_knowledge(path)
    with pytest.raises(KnowledgeError, match="không đọc được"):
        load_knowledge(tmp_path / "missing.yaml")


# -- matching ---------------------------------------------------------------------------

@pytest.mark.parametrize(("entry_id", "text"),
                         [(k, q) for k, pair in ASKED.items() for q in pair])
def test_each_entry_is_found_by_a_natural_question(index, entry_id, text):
    hit = index.match(text)[0]
    assert hit.entry.id == entry_id and hit.confident, round(hit.score, 3)


@pytest.mark.parametrize("text", NOT_KNOWLEDGE)
def test_procedure_questions_and_small_talk_get_no_knowledge_answer(index, text):
    assert not any(h.confident for h in index.match(text, limit=3))


def test_render_gives_the_answer_and_its_sources(entries):
    e = next(e for e in entries if e.id == "so-ho-khau-het-gia-tri")
    text = render(e)
    assert text.startswith(e.answer)
    assert "\nNguồn: Luật Cư trú 2020, khoản 3 Điều 38 (68/2020/QH14);" in text
    assert text.endswith(".")

"""The Underthesea tokenizer: exact offsets, normalised lemmas, protected codes."""

import unicodedata

import pytest
from rasa.nlu.constants import TOKENS_NAMES
from rasa.shared.nlu.constants import TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from bot.nlu.segment import segment
from bot.nlu.tokenizer import VietnameseTokenizer


@pytest.fixture(scope="module")
def tokenizer() -> VietnameseTokenizer:
    return VietnameseTokenizer(VietnameseTokenizer.get_default_config())


def _tokens(tokenizer: VietnameseTokenizer, text: str) -> list:
    msg = Message(data={TEXT: text})
    tokenizer.process([msg])
    return msg.get(TOKENS_NAMES[TEXT])


def test_default_config_has_the_four_tokenizer_keys() -> None:
    cfg = VietnameseTokenizer.get_default_config()
    for key in ("intent_tokenization_flag", "intent_split_symbol", "token_pattern",
                "prefix_separator_symbol"):
        assert key in cfg


@pytest.mark.parametrize("text", [
    "đăng ký khai sinh cho con cần giấy tờ gì",
    "làm  lại   căn cước,  mất bao lâu?",
    "Thủ tục cấp hộ chiếu phổ thông ở trong nước",
    unicodedata.normalize("NFD", "Đăng ký tạm trú cho người thuê trọ, hoà giải"),
    "dang ky khai sinh cho con can giay to gi",
])
def test_offsets_point_at_the_original_text(tokenizer: VietnameseTokenizer, text: str) -> None:
    tokens = _tokens(tokenizer, text)
    assert tokens
    for tok in tokens:
        original = text[tok.start:tok.end]
        # the token text is the NFC form of exactly the characters it covers
        assert " ".join(unicodedata.normalize("NFC", original).split()) == tok.text or \
            unicodedata.normalize("NFC", original).replace("oà", "òa") == tok.text
    starts = [t.start for t in tokens]
    assert starts == sorted(starts)


def test_compound_words_and_lemmas(tokenizer: VietnameseTokenizer) -> None:
    tokens = _tokens(tokenizer, "Đăng ký khai sinh")
    assert [t.text for t in tokens] == ["Đăng ký", "khai sinh"]
    assert [t.lemma for t in tokens] == ["dang_ky", "khai_sinh"]


def test_text_without_diacritics_gets_the_same_lemmas(tokenizer: VietnameseTokenizer) -> None:
    with_marks = [t.lemma for t in _tokens(tokenizer, "đăng ký khai sinh mất bao lâu")]
    without = [t.lemma for t in _tokens(tokenizer, "dang ky khai sinh mat bao lau")]
    assert with_marks == without == ["dang_ky", "khai_sinh", "mat", "bao_lau"]


def test_teencode_is_expanded_in_lemma(tokenizer: VietnameseTokenizer) -> None:
    lemmas = [t.lemma for t in _tokens(tokenizer, "lam cccd ko dc")]
    assert "khong" in lemmas and "duoc" in lemmas


def test_receipt_code_stays_one_token(tokenizer: VietnameseTokenizer) -> None:
    text = "hồ sơ mã 000.18.07.H31-250729-0004 đến đâu rồi"
    tokens = _tokens(tokenizer, text)
    code = [t for t in tokens if "H31" in t.text]
    assert len(code) == 1
    assert text[code[0].start:code[0].end] == "000.18.07.H31-250729-0004"


def test_entity_annotations_align_with_tokens(tokenizer: VietnameseTokenizer) -> None:
    text = "cần giấy tờ gì để làm lại cccd"
    start = text.index("làm lại cccd")
    tokens = _tokens(tokenizer, text)
    assert start in {t.start for t in tokens}
    assert len(text) in {t.end for t in tokens}


def test_training_data_tokenized(tokenizer: VietnameseTokenizer) -> None:
    msg = Message(data={TEXT: "xin chào", "intent": "greet"})
    tokenizer.process_training_data(TrainingData([msg]))
    assert [t.lemma for t in msg.get(TOKENS_NAMES[TEXT])] == ["xin_chao"] or \
        [t.lemma for t in msg.get(TOKENS_NAMES[TEXT])] == ["xin", "chao"]


def test_empty_and_punctuation_only() -> None:
    assert segment("") == []
    assert [w.text for w in segment("?!")] == ["?", "!"]

"""Normalisation: NFC, tone placement, accent folding, teencode and PII masking."""

import unicodedata

from bot.text import fold, fold_words, mask_pii, nfc, normalize, strip_accents


def test_fold_is_length_preserving_and_maps_d_stroke() -> None:
    text = "Đăng ký khai sinh ĐĂNG"
    assert fold(text) == "dang ky khai sinh dang"
    assert len(fold(text)) == len(text)


def test_nfd_input_folds_like_nfc() -> None:
    nfd = unicodedata.normalize("NFD", "cấp lại căn cước")
    assert nfd != nfc(nfd)
    assert fold(nfd) == fold("cấp lại căn cước") == "cap lai can cuoc"


def test_tone_placement_normalised_but_qu_untouched() -> None:
    assert normalize("hoà thuỷ Uỷ ban") == "hòa thủy Ủy ban"
    assert normalize("quý khách") == "quý khách"
    # Closed syllables carry the mark on the second vowel in both styles: left alone.
    assert normalize("toàn bộ, Hoàng, huỳnh, khoẻ.") == "toàn bộ, Hoàng, huỳnh, khỏe."


def test_strip_accents_keeps_one_char_per_char() -> None:
    s = "Giấy phép lái xe quốc tế"
    assert strip_accents(s) == "Giay phep lai xe quoc te"


def test_teencode_expansion() -> None:
    assert fold_words("làm cccd ko dc hả") == ["lam", "cccd", "khong", "duoc", "ha"]
    assert fold_words("phí bn vậy") == ["phi", "bao", "nhieu", "vay"]


def test_mask_pii_hides_citizen_id_and_phone() -> None:
    masked = mask_pii("CCCD của tôi 001203004567, sđt 0912345678, +84987654321")
    assert "001203004567" not in masked and "0912345678" not in masked
    assert "84987654321" not in masked
    assert "001******567" in masked


def test_teencode_only_in_words_typed_without_marks() -> None:
    """"hồng", "hỏng" fold to "hong" like the teencode for "không", but are real words."""
    from bot.nlu.segment import fold_word

    assert fold_words("sổ hồng bị hư hỏng") == ["so", "hong", "bi", "hu", "hong"]
    assert fold_words("ko dc hong") == ["khong", "duoc", "khong"]
    assert fold_words("đc") == ["duoc"]
    assert fold_word("hư hỏng") == "hu_hong" and fold_word("ko") == "khong"

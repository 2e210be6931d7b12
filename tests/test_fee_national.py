"""What bot.fees.national reads from national fee cells beyond their amount.

Every case is a real fee cell ("fee_text") or channel description ("note") of the portal
crawl (../shared/data/dvcqg/procedures_2026-06.jsonl.gz) or of the curated seed
(data/catalog/procedures.yaml), copied whole or as a short excerpt; the comment names the
procedure code and the channel it comes from.
"""

from __future__ import annotations

from datetime import date

import pytest

from bot.catalog.importers.cells import parse_fee
from bot.fees.national import (
    Exemption,
    Reduction,
    council_sets_fee,
    exemptions,
    reductions,
    standard_amount,
)

# 1.014064 (online): cấp lại thẻ căn cước, two dated clauses.
CAN_CUOC = (
    "70,000 Việt Nam Đồng(- Cấp lại thẻ căn cước đối với các trường hợp quy định tại khoản 2 "
    "Điều 24 Luật Căn cước: 70.000 đồng/thẻ căn cước. Kể từ ngày 01/01/2025 đến hết ngày "
    "31/12/2025, mức thu lệ phí khi công dân nộp hồ sơ cấp đổi, cấp lại thẻ căn cước theo "
    "hình thức trực tuyển bằng 50% mức thu lệ phí quy định. - Kể từ ngày 01/7/2025 đến hết "
    "ngày 31/12/2026 mức thu lệ phí cấp đổi, cấp lại thẻ căn cước bằng 50% mức thu nêu trên "
    "theo quy định tại Thông tư số 64/2025/TT-BTC ngày 30/6/2025 của Bộ Tài chính.)"
)
# 1.001258 (online): giấy thông hành, an amount "áp dụng đến hết ngày 31/12/2024".
THONG_HANH = (
    "40,000 Việt Nam Đồng(40.000đ/giấy thông hành (áp dụng đến hết ngày 31/12/2024 theo "
    "Thông tư số 43/2024/TT-BTC của Bộ Tài chính).)"
)
# 1.000688 (online): the reduced amount stated with its window.
LUAT_SU = (
    "800,000 Việt Nam Đồng(áp dụng mức phí 400.000 đồng/hồ sơ kể từ ngày 01/7/2025 đến hết "
    "ngày 31/12/2026 theo Thông tư số 64/2025/TT-BTC)"
)
# 2.001199 (post): 50% of a named tariff, no period stated.
DKDN = (
    "100,000 Việt Nam Đồng(- Lệ phí đăng ký doanh nghiệp: Bằng 50% mức thu lệ phí quy định "
    "tại điểm 1 Biểu phí, lệ phí đăng ký doanh nghiệp ban hành kèm theo Thông tư số "
    "47/2019/TT-BTC (Thông tư số 64/2025/TT-BTC ngày 30 tháng 6 năm 2025 của Bộ Tài chính "
    "quy định mức thu, miễn một số khoản phí, lệ phí nhằm hỗ trợ cho doanh nghiệp, người dân))"
)
# 1.000110 (online): council marker and an exemption of named groups.
HO_TICH = (
    "Miễn phí(Mức lệ phí cụ thể do Hội đồng nhân dân tỉnh, thành phố trực thuộc Trung ương "
    "quyết định. Miễn lệ phí cho người thuộc gia đình có công với cách mạng; người thuộc hộ "
    "nghèo; người khuyết tật. Phí cấp bản sao Giấy khai sinh (nếu có yêu cầu) thực hiện theo "
    "quy định tại Thông tư số 281/2016/TT-BTC ngày 14/11/2016 của Bộ Tài chính.)"
)
# 1.000254 (online): a dated waiver for everyone.
HANG_KHONG = ("5,000,000 VNĐ((Miễn kể từ ngày 07/4/2026 đến 30/6/2026 theo Thông tư "
              "40/2026/TT-BTC))")
# 1.004286 (post): two components, the dated waiver glued to the second one.
SAT_HACH = (
    "400,000 VNĐ( Đồng (Sát hạch lý thuyết cấp lại giấy phép theo thời hạn, gia hạn, bổ "
    "sung năng định)  Phí: 1700000 Đồng (Sát hạch thực hành) Miễn phí từ ngày 07/4/2026 "
    "đến 30/6/2026 theo quy định tại Thông tư 40/2026/TT-BTC)"
)
# 1.004465 (post): "giảm 20%" with the resulting amount, under the portal's "Miễn phí".
GIAM_20 = (
    "Miễn phí(Mức phí kể từ ngày 01/7/2024 đến hết ngày 31/12/2024 theo quy định tại Thông tư "
    "số 43/2024/TT-BTC Mức phí giảm 20%: 1.600.000)"
)


def R(channel: str, percent: float | None, amount: int | None, valid_from: date | None,
      valid_to: date | None, legal_basis: str | None) -> tuple:
    return (channel, percent, amount, valid_from, valid_to, legal_basis)


def key(r: Reduction) -> tuple:
    return (r.channel, r.percent, r.amount, r.valid_from, r.valid_to, r.legal_basis)


# --- reductions --------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    # 1.014064: online 50 % in 2025, then everyone 50 % to the end of 2026 (64/2025).
    (CAN_CUOC, [R("online", 50.0, None, date(2025, 1, 1), date(2025, 12, 31), None),
                R("any", 50.0, None, date(2025, 7, 1), date(2026, 12, 31), "64/2025/TT-BTC")]),
    # 1.001258: an explicit amount with a last day only.
    (THONG_HANH, [R("any", None, 40000, None, date(2024, 12, 31), "43/2024/TT-BTC")]),
    # 1.000688: "áp dụng mức phí 400.000 đồng/hồ sơ kể từ … đến hết …".
    (LUAT_SU, [R("any", None, 400000, date(2025, 7, 1), date(2026, 12, 31),
                 "64/2025/TT-BTC")]),
    # 3.000348 (online): an online rate among two amounts of the same cell.
    ("Miễn phí(Lệ phí cấp giấy phép lái xe: 135.000 đồng/lần. Trường hợp tổ chức, cá nhân nộp "
     "hồ sơ theo hình thức trực tuyến: Kể từ ngày 01/12/2023 đến hết ngày 31/12/2025, áp dụng "
     "mức thu lệ phí là 115.000 đồng/lần cấp.)",
     [R("online", None, 115000, date(2023, 12, 1), date(2025, 12, 31), None)]),
    # 1.000254: "Miễn kể từ ngày …" is a share paid of 0, not an amount.
    (HANG_KHONG, [R("any", 0.0, None, date(2026, 4, 7), date(2026, 6, 30),
                    "40/2026/TT-BTC")]),
    # 1.004465: "giảm 20%" → 80 % paid, and the amount it states.
    (GIAM_20, [R("any", 80.0, 1600000, date(2024, 7, 1), date(2024, 12, 31),
                 "43/2024/TT-BTC")]),
    # 1.005319 (online): "ngày 01 tháng 7 năm 2025" and a ";"-separated standard rate.
    ("50,000 VNĐ(50.000 đồng/CCHN (theo quy định tại Thông tư số 101/2020/TT-BTC ngày "
     "23/11/2020 của Bộ Tài chính quy định mức thu, chế độ thu, nộp, quản lý phí, lệ phí trong "
     "công tác thú y); 25.000 đồng/CCHN (áp dụng từ kể từ ngày 01 tháng 7 năm 2025 đến hết "
     "ngày 31 tháng 12 năm 2026 theo quy định tại Thông tư 64/2025/TT-BTC ngày 30/6/2025 của "
     "Bộ Tài chính quy định mức thu, miễn một số khoản phí, lệ phí nhằm hỗ trợ cho doanh "
     "nghiệp, người dân.))",
     [R("any", None, 25000, date(2025, 7, 1), date(2026, 12, 31), "64/2025/TT-BTC")]),
    # 2.000438 (online): "01/07/2025" with a leading zero, "bằng 50% mức phí nêu trên".
    ("70,000,000 Việt Nam Đồng((Từ ngày 01/07/2025 đến hết ngày 31/12/2026, mức lệ phí bằng "
     "50% mức phí nêu trên theo quy định tại Thông tư 64/2025/TT-BTC ngày 30/06/2025 của Bộ "
     "trưởng Bộ Tài chính quy định mức thu, miễn một số khoản phí, lệ phí nhằm hỗ trợ cho "
     "doanh nghiệp, người dân.))",
     [R("any", 50.0, None, date(2025, 7, 1), date(2026, 12, 31), "64/2025/TT-BTC")]),
    # 1.009523 (in_person): the window's figure is the "+ …" item right after it.
    ("Miễn phí(* Theo quy định tại Thông tư số 25/2022/TT-BTC ngày 28/4/2022. + 06 triệu "
     "đồng/Giấy chứng nhận. * Theo quy định tại  Thông tư 64/2025/TT-BTC ngày 30/6/2025  (kể "
     "từ ngày 01/7/2025 đến hết ngày 31/12/2026). + 03 triệu đồng/Giấy chứng nhận. * Hoặc "
     "theo quy định hiện hành về mức thu, chế độ thu, nộp, quản lý và sử dụng phí, lệ phí "
     "trong lĩnh vực chứng khoán)",
     [R("any", None, 3000000, date(2025, 7, 1), date(2026, 12, 31), "64/2025/TT-BTC")]),
    # 1.000757 (in_person) seed: fee text and description state the same change → once.
    (CAN_CUOC + " Từ 01/7/2025 đến hết 31/12/2026 lệ phí cấp đổi, cấp lại thẻ căn cước chỉ "
     "thu 50% mức này (Thông tư 64/2025/TT-BTC).",
     [R("online", 50.0, None, date(2025, 1, 1), date(2025, 12, 31), None),
      R("any", 50.0, None, date(2025, 7, 1), date(2026, 12, 31), "64/2025/TT-BTC")]),
])
def test_reductions(text: str, expected: list[tuple]) -> None:
    assert [key(r) for r in reductions(text)] == expected


@pytest.mark.parametrize("text", [
    None,
    "",
    "   ",
    # 2.001199: 50 % of a tariff, but no period: the document's date is not a window.
    DKDN,
    # 1.000312 (post): a window without any figure.
    "Miễn phí(Mức phí kể từ ngày 01/7/2025 đến hết ngày 31/12/2026 theo quy định tại Thông tư "
    "số 64/2025/TT-BTC: ngày 30/6/2025 của Bộ trưởng Bộ Tài chính quy định mức thu , miễn một "
    "số khoản phí, lệ phí nhằm hỗ trợ doanh nghiệp, người dân)",
    # 1.003593 (online): an amount with a first day only is a tariff's entry into force.
    "Miễn phí(Nộp 150.000 đồng + (số tấn thủy sản x 15.000 đồng/tấn); Tối đa 700.000 đồng/lần "
    "theo Thông tư số 118/2018/TT-BTC ngày 28/11/2018 (thực hiện từ ngày 15/01/2019))",
    # 1.001471 (online): only the date a circular was signed.
    "200,000 Việt Nam Đồng(200.000 đồng/ hộ chiếu. Trường hợp cấp lại do bị hỏng hoặc bị mất: "
    "400.000đ/hộ chiếu (Thông tư số 25/2021/TT-BTC ngày 07/4/2021 của Bộ Tài chính).)",
    # 1.001456 (online): two candidate amounts for one window.
    "160,000 Việt Nam Đồng(+ 160.000/hộ chiếu, trường hợp cấp lại do bị hư hỏng hoặc bị mất: "
    "320.000đ/hộ chiếu (áp dụng đến hết ngày 31/12/2023 theo Thông tư số 44/2023/TT-BTC ngày "
    "29/6/2023 của Bộ tài chính).)",
    # 1.001280 (in_person): "25.000.000đ" for a 50.000 đ pass is a typo, not a reduction.
    "50,000 Việt Nam Đồng(25.000.000đ/giấy thông hành (áp dụng đến hết ngày 31/12/2026 theo "
    "Thông tư số 64/2025/TT-BTC ngày 30/6/2025 của Bộ Tài chính).)",
    # 1.003976 (in_person): "được giảm 50%" without a date is an exemption, not a reduction.
    "9,000,000 Việt Nam Đồng(- Trường hợp nhận hai trẻ em trở lên là anh chị em ruột làm con "
    "nuôi thì từ trẻ em thứ hai trở đi được giảm 50% mức lệ phí đăng ký nuôi con nuôi nước "
    "ngoài.)",
    # 1.000110: exemptions and the council, nothing dated.
    HO_TICH,
])
def test_no_reduction(text: str | None) -> None:
    assert reductions(text) == []


def test_reduction_text_is_the_cleaned_clause() -> None:
    first, second = reductions(CAN_CUOC)
    assert first.text == (
        "Kể từ ngày 01/01/2025 đến hết ngày 31/12/2025, mức thu lệ phí khi công dân nộp hồ sơ "
        "cấp đổi, cấp lại thẻ căn cước theo hình thức trực tuyển bằng 50% mức thu lệ phí quy "
        "định.")
    assert second.text.startswith("Kể từ ngày 01/7/2025 đến hết ngày 31/12/2026")
    # 1.004286: the glued table cell after the bracket is not part of the clause.
    glued = ("200,000 VNĐ(đồng/lần/người (Miễn phí từ ngày 07/4/2026 đến 30/6/2026 theo quy "
             "định tại Thông tư 40/2026/TT-BTC)04 ngày, kể từ ngày nhận được hồ sơ hợp lệ.")
    (r,) = reductions(glued)  # 1.004413 (online)
    assert r.text == ("Miễn phí từ ngày 07/4/2026 đến 30/6/2026 theo quy định tại Thông tư "
                      "40/2026/TT-BTC")
    assert isinstance(r, Reduction)


# --- standard amount ---------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    (CAN_CUOC, 70000),  # 1.014064: only the "%" clauses made parse_fee give up
    (LUAT_SU, 800000),  # 1.000688: the 400.000 đ is the reduced rate
    (DKDN, None),  # 2.001199: a percentage of an unstated tariff stays unknown
    (SAT_HACH, None),  # 1.004286: cutting the waiver would hide the 1.700.000 đ component
    (THONG_HANH, None),  # 1.001258: the head states the reduced amount, not the standard
    (GIAM_20, None),  # 1.004465: the "Miễn phí" left over is the portal's placeholder
    # 1.001280 (online): no reduction at all: parse_fee's own answer.
    ("50,000 Việt Nam Đồng(50.000đ/giấy thông hành (Thông tư số 25/2021/TT-BTC ngày 07/4/2021 "
     "của Bộ Tài chính).)", 50000),
    (None, None),
    ("", None),
])
def test_standard_amount(text: str | None, expected: int | None) -> None:
    assert standard_amount(text) == expected


def test_standard_amount_recovers_what_parse_fee_refuses() -> None:
    assert parse_fee(CAN_CUOC) is None
    assert standard_amount(CAN_CUOC) == 70000
    assert parse_fee(DKDN) is None and standard_amount(DKDN) is None


# --- council -----------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    (HO_TICH, True),  # 1.000110: "do Hội đồng nhân dân tỉnh, … quyết định"
    ("Miễn phí(Theo quy định của Hội đồng nhân dân cấp tỉnh)", True),  # 1.013225
    # 1.004979 (online)
    ("Miễn phí(Mức lệ phí (nếu có) theo quyết định của Hội đồng nhân dân cấp tỉnh.)", True),
    # 2.000575 (online) seed note: the abbreviation.
    ("Cổng ghi 'Miễn phí' ở ô phí nhưng nói mức lệ phí cụ thể do HĐND tỉnh quyết định.", True),
    # 1.013225 without diacritics, upper case (a folded copy of the real cell).
    ("MIEN PHI(THEO QUY DINH CUA HOI DONG NHAN DAN CAP TINH)", True),
    # 3.000198 (online): the council sets the fee of one sub-activity only: still local.
    ("Miễn phí(- Công nhận lâm phần tuyển chọn: 600.000 đồng/lô giống; - Công nhận vườn giống: "
     "2.400.000 đồng/vườn giống; - Bình tuyển, công nhận cây mẹ, cây đầu dòng, vườn giống cây "
     "lâm nghiệp, rừng giống: Hội đồng nhân dân cấp tỉnh quyết định đối với hoạt động bình "
     "tuyển, công nhận do cơ quan địa phương thực hiện.)", True),
    # 6.001430 (in_person) description: the council as a date of the procedure, not a fee.
    ("Trong thời hạn 15 ngày kể từ ngày Hội đồng nhân dân cấp tỉnh thông qua Chương trình phát "
     "triển nhà ở.", False),
    (CAN_CUOC, False),
    (LUAT_SU, False),
    (None, False),
    ("", False),
])
def test_council_sets_fee(text: str | None, expected: bool) -> None:
    assert council_sets_fee(text) is expected


# --- exemptions --------------------------------------------------------------------------

def test_exemption_of_named_groups_has_their_tags() -> None:
    (e,) = exemptions(HO_TICH)  # 1.000110
    assert e == Exemption(e.tags, "Miễn lệ phí cho người thuộc gia đình có công với cách mạng; "
                          "người thuộc hộ nghèo; người khuyết tật.", None)
    assert set(e.tags) == {"nguoi_co_cong", "ho_ngheo", "khuyet_tat"}


@pytest.mark.parametrize("text, expected_text, legal_basis", [
    # 1.004222 (in_person): the groups are only referenced by article: kept, no tags.
    ("20,000 Việt Nam Đồng(Trường hợp công dân thuộc diện được miễn phí theo quy định tại Điều "
     "4 Thông tư số 75/2022/TT-BTC ngày 22/12/2022 quy định mức thu, chế độ thu, nộp và quản lý "
     "lệ phí đăng ký cư trú được sửa đổi, bổ sung tại Thông tư số 71/2025/TT-BTC ngày 01/7/2025 "
     "của Bộ Tài chính thì công dân phải xuất trình giấy tờ chứng minh thuộc diện được miễn)",
     "Trường hợp công dân thuộc diện được miễn phí theo quy định tại Điều 4 Thông tư số "
     "75/2022/TT-BTC", "75/2022/TT-BTC"),
    # 2.002638 (online): "Không thu lệ phí … đối với tổ hợp tác": not a citizen's situation.
    ("Miễn phí(- Không thu lệ phí đăng ký đối với tổ hợp tác theo quy định tại khoản 2 Điều 22 "
     "Luật Hợp tác xã năm 2023. - Mức lệ phí cụ thể do Hội đồng nhân dân cấp tỉnh quyết định.)",
     "Không thu lệ phí đăng ký đối với tổ hợp tác theo quy định tại khoản 2 Điều 22 Luật Hợp "
     "tác xã năm 2023.", None),
    # 1.013562 (in_person): the bracket that states it.
    ("Lệ phí : 03 USD (Lệ phí: 03 USD/Giấy phép (trừ trường hợp được miễn lệ phí theo quy định "
     "của Bộ Tài chính))",
     "trừ trường hợp được miễn lệ phí theo quy định của Bộ Tài chính", None),
    # 1.002032 (post): the ";"-item before it is a dated rate, not part of the exemption.
    ("50,000 VNĐ((áp dụng mức phí 25.000 đồng/hồ sơ kể từ ngày 01/7/2025 đến hết ngày "
     "31/12/2026 theo Thông tư số 64/2025/TT-BTC); Tổ chức hành nghề luật sư bổ sung, thay đổi "
     "thông tin do thay đổi địa giới hành chính được miễn lệ phí đăng ký hoạt động của tổ chức "
     "hành nghề luật sư.)",
     "Tổ chức hành nghề luật sư bổ sung, thay đổi thông tin do thay đổi địa giới hành chính "
     "được miễn lệ phí đăng ký hoạt động", None),
])
def test_exemption_without_tags(text: str, expected_text: str,
                                legal_basis: str | None) -> None:
    (e,) = exemptions(text)
    assert e.tags == ()
    assert e.text.startswith(expected_text)
    assert e.legal_basis == legal_basis


def test_exemption_list_keeps_its_items() -> None:
    # 2.002038 (post): "… những trường hợp sau: + …. + …" is one exemption.
    text = ("Miễn phí(Miễn lệ phí đối với những trường hợp sau: + Người có công lao đặc biệt "
            "đóng góp cho sự nghiệp xây dựng và bảo vệ tổ quốc Việt Nam (phải là người được "
            "tặng thưởng Huân chương).  + Người mất quốc tịch có hoàn cảnh kinh tế khó khăn, có "
            "xác nhận của Ủy ban nhân dân cấp xã nơi cư trú.)")
    (e,) = exemptions(text)
    assert e.text.startswith("Miễn lệ phí đối với những trường hợp sau: + Người có công")
    assert e.text.endswith("+ Người mất quốc tịch có hoàn cảnh kinh tế khó khăn, có xác nhận "
                           "của Ủy ban nhân dân cấp xã nơi cư trú.")


def test_exemption_that_lowers_the_fee() -> None:
    # 1.003976 (in_person): "được giảm 50% mức lệ phí" for a second sibling.
    text = ("9,000,000 Việt Nam Đồng(- Trường hợp nhận hai trẻ em trở lên là anh chị em ruột "
            "làm con nuôi thì từ trẻ em thứ hai trở đi được giảm 50% mức lệ phí đăng ký nuôi con "
            "nuôi nước ngoài.)")
    (e,) = exemptions(text)
    assert e.text.startswith("Trường hợp nhận hai trẻ em trở lên")
    assert "tre_em" in e.tags


@pytest.mark.parametrize("text", [
    None,
    "",
    "Miễn phí(Thông tư số 94/2021/TT-BTC ngày 02/11/2021)",  # 1.003590: the portal's head
    "Miễn phí(Miễn lệ phí (Thông tư số 47/2019/TT-BTC))",  # 2.002023: free for everyone
    HANG_KHONG,  # 1.000254: a dated waiver for everyone is a Reduction
    DKDN,  # 2.001199: "miễn một số khoản phí" in the title of Thông tư 64/2025/TT-BTC
    # 1.012783 (post) seed note: the portal's cell quoted, "cho kênh" is a channel.
    "Cổng ghi 'Miễn phí' cho kênh bưu chính, không kèm giải thích; các kênh khác nói lệ phí "
    "theo pháp luật về phí, lệ phí.",
])
def test_no_exemption(text: str | None) -> None:
    assert exemptions(text) == []

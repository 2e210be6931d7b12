"""Which points of a procedure a message asks about: papers, fee, time, place, conditions…

A citizen asks about a point, not about a procedure card: "Sang tên xe máy thì mấy ngày có
giấy đăng ký mới, lệ phí hết bao nhiêu?" asks two things, "hạn chót là bao lâu sau khi mất"
asks for a legal deadline, not the processing time. Every aspect found is answered from its
own field (actions/aspect_answers.py); the intent model's label is only the fallback when no
cue is found ("đăng ký khai sinh" alone → the how-to).

Cues are folded phrases (no diacritics, lower case, teencode expanded by `fold_words`) and
matched on word boundaries of the folded text: a linear scan, whatever the input. They are
general Vietnamese wordings of each point, not phrases from any evaluation set.

The `HEADINGS` are how an answer titles each point; `bot eval dialogue` reads them back to
tell whether a reply answered the aspects a question asked.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.text import fold_words

# Order = the order of the sections in a reply (what a citizen needs first comes first).
ASPECTS = ("steps", "documents", "forms", "fee", "time", "where", "online", "conditions",
           "audience", "result", "validity", "deadline", "legal_basis")

CUES: dict[str, tuple[str, ...]] = {
    "documents": (
        "giay to", "ho so gom", "ho so can", "thanh phan ho so", "can nhung gi", "can gi",
        "can nhung giay", "mang theo", "mang gi", "chuan bi", "nop nhung gi", "ho so nhung gi",
        "gom nhung gi", "ho so gom nhung",
        # Copy or original asked about, not a paper named: "bản sao trích lục", "chứng
        # thực bản sao", "sao y bản chính" are what a procedure issues or does.
        "ban sao hay", "hay ban sao", "ban chinh hay", "hay ban chinh", "can ban sao",
        "can ban chinh", "mang ban sao", "mang ban chinh", "nop ban sao", "nop ban chinh",
        "ban sao co", "ban chinh co",
    ),
    "forms": ("mau don", "to khai", "bieu mau", "mau to khai", "mau so", "mau giay", "don mau"),
    "fee": (
        "le phi", "phi", "bao nhieu tien", "mat tien", "ton tien", "chi phi", "mien phi",
        "tien", "dong tien", "nop tien", "0 dong", "khong dong", "thu phi", "mat phi",
        "thi bao nhieu", "het bao nhieu", "la bao nhieu", "bao nhieu a",
    ),
    "time": (
        "bao lau", "may ngay", "bao nhieu ngay", "thoi han giai quyet", "thoi gian giai quyet",
        "khi nao co", "bao gio co", "may hom", "bao lau thi", "mat bao lau", "may tuan",
        "bao nhieu lau", "thoi gian xu ly", "thoi han xu ly", "bao gio lay", "khi nao lay",
        "ngay tra ket qua", "hen tra",
    ),
    "where": (
        "o dau", "noi nop", "co quan nao", "nop o", "nop tai", "cho nao", "gui ve dau",
        "gui ho so", "gui den", "den dau", "lam o dau", "lam tai", "tham quyen", "don vi nao",
        "ai giai quyet", "noi lam", "dia chi", "nop cho ai", "gui cho ai", "cap nao",
    ),
    "online": (
        "online", "truc tuyen", "qua mang", "tren mang", "vneid", "cong dich vu cong",
        "dich vu cong truc tuyen", "qua internet", "tai nha", "buu chinh", "qua buu dien",
    ),
    "steps": (
        "trinh tu", "cac buoc", "lam the nao", "lam sao", "cach lam", "quy trinh",
        "nhu the nao", "the nao", "huong dan", "thu tuc ra sao", "lam nhu nao", "lam ntn",
        "cach thuc thuc hien",
    ),
    "conditions": (
        "dieu kien", "yeu cau", "tieu chuan", "co duoc phep", "duoc phep", "co bat buoc",
        "bat buoc", "co can phai", "truong hop nao",
    ),
    "audience": (
        "ai duoc", "doi tuong", "nguoi nao duoc", "ai co the", "ai phai", "ai co quyen",
        "nhung ai", "uy quyen", "nguoi khac lam thay", "lam thay", "nop thay", "di thay",
    ),
    "result": ("ket qua", "nhan duoc gi", "duoc cap gi", "nhan lai gi", "duoc nhan gi"),
    "validity": (
        "hieu luc", "gia tri bao lau", "thoi han su dung", "co gia tri", "co dung duoc",
        "con dung duoc",
        "han su dung", "gia tri trong", "dung duoc bao lau", "con gia tri", "qua han su dung",
    ),
    "deadline": (
        "han chot", "trong thoi han", "cham nhat", "bao lau sau", "qua han", "tre han",
        "bi phat", "xu phat", "thoi han dang ky", "han cuoi", "truoc ngay", "ke tu ngay",
        "trong vong bao lau",
    ),
    "legal_basis": (
        "can cu", "van ban nao", "nghi dinh", "thong tu", "luat nao", "quy dinh nao",
        "co so phap ly", "phap ly", "quy dinh o dau", "theo luat", "dieu nao", "van ban phap",
    ),
}

# A cue that also belongs to a more specific point gives way to it: "bao lâu sau khi mất"
# is a deadline, "hết hạn bao lâu" is validity, not the processing time.
WEAK = {
    "time": {"bao lau", "bao nhieu lau", "bao lau thi", "mat bao lau"},
    "documents": {"can gi"},
    "steps": {"the nao", "huong dan"},
    "fee": {"tien", "thi bao nhieu", "het bao nhieu", "la bao nhieu", "bao nhieu a"},
}
SPECIFIC_OVER = {"time": ("deadline", "validity"), "documents": ("forms", "conditions"),
                 "steps": ("conditions", "audience", "online", "where"),
                 "fee": ("time", "validity", "deadline")}

# The intent model's label → the aspect it stands for, when no cue is found.
INTENT_ASPECT = {
    "ask_procedure": "steps", "ask_documents": "documents", "ask_fee": "fee",
    "ask_processing_time": "time", "ask_where": "where", "ask_online": "online",
}

# How a reply titles each point (and how `bot eval dialogue` recognises an answered point).
HEADINGS = {
    "steps": "Các bước thực hiện",
    "documents": "Hồ sơ cần chuẩn bị",
    "forms": "Mẫu đơn, tờ khai",
    "fee": "Phí, lệ phí",
    "time": "Thời hạn giải quyết",
    "where": "Nơi nộp hồ sơ",
    "online": "Nộp trực tuyến",
    "conditions": "Yêu cầu, điều kiện",
    "audience": "Đối tượng thực hiện",
    "result": "Kết quả",
    "validity": "Thời hạn giá trị",
    "deadline": "Thời hạn phải làm",
    "legal_basis": "Căn cứ pháp lý",
}

# Endings of a yes/no question, after the closing particles ("ạ", "vậy", "nhỉ"…) are cut.
_YES_NO_ENDINGS = (("co", "khong"), ("duoc", "khong"), ("phai", "khong"), ("hay", "khong"),
                   ("khong",), ("chua",))
_PARTICLES = frozenset({"a", "vay", "nhi", "nhe", "ha", "z", "vs", "voi", "the", "day", "ah"})


@dataclass(frozen=True)
class AskedAspects:
    """The points a message asks about, in reply order, and whether it is a yes/no question."""

    aspects: tuple[str, ...]
    yes_no: bool = False
    from_cues: bool = True  # False: taken from the intent label (no cue in the message)


def padded_folded(text: str) -> str:
    """The folded words of `text` between spaces: `f" {cue} " in padded` matches a folded cue
    on word boundaries in one linear scan (shared with bot/nlu/act_guards.py)."""
    return " " + " ".join(fold_words(text)) + " "


def cue_hits(text: str) -> dict[str, set[str]]:
    """aspect → the cues of it found in `text` (on folded word boundaries)."""
    padded = padded_folded(text)
    found: dict[str, set[str]] = {}
    for aspect, cues in CUES.items():
        hits = {c for c in cues if f" {c} " in padded}
        if hits:
            found[aspect] = hits
    return found


def is_yes_no(text: str) -> bool:
    """A question answered by yes or no: "… có mất phí không", "… được không ạ"."""
    words = fold_words(text)
    while words and words[-1] in _PARTICLES:
        words = words[:-1]
    if not words:
        return False
    for ending in _YES_NO_ENDINGS:
        if tuple(words[-len(ending):]) == ending:
            # a bare "không"/"chưa" needs a "có"/"đã"/"được" before it ("phí không" is not one)
            return len(ending) > 1 or any(w in words for w in ("co", "da", "duoc", "phai"))
    return False


def detect(text: str, intent: str | None = None) -> AskedAspects:
    """Every aspect asked in `text`; the intent's aspect when the text has no cue."""
    hits = cue_hits(text)
    for aspect, weak in WEAK.items():
        if aspect in hits and hits[aspect] <= weak and any(
                s in hits for s in SPECIFIC_OVER.get(aspect, ())):
            del hits[aspect]
    # "phí" inside "miễn phí … online" is still the fee; "mẫu tờ khai" is forms, not papers.
    if "forms" in hits and "documents" in hits and hits["documents"] <= WEAK["documents"]:
        del hits["documents"]
    yes_no = is_yes_no(text)
    if hits:
        return AskedAspects(tuple(a for a in ASPECTS if a in hits), yes_no, True)
    fallback = INTENT_ASPECT.get(intent or "", "steps")
    return AskedAspects((fallback,), yes_no, False)

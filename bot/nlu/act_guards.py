"""When a dialogue act predicted by the intent model really is that act.

The intent model reads words: "nhân viên" inside a formal question made it hand the citizen
over, "Hồ sơ …" at the start of a question about papers made it look up an application,
"ở Hà Nội" inside "đăng ký thường trú cho con ở Hà Nội" made it a province statement. Those
acts change the course of the conversation, so each needs its own evidence before it may
win over a procedure the catalog search found (bot/nlu/retrieval.py):

* a hand-over needs an explicit request for a person ("cho gặp cán bộ", "nói chuyện với
  người thật"): a verb of asking for someone together with a word for a person, or one of a
  few phrases that only mean that;
* a status look-up needs a receipt code or explicit status words ("tra cứu hồ sơ", "hồ sơ của
  tôi đến đâu rồi", "đã được duyệt chưa").

Cues are folded phrases matched on word boundaries (a linear scan, whatever the input).
"""

from __future__ import annotations

from bot.aspects import padded_folded

# Verbs of reaching someone: followed by any word for a person.
_REACH = ("gap", "noi chuyen", "nc", "chuyen", "chuyen sang", "ket noi", "goi", "lien he",
          "lien lac", "de lai loi nhan", "nhan giup", "nhan cho", "hoi truc tiep", "cho xin",
          "xin so", "co ai")
# Words of wanting: followed only by a word that can only mean staff.
_WANT = ("can", "muon", "cho", "lam on")
_STAFF = ("can bo", "nhan vien", "nv", "tong dai", "tong dai vien", "tu van vien",
          "chuyen vien", "nguoi tu van", "nguoi ho tro", "ng ho tro", "hotline")
_PERSONS = (*_STAFF, "nguoi that", "nguoi", "ng", "ai do", "ad", "admin")
_ONLY_MEANS_HANDOVER = (
    "nguoi that", "tong dai vien", "so tong dai", "hotline", "ho tro truc tiep",
    "tu van truc tiep", "khong muon noi chuyen voi may", "khong muon chat voi bot",
    "khong muon nc voi bot", "noi chuyen voi nguoi", "gap nguoi", "gap ng", "co ng truc",
    "co nguoi truc", "co can bo nao truc", "cho gap",
)

_STATUS = (
    "tra cuu ho so", "tra cuu tinh trang", "tinh trang ho so", "trang thai ho so",
    "tien do", "ho so cua toi", "ho so cua minh", "ho so cua em", "ho so cua tui",
    "ho so toi nop", "ho so em nop", "ho so minh nop", "ho so da nop", "ma ho so", "ma hs",
    "ma bien nhan", "den dau roi", "den dau r", "toi dau roi", "xong chua", "xog chua",
    "duoc duyet chua", "duyet chua", "co ket qua chua", "tiep nhan chua", "o buoc nao",
    "bi tra ve", "kiem tra ho so", "check ho so", "nop roi ma", "chua thay tra loi",
    "cham so voi ngay hen", "qua ngay hen", "bi treo", "tra cuu ma", "kiem tra trang thai",
    "kiem tra tien do", "hs cua", "nop hs roi", "dang xu ly", "chua co ket qua",
    "tra ho so", "bao ket qua",
)


def _has(padded: str, cues: tuple[str, ...]) -> bool:
    return any(f" {c} " in padded for c in cues)


def explicit_handover(text: str) -> bool:
    """The message asks for a person, not only mentions one ("nhân viên y tế")."""
    padded = padded_folded(text)
    if _has(padded, _ONLY_MEANS_HANDOVER):
        return True
    words = padded.split()
    # A verb of asking for someone, followed within a few words by a word for a person.
    for i in range(len(words)):
        for verbs, persons in ((_REACH, _PERSONS), (_WANT, _STAFF)):
            for verb in verbs:
                vw = verb.split()
                if words[i:i + len(vw)] != vw:
                    continue
                window = " " + " ".join(words[i + len(vw):i + len(vw) + 4]) + " "
                if _has(window, persons):
                    return True
    return False


def explicit_status(text: str, has_receipt_code: bool) -> bool:
    """The message asks where an application stands (a code, or status words)."""
    return has_receipt_code or _has(padded_folded(text), _STATUS)

"""What citizens read about a handover, in one place (the action server and the gateway share it).

Every opening message contains "chuyển cuộc trò chuyện tới cán bộ", inside or outside
working hours, so a citizen (and a test) can always recognise that a person was called.
"""

from __future__ import annotations

from datetime import datetime

from bot.handover.hours import WorkingHours, describe_opening

STAFF_LABEL = "Cán bộ hỗ trợ"

TAKEN = "Cán bộ hỗ trợ đã tham gia cuộc trò chuyện và đang xem tin nhắn của bạn."
CLOSED = ("Cán bộ hỗ trợ đã kết thúc cuộc trò chuyện. Từ bây giờ trợ lý ảo tiếp tục trả lời "
          "bạn; khi cần, bạn cứ nhắn \u201cgặp cán bộ\u201d nhé.")
CANCELLED = ("Bạn đã quay lại trò chuyện với trợ lý ảo. Khi cần người hỗ trợ, bạn cứ nhắn "
             "\u201cgặp cán bộ\u201d nhé.")
NOT_UNDERSTOOD = "Xin lỗi, mình vẫn chưa hiểu ý bạn."

# Zalo attachment type words (bot.channels.zalo.events) as an agent reads them.
ATTACHMENT_NAMES = {
    "image": "một hình ảnh", "sticker": "một nhãn dán", "file": "một tệp",
    "location": "một vị trí", "audio": "một tin nhắn thoại", "video": "một video",
    "link": "một đường liên kết", "gif": "một ảnh GIF", "business_card": "một danh thiếp",
}


def _when(hours: WorkingHours, now: datetime) -> str:
    opening = hours.next_opening(now)
    return describe_opening(now, opening) if opening is not None else "giờ làm việc tiếp theo"


def opened(hours: WorkingHours, now: datetime, reason: str, hotline: str) -> str:
    """The bot's answer when it hands the conversation over ("requested" or "fallback")."""
    lead = f"{NOT_UNDERSTOOD} " if reason == "fallback" else "Dạ, "
    if hours.is_open(now):
        return (f"{lead}mình đã chuyển cuộc trò chuyện tới cán bộ hỗ trợ. Cán bộ sẽ trả lời bạn "
                "ngay tại đây, bạn vui lòng chờ trong giây lát; trong lúc chờ, bạn cứ nhắn "
                "trước nội dung cần hỏi nhé. Nếu cần gấp, bạn có thể gọi tổng đài "
                f"{hotline} (miễn phí).")
    return (f"{lead}hiện đang ngoài giờ làm việc nên chưa có cán bộ trực; cán bộ sẽ làm việc "
            f"trở lại từ {_when(hours, now)}. Mình đã chuyển cuộc trò chuyện tới cán bộ hỗ "
            "trợ: bạn cứ để lại lời nhắn ngay tại đây (bạn cần hỏi gì, về thủ tục nào), cán "
            "bộ sẽ đọc và trả lời bạn trong giờ làm việc. Giờ làm việc: "
            f"{hours.week.describe()}.")


def acknowledged(hours: WorkingHours | None, now: datetime) -> str:
    """The single note after the citizen's first message to a waiting handover."""
    if hours is None or hours.is_open(now):
        return ("Dạ, tin nhắn của bạn đã được chuyển tới cán bộ hỗ trợ. Bạn vui lòng chờ trong "
                "giây lát, cán bộ sẽ trả lời ngay tại đây.")
    return ("Dạ, mình đã ghi lại lời nhắn của bạn. Cán bộ sẽ đọc và trả lời bạn ngay tại đây "
            f"từ {_when(hours, now)}.")


def unavailable(hotline: str) -> str:
    """When the handover could not be opened (the database is down)."""
    return ("Xin lỗi, hiện mình chưa chuyển được cuộc trò chuyện tới cán bộ. Bạn vui lòng gọi "
            f"tổng đài {hotline} (miễn phí) để được hỗ trợ trực tiếp, hoặc thử lại sau ít phút.")


def attachment(kind: str | None) -> str:
    """How a Zalo attachment sent during a handover appears in the agent's thread."""
    what = ATTACHMENT_NAMES.get(kind or "", "một tệp đính kèm")
    return (f"[Người dân đã gửi {what} qua Zalo; nội dung tệp không hiển thị được ở đây, đề "
            "nghị người dân mô tả bằng chữ]")

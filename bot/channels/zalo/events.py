"""Parse Zalo OA (API v3) webhook events into a small typed value and classify them.

The webhook handler only has to decide one of: answer a text question, politely refuse an
attachment, greet a new follower, or do nothing. `parse_event` reduces any payload, however
odd, to a `ZaloEvent` whose `kind` says which; it never raises, because an exception in the
webhook would make Zalo retry the same event and eventually disable the webhook.

Event shapes relied on (Zalo OA API v3 webhook):
- Every event: `app_id`, `user_id_by_app`, `event_name`, `timestamp` (string, ms).
- `user_send_text`: `sender.id` (the user's OA-scoped id, the one we reply to),
  `recipient.id` (the OA id), `message.msg_id`, `message.text`.
- `user_send_image|sticker|file|location|audio|video|link|gif|business_card`: same
  `sender`/`recipient`, `message.msg_id` and `message.attachments` (a list of
  `{"type": ..., "payload": {...}}`). The attachment type is taken from the event name,
  which is always present, rather than from the payload.
- `follow` / `unfollow`: `follower.id` (no `sender`, no `message`), `oa_id`, `source`.
  `user_id_by_app` is the app-scoped id and cannot be used to send OA messages.
- `oa_send_*`: echoes of messages the OA itself sent (including our replies);
  `user_received_message` / `user_seen_message`: delivery and read receipts. All ignored,
  as is anything not listed above (e.g. `user_click_*`, `anonymous_send_*`, shop events).

Sources (checked 2026-11; Zalo's own event reference on developers.zalo.me was not in the
searchable corpus, so fields were cross-checked in third-party material):
- user_send_text sample (sender.id, recipient.id, message.text/msg_id, string timestamp,
  user_id_by_app):
  https://docs.a4b.vn/xbot/integration-guide/integrates-with-multiple-channels/api-reference/webhook/zalopushtoxbot
- `follower.id` next to sender/recipient/message, plus `oa_id` and `source`:
  https://webhook.diennuochp.com.vn/Help/Api/POST-api-ZaloCallback-receiveMessageFromUser
  https://kythuat.capnuoccantho2.com.vn/Help/Api/POST-api-Values
- typed OA webhook definitions (WebhookFollower.id, message.msg_id/text/attachments,
  attachment types image, file, audio, video, gif, link, location, sticker):
  https://app.unpkg.com/@warriorteam/redai-zalo-sdk@1.32.17/files/dist/types/webhook.d.ts
  https://app.unpkg.com/@warriorteam/redai-zalo-sdk@1.32.17/files/docs/WEBHOOK_EVENTS.md
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from bot.text import nfc

TEXT_EVENT = "user_send_text"
FOLLOW_EVENTS = frozenset({"follow", "unfollow"})

# Event name -> attachment type word. Keys are the user_send_* events that carry
# `message.attachments` instead of text.
ATTACHMENT_EVENTS: dict[str, str] = {
    f"user_send_{kind}": kind
    for kind in (
        "image", "sticker", "file", "location", "audio", "video", "link", "gif",
        "business_card",
    )
}

KINDS = ("text", "attachment", "follow", "unfollow", "ignore")

_TIMESTAMP_RE = re.compile(r"[0-9]{1,16}")


@dataclass(frozen=True)
class ZaloEvent:
    """One webhook event, reduced to what the bot acts on.

    `kind` is "text", "attachment", "follow", "unfollow" or "ignore". `user_id` is the
    OA-scoped id to reply to (sender for messages, follower for follow/unfollow); it and
    `msg_id`/`text` are None for ignored events. `attachment` is the attachment type word
    ("image", "sticker", ...) for kind "attachment", else None.
    """

    name: str
    user_id: str | None
    msg_id: str | None
    text: str | None
    timestamp: int | None
    kind: str
    attachment: str | None = None


def _id(value: Any) -> str | None:
    """A non-empty id string; Zalo ids are strings but large ints are tolerated."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value) if value >= 0 else None
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def _child_id(data: dict[str, Any], key: str) -> str | None:
    obj = data.get(key)
    return _id(obj.get("id")) if isinstance(obj, dict) else None


def _timestamp(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value if value >= 0 else None
    if isinstance(value, str) and _TIMESTAMP_RE.fullmatch(value.strip()):
        return int(value.strip())
    return None


def _ignore(name: str, timestamp: int | None) -> ZaloEvent:
    return ZaloEvent(name=name, user_id=None, msg_id=None, text=None, timestamp=timestamp,
                     kind="ignore")


def parse_event(data: object) -> ZaloEvent:
    """Classify a (signature-verified) webhook payload; never raises.

    Malformed or unknown payloads give kind "ignore" (name as given, or "" when
    `event_name` is not a string). A message without a sender id or a `msg_id` is also
    ignored: we could not reply to it, nor de-duplicate Zalo's retries of it. Text is
    NFC-normalised (iOS/macOS keyboards may send decomposed Vietnamese) and stripped; an
    empty text is ignored.
    """
    if not isinstance(data, dict):
        return _ignore("", None)
    raw_name = data.get("event_name")
    name = raw_name if isinstance(raw_name, str) else ""
    ts = _timestamp(data.get("timestamp"))

    if name in FOLLOW_EVENTS:
        follower = _child_id(data, "follower")
        if follower is None:
            return _ignore(name, ts)
        return ZaloEvent(name=name, user_id=follower, msg_id=None, text=None, timestamp=ts,
                         kind=name)

    if name != TEXT_EVENT and name not in ATTACHMENT_EVENTS:
        return _ignore(name, ts)

    sender = _child_id(data, "sender")
    message = data.get("message")
    if sender is None or not isinstance(message, dict):
        return _ignore(name, ts)
    msg_id = _id(message.get("msg_id"))
    if msg_id is None:
        return _ignore(name, ts)

    if name == TEXT_EVENT:
        raw_text = message.get("text")
        text = nfc(raw_text).strip() if isinstance(raw_text, str) else ""
        if not text:
            return _ignore(name, ts)
        return ZaloEvent(name=name, user_id=sender, msg_id=msg_id, text=text, timestamp=ts,
                         kind="text")

    return ZaloEvent(name=name, user_id=sender, msg_id=msg_id, text=None, timestamp=ts,
                     kind="attachment", attachment=ATTACHMENT_EVENTS[name])


def dedup_key(event: ZaloEvent) -> str | None:
    """Key under which to remember an event, so Zalo's retries are answered only once.

    Zalo re-delivers an event when our webhook is slow or fails. Messages have a unique
    `msg_id`; follow/unfollow have none, so name, follower and timestamp identify them
    (a retry repeats the same timestamp). Ignored events need no de-duplication: None.
    """
    if event.kind in ("text", "attachment"):
        return event.msg_id
    if event.kind in FOLLOW_EVENTS:
        return f"{event.name}:{event.user_id}:{event.timestamp}"
    return None


_EXAMPLE = "ví dụ “làm căn cước cần giấy tờ gì”"

ATTACHMENT_REPLY: dict[str, str] = {
    "image": (
        "Dạ, mình chưa xem được hình ảnh. Bạn vui lòng nhắn câu hỏi bằng chữ, "
        f"{_EXAMPLE}, để mình hỗ trợ nhé."
    ),
    "sticker": (
        "Cảm ơn bạn đã gửi nhãn dán ạ! Mình chỉ đọc được tin nhắn chữ, bạn cần hỏi thủ tục "
        f"nào thì cứ nhắn cho mình, {_EXAMPLE}, nhé."
    ),
    "gif": (
        "Dạ, mình chưa xem được ảnh động. Bạn vui lòng nhắn câu hỏi bằng chữ, "
        f"{_EXAMPLE}, để mình hỗ trợ nhé."
    ),
    "file": (
        "Dạ, mình chưa mở được tệp đính kèm. Bạn vui lòng gõ câu hỏi bằng chữ vào tin nhắn, "
        f"{_EXAMPLE}, để mình hỗ trợ nhé."
    ),
    "audio": (
        "Dạ, mình chưa nghe được tin nhắn thoại. Bạn vui lòng nhắn câu hỏi bằng chữ, "
        f"{_EXAMPLE}, để mình hỗ trợ nhé."
    ),
    "video": (
        "Dạ, mình chưa xem được video. Bạn vui lòng nhắn câu hỏi bằng chữ, "
        f"{_EXAMPLE}, để mình hỗ trợ nhé."
    ),
    "location": (
        "Dạ, mình chưa xử lý được vị trí bạn gửi. Nếu bạn muốn biết nơi nộp hồ sơ, vui lòng "
        "nhắn tên thủ tục và tỉnh/thành phố bằng chữ, ví dụ “làm căn cước ở Hà Nội nộp ở "
        "đâu”, để mình hỗ trợ nhé."
    ),
    "link": (
        "Dạ, mình chưa mở được đường link. Bạn vui lòng nhắn câu hỏi bằng chữ, "
        f"{_EXAMPLE}, để mình hỗ trợ nhé."
    ),
    "business_card": (
        "Dạ, mình chưa đọc được danh thiếp. Bạn vui lòng nhắn câu hỏi bằng chữ, "
        f"{_EXAMPLE}, để mình hỗ trợ nhé."
    ),
}

ATTACHMENT_REPLY_DEFAULT = (
    "Dạ, hiện mình chỉ đọc được tin nhắn chữ. Bạn vui lòng nhắn câu hỏi bằng chữ, "
    f"{_EXAMPLE}, để mình hỗ trợ nhé."
)


def attachment_reply(kind: str | None) -> str:
    """The polite "please type your question" reply for an attachment type.

    Unknown or missing types (Zalo adds new ones) get a generic wording, never an error.
    """
    if kind is None:
        return ATTACHMENT_REPLY_DEFAULT
    return ATTACHMENT_REPLY.get(kind, ATTACHMENT_REPLY_DEFAULT)


WELCOME = (
    "Xin chào bạn! Mình là trợ lý ảo hỗ trợ thủ tục hành chính và dịch vụ công trực tuyến. "
    "Bạn có thể hỏi mình về giấy tờ cần chuẩn bị, lệ phí, thời gian giải quyết, nơi nộp hồ "
    "sơ và cách nộp trực tuyến, ví dụ “làm căn cước cần giấy tờ gì” hoặc “đăng ký khai sinh "
    "mất bao lâu”. Khi cần trao đổi với cán bộ, bạn nhắn “gặp cán bộ” nhé."
)

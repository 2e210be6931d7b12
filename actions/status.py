"""Application status questions (receipt codes).

Live status lookup comes with its own issue; until then the assistant says honestly that it
cannot see application records and tells the citizen where to look the code up.
"""

from __future__ import annotations

import re
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from bot.config import Settings

_CODE_RE = re.compile(r"[0-9A-Za-z]+(?:[.\-][0-9A-Za-z]+){2,}")


class CheckStatus(Action):
    """Acknowledge the receipt code (or ask for it) and point to the portal's tracker."""

    def name(self) -> str:
        return "action_check_status"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
            domain: dict[str, Any]) -> list[EventType]:
        settings = Settings.from_env()
        code = next(tracker.get_latest_entity_values("receipt_code"), None)
        if code is None:
            m = _CODE_RE.search((tracker.latest_message or {}).get("text") or "")
            code = m.group(0) if m else None
        if not code:
            dispatcher.utter_message(
                text=("Bạn cho mình xin mã số hồ sơ (in trên giấy biên nhận, ví dụ "
                      "\u201c000.00.17.H29-240512-0031\u201d) nhé. Bạn cũng có thể tự tra cứu "
                      f"tại {settings.portal_url} (mục Tra cứu hồ sơ) hoặc trên ứng dụng VNeID."))
            return []
        dispatcher.utter_message(
            text=(f"Mình đã ghi nhận mã hồ sơ {code.upper()}. Hiện mình chưa kết nối được với hệ "
                  "thống một cửa để xem trạng thái hồ sơ, nên chưa trả lời được hồ sơ đang ở bước "
                  f"nào. Bạn tra cứu trực tiếp tại {settings.portal_url} (mục Tra cứu hồ sơ) bằng "
                  "mã này, hoặc nhắn \u201cgặp cán bộ\u201d để được hỗ trợ."))
        return [SlotSet("receipt_code", code.upper())]

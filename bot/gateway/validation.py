"""Checks shared by every way a citizen's text reaches the gateway (REST, WebSocket, feedback).

One place decides what a valid body and a valid chat text are, so the REST chat, the
widget's WebSocket and the feedback endpoint refuse the same input with the same codes and
Vietnamese messages.
"""

from __future__ import annotations

import json
from typing import Any

from bot.config import Settings
from bot.gateway.errors import ApiError
from bot.text import nfc


def utf8_len(value: str, field: str) -> int:
    """UTF-8 size; JSON may smuggle lone surrogates ("\\ud800") that cannot be encoded."""
    try:
        return len(value.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise ApiError(
            400, "invalid_encoding", f"Trường '{field}' chứa ký tự Unicode không hợp lệ."
        ) from exc


def json_object(raw: bytes | str, shape: str) -> dict[str, Any]:
    """A JSON object from a body or a frame, or ApiError; `shape` says what it should hold."""
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8-sig")  # tolerate a BOM from Windows tools
        except UnicodeDecodeError as exc:
            raise ApiError(400, "invalid_encoding", "Nội dung phải được mã hoá UTF-8.") from exc
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise ApiError(400, "invalid_json", "Nội dung gửi lên không phải JSON hợp lệ.") from exc
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_body", f"Nội dung phải là một đối tượng JSON {shape}.")
    return data


def too_long_message(limit: int) -> str:
    """What a citizen is told when a message is over MAX_MESSAGE_BYTES (chat API, Zalo)."""
    return (f"Câu hỏi quá dài (tối đa {limit} byte). "
            "Bạn vui lòng rút gọn hoặc chia thành nhiều câu.")


def chat_text(text: str, settings: Settings) -> str:
    """A citizen's message, NFC and trimmed; ApiError when too large or empty."""
    text = nfc(text).strip()
    if utf8_len(text, "text") > settings.max_message_bytes:
        raise ApiError(413, "too_large", too_long_message(settings.max_message_bytes))
    if not text:
        raise ApiError(422, "empty_text", "Bạn chưa nhập nội dung câu hỏi.")
    return text

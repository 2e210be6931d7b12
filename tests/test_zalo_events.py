"""Zalo OA v3 webhook events: parsing, classification, de-duplication keys, replies."""

from __future__ import annotations

import unicodedata
from typing import Any

import pytest

from bot.channels.zalo.events import (
    ATTACHMENT_EVENTS,
    ATTACHMENT_REPLY,
    WELCOME,
    ZaloEvent,
    attachment_reply,
    dedup_key,
    parse_event,
)

USER = "6142494823000000001"
OA = "3662729599332560487"
TS = "1700000000000"


def message_event(name: str, **message: Any) -> dict[str, Any]:
    return {
        "app_id": "2553928453557884079",
        "user_id_by_app": "979122185046046317",
        "event_name": name,
        "timestamp": TS,
        "sender": {"id": USER},
        "recipient": {"id": OA},
        "message": {"msg_id": "m-1", **message},
    }


def follow_event(name: str) -> dict[str, Any]:
    return {
        "app_id": "2553928453557884079",
        "user_id_by_app": "979122185046046317",
        "oa_id": OA,
        "event_name": name,
        "timestamp": TS,
        "source": "oa_profile",
        "follower": {"id": USER},
    }


ATTACHMENTS = [
    ("user_send_image", "image"),
    ("user_send_sticker", "sticker"),
    ("user_send_file", "file"),
    ("user_send_location", "location"),
    ("user_send_audio", "audio"),
    ("user_send_video", "video"),
    ("user_send_link", "link"),
    ("user_send_gif", "gif"),
    ("user_send_business_card", "business_card"),
]


def test_text_event() -> None:
    event = parse_event(message_event("user_send_text", text="  Làm căn cước cần gì?  "))
    assert event == ZaloEvent(name="user_send_text", user_id=USER, msg_id="m-1",
                              text="Làm căn cước cần gì?", timestamp=1_700_000_000_000,
                              kind="text", attachment=None)


@pytest.mark.parametrize(("name", "attachment"), ATTACHMENTS)
def test_attachment_events(name: str, attachment: str) -> None:
    payload = message_event(name, attachments=[{"type": attachment, "payload": {}}])
    event = parse_event(payload)
    assert event.kind == "attachment"
    assert event.attachment == attachment
    assert (event.name, event.user_id, event.msg_id, event.text) == (name, USER, "m-1", None)
    assert event.timestamp == 1_700_000_000_000


def test_attachment_table_matches_the_documented_events() -> None:
    assert ATTACHMENT_EVENTS == dict(ATTACHMENTS)


def test_attachment_type_comes_from_event_name_not_payload() -> None:
    payload = message_event("user_send_image", attachments=[{"type": "sticker"}])
    assert parse_event(payload).attachment == "image"
    # Missing attachments list still classifies by event name.
    assert parse_event(message_event("user_send_file")).attachment == "file"


@pytest.mark.parametrize("name", ["follow", "unfollow"])
def test_follow_events_use_follower_id(name: str) -> None:
    event = parse_event(follow_event(name))
    assert event == ZaloEvent(name=name, user_id=USER, msg_id=None, text=None,
                              timestamp=1_700_000_000_000, kind=name)


@pytest.mark.parametrize("name", ["follow", "unfollow"])
def test_follow_with_only_sender_or_user_id_by_app_is_ignored(name: str) -> None:
    # user_id_by_app is app-scoped; replying needs the OA-scoped follower id.
    payload = follow_event(name)
    del payload["follower"]
    payload["sender"] = {"id": USER}
    event = parse_event(payload)
    assert (event.kind, event.name, event.user_id) == ("ignore", name, None)


@pytest.mark.parametrize(
    "name",
    [
        "oa_send_text",
        "oa_send_image",
        "oa_send_list",
        "oa_send_gif",
        "oa_send_file",
        "oa_send_sticker",
        "user_received_message",
        "user_seen_message",
        "user_click_button",
        "anonymous_send_text",
        "user_send_text_v2",
        "USER_SEND_TEXT",
        "",
    ],
)
def test_echoes_receipts_and_unknown_events_are_ignored(name: str) -> None:
    payload = message_event(name, text="Xin chào")
    payload["message"]["msg_ids"] = ["m-1"]
    event = parse_event(payload)
    assert event.kind == "ignore"
    assert event.name == name
    assert (event.user_id, event.msg_id, event.text, event.attachment) == (None,) * 4
    assert dedup_key(event) is None


def test_text_is_nfc_normalised() -> None:
    composed = "Đăng ký khai sinh mất bao lâu?"
    decomposed = unicodedata.normalize("NFD", composed)
    assert decomposed != composed
    event = parse_event(message_event("user_send_text", text=decomposed))
    assert event.text == composed
    assert unicodedata.is_normalized("NFC", event.text)


@pytest.mark.parametrize("text", ["", "   ", "\n\t ", "\u3000", None, 42, ["hi"]])
def test_empty_or_non_string_text_is_ignored(text: object) -> None:
    event = parse_event(message_event("user_send_text", text=text))
    assert event.kind == "ignore"
    assert event.name == "user_send_text"


@pytest.mark.parametrize(
    "mutate",
    [
        lambda p: p.pop("sender"),
        lambda p: p.__setitem__("sender", {"id": ""}),
        lambda p: p.__setitem__("sender", {"id": None}),
        lambda p: p.__setitem__("sender", USER),
        lambda p: p.__setitem__("sender", {"id": True}),
        lambda p: p.pop("message"),
        lambda p: p.__setitem__("message", "Xin chào"),
        lambda p: p["message"].pop("msg_id"),
        lambda p: p["message"].__setitem__("msg_id", ""),
        lambda p: p["message"].__setitem__("msg_id", {"x": 1}),
    ],
)
@pytest.mark.parametrize("name", ["user_send_text", "user_send_image"])
def test_messages_without_sender_or_msg_id_are_ignored(name: str, mutate: Any) -> None:
    payload = message_event(name, text="Xin chào")
    mutate(payload)
    event = parse_event(payload)
    assert event.kind == "ignore"
    assert event.name == name


@pytest.mark.parametrize(
    "data",
    [
        None,
        [],
        [message_event("user_send_text", text="hi")],
        "user_send_text",
        b"{}",
        42,
        {},
        {"event_name": 5},
        {"event_name": None},
        {"event_name": ["user_send_text"]},
        {"event_name": "user_send_text"},
        {"event_name": "user_send_text", "sender": None, "message": None},
        {"event_name": "user_send_text", "sender": {}, "message": {}},
        {"event_name": "follow", "follower": None},
        {"event_name": "follow", "follower": []},
        {"event_name": "unfollow", "follower": {"id": 3.5}},
    ],
)
def test_garbage_is_ignored_without_exceptions(data: object) -> None:
    event = parse_event(data)
    assert event.kind == "ignore"
    expected_name = data["event_name"] if isinstance(data, dict) and isinstance(
        data.get("event_name"), str) else ""
    assert event.name == expected_name
    assert dedup_key(event) is None


@pytest.mark.parametrize(
    ("timestamp", "expected"),
    [
        ("1700000000000", 1_700_000_000_000),
        (1_700_000_000_000, 1_700_000_000_000),
        (" 1700000000000 ", 1_700_000_000_000),
        (None, None),
        ("", None),
        ("soon", None),
        (True, None),
        (-1, None),
        (1.5, None),
    ],
)
def test_timestamp_parsing(timestamp: object, expected: int | None) -> None:
    payload = message_event("user_send_text", text="hi")
    payload["timestamp"] = timestamp
    event = parse_event(payload)
    assert event.kind == "text"  # a bad timestamp does not drop a verified message
    assert event.timestamp == expected


def test_ids_are_stripped_and_large_int_ids_tolerated() -> None:
    payload = message_event("user_send_text", text="hi")
    payload["sender"] = {"id": 6142494823000000001}
    payload["message"]["msg_id"] = " m-9 "
    event = parse_event(payload)
    assert (event.user_id, event.msg_id) == ("6142494823000000001", "m-9")


@pytest.mark.parametrize(
    ("payload", "key"),
    [
        (message_event("user_send_text", text="hi"), "m-1"),
        (message_event("user_send_sticker"), "m-1"),
        (follow_event("follow"), f"follow:{USER}:1700000000000"),
        (follow_event("unfollow"), f"unfollow:{USER}:1700000000000"),
        (message_event("oa_send_text", text="hi"), None),
        (message_event("user_seen_message"), None),
        (message_event("user_send_text", text="   "), None),
    ],
)
def test_dedup_key(payload: dict[str, Any], key: str | None) -> None:
    assert dedup_key(parse_event(payload)) == key


def test_dedup_key_separates_follow_and_unfollow_and_retries_collide() -> None:
    follow, unfollow = parse_event(follow_event("follow")), parse_event(follow_event("unfollow"))
    assert dedup_key(follow) != dedup_key(unfollow)
    assert dedup_key(parse_event(follow_event("follow"))) == dedup_key(follow)
    later = follow_event("follow")
    later["timestamp"] = "1700000009999"
    assert dedup_key(parse_event(later)) != dedup_key(follow)


def test_event_is_frozen() -> None:
    event = parse_event(message_event("user_send_text", text="hi"))
    with pytest.raises(AttributeError):
        event.text = "changed"  # type: ignore[misc]


@pytest.mark.parametrize("kind", [a for _, a in ATTACHMENTS])
def test_attachment_replies(kind: str) -> None:
    reply = attachment_reply(kind)
    assert reply == ATTACHMENT_REPLY[kind]
    assert reply.startswith(("Dạ", "Cảm ơn"))
    assert "chữ" in reply  # asks for a typed (text) question
    assert "nhé" in reply
    assert unicodedata.is_normalized("NFC", reply)


def test_attachment_replies_cover_every_type_and_mention_it() -> None:
    assert set(ATTACHMENT_REPLY) == {a for _, a in ATTACHMENTS}
    words = {"image": "hình ảnh", "sticker": "nhãn dán", "gif": "ảnh động", "file": "tệp",
             "audio": "thoại", "video": "video", "location": "vị trí", "link": "link",
             "business_card": "danh thiếp"}
    for kind, word in words.items():
        assert word in ATTACHMENT_REPLY[kind], kind


@pytest.mark.parametrize("kind", [None, "", "doodle", "IMAGE"])
def test_attachment_reply_fallback(kind: str | None) -> None:
    reply = attachment_reply(kind)
    assert reply not in ATTACHMENT_REPLY.values()
    assert "chữ" in reply and reply.startswith("Dạ")


def test_welcome_mentions_capabilities_and_human_handoff() -> None:
    for word in ("giấy tờ", "lệ phí", "thời gian", "nơi nộp", "trực tuyến", "“gặp cán bộ”"):
        assert word in WELCOME, word
    assert unicodedata.is_normalized("NFC", WELCOME)

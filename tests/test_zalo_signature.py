"""Zalo OA webhook signature: mac = sha256(app_id + raw body + timestamp + OA secret)."""

from __future__ import annotations

import hashlib
import json

import pytest

from bot.channels.zalo.signature import SignatureError, expected_mac, parse_header, verify

APP_ID = "2553928453557884079"
SECRET = "oa-secret-Kx9"
TS = 1_700_000_000_000
WINDOW = 300_000
BODY = (
    '{"app_id": "2553928453557884079", "event_name": "user_send_text", '
    '"sender": {"id": "6142494823"}, "recipient": {"id": "3662729599332560487"}, '
    '"message": {"text": "Làm căn cước cần gì?", "msg_id": "cb31dff1c39642cc1b83"}, '
    '"timestamp": "1700000000000"}'
).encode()


def _mac(body: bytes, ts: str = str(TS), app_id: str = APP_ID, secret: str = SECRET) -> str:
    """Independent reference: hashlib over the byte concatenation."""
    return hashlib.sha256(app_id.encode() + body + ts.encode() + secret.encode()).hexdigest()


def _body(ts: object) -> bytes:
    return json.dumps({"event_name": "user_send_text", "timestamp": ts}).encode()


def test_expected_mac_known_vector() -> None:
    # Fixed vector so a refactor of either side cannot silently agree on a wrong formula.
    vector = hashlib.sha256(b"app1" + b'{"timestamp":"5"}' + b"5" + b"key").hexdigest()
    assert expected_mac("app1", b'{"timestamp":"5"}', "5", "key") == vector
    assert expected_mac(APP_ID, BODY, str(TS), SECRET) == _mac(BODY)
    assert len(vector) == 64 and vector == vector.lower()


def test_expected_mac_is_not_hmac_and_order_matters() -> None:
    import hmac

    as_hmac = hmac.new(SECRET.encode(), BODY, hashlib.sha256).hexdigest()
    assert expected_mac(APP_ID, BODY, str(TS), SECRET) != as_hmac
    swapped = hashlib.sha256(SECRET.encode() + BODY + str(TS).encode() + APP_ID.encode())
    assert expected_mac(APP_ID, BODY, str(TS), SECRET) != swapped.hexdigest()


@pytest.mark.parametrize(
    "header",
    [
        "mac={mac}",
        "  mac={mac}  ",
        "MAC={mac}",
        "Mac={mac}",
        "mac = {mac}",
        "\tmac={mac}\r\n",
        "mac={MAC}",  # upper-case hex digits
    ],
)
def test_valid_header_variants(header: str) -> None:
    mac = _mac(BODY)
    value = header.replace("{mac}", mac).replace("{MAC}", mac.upper())
    assert verify(value, BODY, APP_ID, SECRET, now_ms=TS, window_ms=WINDOW) == TS


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (None, "missing"),
        ("", "missing"),
        ("   ", "missing"),
        ("{mac}", "malformed"),  # bare hex without the mac= prefix
        ("sha256={mac}", "malformed"),
        ("mac:{mac}", "malformed"),
        ("mac=", "malformed"),
        ("mac={mac}00", "malformed"),  # too long
        ("mac={short}", "malformed"),  # too short
        ("mac={nonhex}", "malformed"),
        ("mac={mac},mac={mac}", "malformed"),
    ],
)
def test_bad_headers(header: str | None, reason: str) -> None:
    mac = _mac(BODY)
    if header is not None:
        header = (header.replace("{mac}", mac).replace("{short}", mac[:63])
                  .replace("{nonhex}", "g" + mac[1:]))
    with pytest.raises(SignatureError) as exc:
        verify(header, BODY, APP_ID, SECRET, now_ms=TS, window_ms=WINDOW)
    assert exc.value.reason == reason
    assert isinstance(exc.value, ValueError)


def test_parse_header_returns_lowercase_digest() -> None:
    mac = _mac(BODY)
    assert parse_header(f" MAC={mac.upper()} ") == mac


def _flip_one_byte(body: bytes) -> bytes:
    i = body.index(b"msg_id") + 12
    return body[:i] + bytes([body[i] ^ 1]) + body[i + 1:]


@pytest.mark.parametrize(
    ("name", "body", "app_id", "secret"),
    [
        ("wrong secret", BODY, APP_ID, "other-secret"),
        ("wrong app id", BODY, "1111", SECRET),
        ("one byte changed", _flip_one_byte(BODY), APP_ID, SECRET),
        ("compact re-serialisation", json.dumps(json.loads(BODY), separators=(",", ":"),
                                                ensure_ascii=False).encode(), APP_ID, SECRET),
        ("ascii-escaped re-serialisation", json.dumps(json.loads(BODY)).encode(), APP_ID,
         SECRET),
        ("trailing newline", BODY + b"\n", APP_ID, SECRET),
    ],
)
def test_mismatch(name: str, body: bytes, app_id: str, secret: str) -> None:
    # The header is always the genuine signature of BODY with the real app id and secret.
    assert body != BODY or (app_id, secret) != (APP_ID, SECRET), name
    with pytest.raises(SignatureError) as exc:
        verify(f"mac={_mac(BODY)}", body, app_id, secret, now_ms=TS, window_ms=WINDOW)
    assert exc.value.reason == "mismatch"


def test_wrong_mac_of_right_length() -> None:
    with pytest.raises(SignatureError) as exc:
        verify("mac=" + "0" * 64, BODY, APP_ID, SECRET, now_ms=TS, window_ms=WINDOW)
    assert exc.value.reason == "mismatch"


@pytest.mark.parametrize(
    ("now_ms", "outcome"),
    [
        (TS, "ok"),
        (TS + WINDOW, "ok"),  # exactly window old
        (TS + WINDOW + 1, "stale"),  # one ms beyond
        (TS + 10 * WINDOW, "stale"),
        (TS - WINDOW, "ok"),  # exactly window in the future
        (TS - WINDOW - 1, "future"),
        (TS - 10 * WINDOW, "future"),
    ],
)
def test_time_window(now_ms: int, outcome: str) -> None:
    header = f"mac={_mac(BODY)}"
    if outcome == "ok":
        assert verify(header, BODY, APP_ID, SECRET, now_ms=now_ms, window_ms=WINDOW) == TS
    else:
        with pytest.raises(SignatureError) as exc:
            verify(header, BODY, APP_ID, SECRET, now_ms=now_ms, window_ms=WINDOW)
        assert exc.value.reason == outcome


def test_zero_window_accepts_only_exact_time() -> None:
    header = f"mac={_mac(BODY)}"
    assert verify(header, BODY, APP_ID, SECRET, now_ms=TS, window_ms=0) == TS
    for now in (TS - 1, TS + 1):
        with pytest.raises(SignatureError):
            verify(header, BODY, APP_ID, SECRET, now_ms=now, window_ms=0)


def test_negative_window_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="window_ms"):
        verify(f"mac={_mac(BODY)}", BODY, APP_ID, SECRET, now_ms=TS, window_ms=-1)


def test_integer_timestamp_is_signed_as_its_decimal_text() -> None:
    body = _body(TS)
    assert b'"timestamp": 1700000000000' in body
    assert verify(f"mac={_mac(body)}", body, APP_ID, SECRET, now_ms=TS, window_ms=0) == TS


def test_stale_is_reported_only_after_the_signature_matched() -> None:
    # A forged old request must fail as "mismatch", not reveal anything about the window.
    with pytest.raises(SignatureError) as exc:
        verify("mac=" + "a" * 64, BODY, APP_ID, SECRET, now_ms=TS * 2, window_ms=WINDOW)
    assert exc.value.reason == "mismatch"


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"\xff\xfe\x00garbage",
        b"[1, 2]",
        b'"1700000000000"',
        b"{}",
        _body(None),
        _body(True),
        _body(1.7e12),
        _body(-5),
        _body(""),
        _body("17000x"),
        _body("-1700000000000"),
        _body(" 1700000000000"),
        _body("١٧٠٠"),  # Arabic-Indic digits: str.isdigit() would accept them
        _body("1" * 40),
        _body({"ms": TS}),
        b"[" * 100_000,  # deep nesting must not crash the parser
    ],
)
def test_no_timestamp(body: bytes) -> None:
    with pytest.raises(SignatureError) as exc:
        verify(f"mac={_mac(body)}", body, APP_ID, SECRET, now_ms=TS, window_ms=WINDOW)
    assert exc.value.reason == "no_timestamp"


@pytest.mark.parametrize(
    ("header", "body", "now_ms"),
    [
        (None, BODY, TS),
        ("mac=zz", BODY, TS),
        ("mac=" + "0" * 64, BODY, TS),
        (f"mac={_mac(BODY)}", BODY, TS + 10 * WINDOW),
        (f"mac={_mac(BODY)}", BODY, TS - 10 * WINDOW),
        ("mac=" + "0" * 64, b"not json: L\xc3\xa0m c\xc4\x83n c\xc6\xb0\xe1\xbb\x9bc", TS),
    ],
)
def test_error_messages_never_leak_body_or_secret(
    header: str | None, body: bytes, now_ms: int
) -> None:
    with pytest.raises(SignatureError) as exc:
        verify(header, body, APP_ID, SECRET, now_ms=now_ms, window_ms=WINDOW)
    message = str(exc.value)
    assert message.isascii()
    assert SECRET not in message
    assert "căn" not in message and "msg_id" not in message and "json:" not in message
    assert exc.value.reason in {"missing", "malformed", "mismatch", "stale", "future",
                                "no_timestamp"}

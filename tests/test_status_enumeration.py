"""Receipt codes cannot be walked with a new sender id per request (issue 18, item 5).

The real `action_check_status` on a real SQLite database (and the shared limit on
PostgreSQL too): look-ups are limited per client address (the key the gateway puts in the
message metadata, tests/test_gateway_limits.py checks that side) and for all clients, and a
refused look-up gets exactly the answer of an unknown code.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import select

from actions.status import CheckStatus
from bot.catalog.db import forget_engines, session_scope
from bot.client_address import CLIENT_METADATA_KEY, client_key
from bot.config import ROOT
from bot.fees.service import vietnam_today
from bot.status.codes import CodeMatcher, load_patterns
from bot.status.importer import import_status_csv
from tests.conftest import throwaway_postgres

CODE, OTHER_CODE = "000.00.20.H26-250312-0045", "000.00.20.H26-250312-0046"  # exist
WALKED = [f"000.00.20.H26-250312-{n:04d}" for n in range(1, 10)]  # do not
FOUND = "Đang giải quyết"
WALKER, NEIGHBOUR = client_key("203.0.113.7"), client_key("198.51.100.20")


@pytest.fixture()
def db(db_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """Two applications on file (without a procedure: the answer then needs no catalog,
    which keeps these tests fast); the per-conversation limit never matters here."""
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("STATUS_SOURCE", "database")
    monkeypatch.setenv("STATUS_LOOKUP_LIMIT", "50")
    today = vietnam_today()
    path = tmp_path / "s.csv"
    path.write_text(
        "receipt_code,procedure_code,agency,status,received_at,due_at,finished_at,note\n"
        f"{CODE},,UBND phường Ba Đình,processing,{today - timedelta(days=3)},"
        f"{today + timedelta(days=30)},,Hồ sơ đang thẩm định\n"
        f"{OTHER_CODE},,UBND phường Kim Mã,processing,{today - timedelta(days=3)},"
        f"{today + timedelta(days=30)},,Đang xác minh\n", encoding="utf-8")
    with session_scope(db_url) as s:
        import_status_csv(s, path, CodeMatcher(load_patterns(
            ROOT / "data" / "status" / "receipt_codes.yaml")))
    return db_url


def tracker(sender: str, code: str, metadata: dict | None) -> Tracker:
    message = {"text": f"tra cứu {code}", "intent": {"name": "check_status", "confidence": 1},
               "entities": []}
    if metadata is not None:
        message["metadata"] = metadata
    return Tracker(sender_id=sender, slots={"receipt_code": code}, latest_message=message,
                   events=[], paused=False, followup_action=None,
                   active_loop={"name": "status_form"}, latest_action_name="action_listen")


async def ask(sender: str, code: str, client: str | None = None,
              metadata: dict | None = None) -> tuple[str, list[str]]:
    """One look-up in a brand-new conversation, as a walker changing sender ids does:
    the answer with the code replaced by "<mã>", and the names of the events."""
    if metadata is None and client is not None:
        metadata = {"channel": "web", CLIENT_METADATA_KEY: client}
    dispatcher = CollectingDispatcher()
    events = await CheckStatus().run(dispatcher, tracker(sender, code, metadata), {})
    text = "\n".join(m["text"] for m in dispatcher.messages).replace(code, "<mã>")
    return text, sorted(e["name"] for e in events)


async def unknown_code_answer() -> tuple[str, list[str]]:
    """What a client with its budget intact reads for a code that does not exist."""
    miss = await ask("reference", "000.00.20.H26-991231-9999", client_key("192.0.2.254"))
    assert "không tìm thấy" in miss[0]
    return miss


async def test_a_new_sender_per_request_cannot_walk_codes_from_one_address(
        db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STATUS_LOOKUP_ADDRESS_LIMIT", "3")
    miss = await unknown_code_answer()
    # The citizen's own application, then two codes that do not exist: three new codes.
    text, _ = await ask("walker-0", CODE, WALKER)
    assert FOUND in text
    for n, code in enumerate(WALKED[:2], start=1):
        assert await ask(f"walker-{n}", code, WALKER) == miss
    # A fourth new code from this address, from a new sender (a new conversation): refused
    # with the unknown code's answer, word for word and with the same slots set, even for a
    # code that exists: its status, agency and notes stay hidden.
    assert await ask("walker-3", WALKED[2], WALKER) == miss
    text, events = await ask("walker-4", OTHER_CODE, WALKER)
    assert (text, events) == miss and "Kim Mã" not in text
    # Asking again about a code already looked up is not enumeration: still answered.
    text, _ = await ask("walker-5", CODE, WALKER)
    assert FOUND in text and "thẩm định" in text
    # A neighbour at another address reads their own application.
    text, _ = await ask("neighbour-1", OTHER_CODE, NEIGHBOUR)
    assert FOUND in text and "Kim Mã" in text


async def test_all_clients_together_have_a_global_limit(
        db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Many addresses (a botnet, IPv6 /64s) are slowed down by the global limit."""
    monkeypatch.setenv("STATUS_LOOKUP_ADDRESS_LIMIT", "0")
    monkeypatch.setenv("STATUS_LOOKUP_GLOBAL_LIMIT", "4")
    miss = await unknown_code_answer()  # the first of the four
    for n, code in enumerate(WALKED[:3]):
        assert await ask(f"bot-{n}", code, client_key(f"192.0.2.{n}")) == miss
    text, events = await ask("citizen", CODE, client_key("192.0.2.200"))
    assert (text, events) == miss and FOUND not in text
    # Nothing of the walk is kept in the clear: hashes of clients and codes only.
    from bot.catalog.models import StatusLookup

    with session_scope(db) as s:
        rows = s.execute(select(StatusLookup)).scalars().all()
    assert len(rows) == 4
    stored = " ".join(f"{r.client} {r.code}" for r in rows)
    assert "H26" not in stored and "192.0.2" not in stored


async def test_the_client_is_what_the_gateway_says_never_the_sender(
        db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STATUS_LOOKUP_ADDRESS_LIMIT", "1")
    miss = await unknown_code_answer()
    # Without the gateway's key (Rasa called directly, `rasa shell`, or a value of another
    # shape: a raw address, a forged word), every sender shares one bucket.
    assert await ask("direct-1", WALKED[0], metadata={}) == miss
    for n, forged in enumerate(("203.0.113.7", "forged", WALKER.upper())):
        text, _ = await ask(f"direct-{n + 2}", CODE,
                            metadata={"channel": "web", CLIENT_METADATA_KEY: forged})
        assert FOUND not in text, forged
    # A Zalo conversation's client is its Zalo user (the webhook is signed; the chat API and
    # the WebSocket refuse "zalo-" senders): each Zalo user has a budget of their own...
    text, _ = await ask("zalo-84901234567", CODE, metadata={"channel": "zalo"})
    assert FOUND in text
    text, _ = await ask("zalo-84907654321", OTHER_CODE, metadata={"channel": "zalo"})
    assert FOUND in text
    # ...and a sender merely named like one, on another channel, is not a Zalo user.
    text, _ = await ask("zalo-84900000000", OTHER_CODE, metadata={"channel": "web"})
    assert FOUND not in text


async def test_a_database_that_cannot_count_refuses_with_try_later(
        db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail closed: without its counts the limit would be off, so no look-up goes through."""
    monkeypatch.setenv("DATABASE_URL", "sqlite:////proc/no-such-dir/dvc.sqlite3")
    text, _ = await ask("s-1", CODE, WALKER)
    assert "tạm thời không truy cập được" in text and FOUND not in text


# --------------------------------------------------------------------------- replicas


@pytest.fixture(params=["sqlite", "postgresql"])
def shared_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'limits.sqlite3'}"
        yield url
        forget_engines(str(tmp_path / "limits.sqlite3"))
        return
    with throwaway_postgres("dvc_limits") as url:
        yield url


def test_replicas_share_the_limits_exactly(shared_db: str) -> None:
    """Twelve look-ups at once from different clients (as from action server replicas,
    each its own connection and transaction): exactly the global limit is admitted."""
    from bot.catalog.models import StatusLookup
    from bot.status.limits import ADMITTED, OVERALL, PER_CLIENT, LookupLimits, admit
    from bot.timeutil import utcnow

    limits = LookupLimits(per_client=0, overall=5, window_minutes=60)
    assert admit(shared_db, "warm-up", WALKED[0], limits) == ADMITTED  # tables created
    verdicts: list[str] = []
    start = threading.Barrier(12)

    def one(n: int) -> None:
        start.wait()
        verdicts.append(admit(shared_db, f"client-{n}", f"H26-250312-{n:04d}", limits))

    threads = [threading.Thread(target=one, args=(n,)) for n in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(verdicts) == sorted([ADMITTED] * 4 + [OVERALL] * 8)
    # Per client, with a window that slides: old look-ups stop counting (and are deleted).
    per_client = LookupLimits(per_client=2, overall=0, window_minutes=60)
    now = utcnow()
    assert admit(shared_db, "c", "A-1", per_client, now) == ADMITTED
    assert admit(shared_db, "c", "A-2", per_client, now) == ADMITTED
    assert admit(shared_db, "c", "A-3", per_client, now) == PER_CLIENT
    assert admit(shared_db, "c", "A-1", per_client, now) == ADMITTED  # asked before
    later = now + timedelta(minutes=61)
    assert admit(shared_db, "c", "A-3", per_client, later) == ADMITTED
    with session_scope(shared_db) as s:
        expired = StatusLookup.looked_up_at < later - timedelta(minutes=60)
        assert s.execute(select(StatusLookup).where(expired)).first() is None

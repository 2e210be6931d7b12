"""The Zalo channel's durable queue on a real SQLite database."""

from __future__ import annotations

import asyncio

from bot.channels.zalo import queue
from bot.channels.zalo.channel import merge_parts, replies_for


def test_events_are_stored_once_and_replies_queued_atomically(db_url: str) -> None:
    assert queue.record_event(db_url, "m1", "u1", b'{"a": 1}')
    assert not queue.record_event(db_url, "m1", "u1", b'{"a": 1}')  # Zalo's retry
    [(inbox_id, raw)] = queue.unprocessed(db_url)
    assert raw == '{"a": 1}'
    assert queue.complete(db_url, inbox_id, "u1", [("text", {"text": "một"}),
                                                   ("text", {"text": "hai"})])
    assert not queue.complete(db_url, inbox_id, "u1", [("text", {"text": "một"})])
    assert queue.unprocessed(db_url) == []
    assert [o.body["text"] for o in queue.due(db_url)] == ["một"]  # one at a time per user


def test_a_users_replies_go_in_order_and_retries_wait(db_url: str) -> None:
    for key, user in (("a", "u1"), ("b", "u2")):
        queue.record_event(db_url, key, user, b"{}")
    for inbox_id, _ in queue.unprocessed(db_url):
        user = "u1" if inbox_id == 1 else "u2"
        queue.complete(db_url, inbox_id, user, [("text", {"text": f"{user}-1"}),
                                                ("text", {"text": f"{user}-2"})])
    first = queue.due(db_url)
    assert [o.body["text"] for o in first] == ["u1-1", "u2-1"]
    queue.mark_failed(db_url, first[0].id, permanent=False, error="503", retry_in=60)
    queue.mark_sent(db_url, first[1].id, "zid-1")
    # u1's first reply waits for its retry, so u1's second may not overtake it.
    assert [o.body["text"] for o in queue.due(db_url)] == ["u2-2"]
    queue.mark_failed(db_url, first[0].id, permanent=True, error="-230", retry_in=0)
    assert [o.body["text"] for o in queue.due(db_url)] == ["u1-2", "u2-2"]


def test_last_buttons_and_token_store(db_url: str) -> None:
    queue.record_event(db_url, "k", "u9", b"{}")
    [(inbox_id, _)] = queue.unprocessed(db_url)
    buttons = [{"title": "A", "payload": "/a"}, {"title": "B", "payload": "/b"}]
    queue.complete(db_url, inbox_id, "u9", [("list", {"title": "t", "buttons": buttons,
                                                      "fallback": "1. A\n2. B"})])
    assert queue.last_buttons(db_url, "u9") == buttons
    assert queue.last_buttons(db_url, "nobody") == []

    store = queue.DbTokenStore(db_url, "acc-0", "ref-0")
    assert asyncio.run(store.get()) == ("acc-0", "ref-0")  # the configured first pair
    asyncio.run(store.save("acc-1", "ref-1"))
    again = queue.DbTokenStore(db_url, "acc-0", "ref-0")  # another process, after a restart
    assert asyncio.run(again.get()) == ("acc-1", "ref-1")
    assert "acc" not in repr(again)


def test_rasa_parts_become_one_answer_then_zalo_sized_pieces() -> None:
    parts = [{"text": "Thủ tục X.", "buttons": []}, {"text": "Hồ sơ: a, b.", "buttons": []},
             {"text": "Chọn:", "buttons": [{"title": "Lệ phí", "payload": "/ask_fee"}]}]
    assert merge_parts(parts) == [{"text": "Thủ tục X.\n\nHồ sơ: a, b.\n\nChọn:",
                                   "buttons": [{"title": "Lệ phí", "payload": "/ask_fee"}]}]
    rows = replies_for([{"text": "Câu dài. " * 400, "buttons": []}])
    assert len(rows) == 2 and all(len(r[1]["text"]) <= 2000 for r in rows)
    rows = replies_for(parts)
    assert [k for k, _ in rows] == ["text", "list"]
    assert rows[1][1]["fallback"].startswith("1. Lệ phí")


def test_a_reply_zalo_took_is_recorded_even_if_the_database_hiccups(
        db_url: str, monkeypatch) -> None:  # noqa: ANN001 - pytest's fixture
    """A failed "mark sent" must be retried, not left pending (it would be sent twice)."""
    from sqlalchemy.exc import OperationalError

    from bot.channels.zalo import channel

    queue.record_event(db_url, "k1", "u1", b"{}")
    [(inbox_id, _)] = queue.unprocessed(db_url)
    queue.complete(db_url, inbox_id, "u1", [("text", {"text": "một"})])
    [item] = queue.due(db_url)
    real, calls = queue.mark_sent, []

    def flaky(url: str, outbox_id: int, message_id: str | None) -> None:
        calls.append(outbox_id)
        if len(calls) == 1:
            raise OperationalError("UPDATE zalo_outbox", {}, Exception("database is locked"))
        real(url, outbox_id, message_id)

    monkeypatch.setattr(queue, "mark_sent", flaky)
    asyncio.run(channel._record_sent(db_url, item.id, "zid-1"))
    assert calls == [item.id, item.id]
    assert queue.due(db_url) == []  # recorded: nothing left to send again


def test_sqlite_waits_for_another_writer_instead_of_failing_at_once(db_url: str) -> None:
    from sqlalchemy import text

    from bot.catalog.db import SQLITE_BUSY_SECONDS, get_engine

    with get_engine(db_url).connect() as conn:
        busy_ms = conn.execute(text("PRAGMA busy_timeout")).scalar_one()
    assert busy_ms == int(SQLITE_BUSY_SECONDS * 1000) and SQLITE_BUSY_SECONDS > 5


def test_a_users_lease_has_one_holder_until_released_or_expired(db_url: str) -> None:
    """Several gateways run the Zalo worker: a user's events and replies go through the
    one holding the user's lease (each event to Rasa once, each reply sent once)."""
    from concurrent.futures import ThreadPoolExecutor

    assert queue.claim(db_url, "gw-a", "u1")
    assert queue.claim(db_url, "gw-a", "u1")  # renewing is fine
    assert not queue.claim(db_url, "gw-b", "u1")
    assert queue.claim(db_url, "gw-b", "u2")
    queue.release(db_url, "gw-b", ["u1"])  # not b's: nothing happens
    assert not queue.claim(db_url, "gw-b", "u1")
    queue.release(db_url, "gw-a", ["u1"])
    assert queue.claim(db_url, "gw-b", "u1")
    assert queue.claim(db_url, "gw-c", "u3", seconds=-1)  # a lease its process let expire
    assert queue.claim(db_url, "gw-a", "u3")

    with ThreadPoolExecutor(8) as pool:  # eight workers race for fresh users
        for user in ("r1", "r2", "r3"):
            wins = list(pool.map(lambda i, u=user: queue.claim(db_url, f"w{i}", u), range(8)))
            assert sum(wins) == 1, (user, wins)


def test_a_newly_configured_token_pair_replaces_the_rotated_old_one(db_url: str) -> None:
    """Re-authorising the OA gives a new pair in ZALO_ACCESS_TOKEN/ZALO_REFRESH_TOKEN; the
    pair rotated from the old authorisation must not keep being used (it is dead)."""
    store = queue.DbTokenStore(db_url, "acc-0", "ref-0")
    asyncio.run(store.save("acc-1", "ref-1"))  # rotated from the configured pair
    same_config = queue.DbTokenStore(db_url, "acc-0", "ref-0")  # a restart
    assert asyncio.run(same_config.get()) == ("acc-1", "ref-1")
    reauthorised = queue.DbTokenStore(db_url, "acc-NEW", "ref-NEW")
    assert asyncio.run(reauthorised.get()) == ("acc-NEW", "ref-NEW")
    asyncio.run(reauthorised.save("acc-NEW-2", "ref-NEW-2"))
    assert asyncio.run(queue.DbTokenStore(db_url, "acc-NEW", "ref-NEW").get()) == (
        "acc-NEW-2", "ref-NEW-2")


def test_work_is_read_again_under_the_lease(db_url: str) -> None:
    """A worker's list may predate another worker's round: after taking the lease it asks
    again whether the event still waits and the reply is still due."""
    queue.record_event(db_url, "k-again", "u7", b"{}")
    [(inbox_id, _)] = queue.unprocessed(db_url)
    assert queue.still_unprocessed(db_url, inbox_id)
    queue.complete(db_url, inbox_id, "u7", [("text", {"text": "một"})])
    assert not queue.still_unprocessed(db_url, inbox_id)
    [item] = queue.due(db_url)
    assert queue.still_due(db_url, item.id)
    queue.mark_sent(db_url, item.id, "zid")
    assert not queue.still_due(db_url, item.id)

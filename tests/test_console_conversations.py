"""Conversations in Rasa's SQL tracker store, listed and read by the console.

A real stack (its own SQLite database, seeded) talks through the gateway's REST API; the
console then reads what Rasa stored in its `events` table beside our tables. The PostgreSQL
variant builds Rasa's own tracker store from the endpoints file the stack generates and
saves a conversation through it (skipped when no server is reachable).

Starting Rasa takes a minute on 2 cores, so the console's three integration modules
(conversations, inbox, stats) share one stack and database: `console_stack` starts it on
first use and stops it at the end of the session. Each module uses its own sender ids and
looks only at what it made (messages after its start time, or differences).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import create_engine, inspect
from sqlalchemy.engine.url import make_url

from bot.catalog.db import session_scope
from bot.catalog.seed import load_seed
from bot.config import ROOT, Settings
from bot.console.conversations import (
    VIETNAM,
    channel_of,
    conversation_exists,
    list_conversations,
    read_conversation,
)
from bot.stack import TRACKER_PASSWORD_ENV, Stack, tracker_store_config, write_endpoints
from tests.conftest import own_stack, throwaway_postgres

WEB = "console-web-0001"
WIDGET = "console-widget-0001"
NONSENSE = "xyzzy qwerty blorp"
FEE_QUESTION = "làm lại căn cước hết bao nhiêu tiền"
PASSPORT = "hộ chiếu cần giấy tờ gì"
_SHARED: dict[str, Any] = {}


def base(st: Stack) -> str:
    return f"http://{st.settings.bot_host}:{st.settings.bot_port}"


def post(st: Stack, path: str, body: dict[str, Any]) -> dict[str, Any]:
    """POST JSON as the widget does (its Origin header is the gateway's own)."""
    req = urllib.request.Request(
        base(st) + path, data=json.dumps(body).encode(), method="POST",
        headers={"Content-Type": "application/json", "Origin": base(st)})
    with urllib.request.urlopen(req, timeout=60) as resp:
        assert resp.status == 200
        return json.loads(resp.read())


def chat(st: Stack, sender: str, text_: str, channel: str | None = None) -> str:
    """One turn; the answer as the widget shows it (the REST parts joined as one bubble)."""
    body: dict[str, Any] = {"sender": sender, "text": text_}
    if channel:
        body["metadata"] = {"channel": channel}
    messages = post(st, "/api/v1/chat", body)["messages"]
    return "\n\n".join(m["text"] for m in messages if m.get("text"))


def rate(st: Stack, session: str, rating: str, answer: str) -> None:
    """A thumbs up/down on an answer, as the widget stores it (the answer's text)."""
    post(st, "/api/v1/feedback", {"session": session, "message_id": uuid.uuid4().hex,
                                  "rating": rating, "text": answer})


def seeded(url: str) -> str:
    with session_scope(url) as s:
        assert load_seed(s).rejected == 0
    return url


def console_stack(trained, request: pytest.FixtureRequest,  # noqa: ANN001
                  tmp_path_factory: pytest.TempPathFactory) -> tuple[Stack, str]:
    """The console modules' shared stack and its database URL (started on first use)."""
    if "stack" not in _SHARED:
        url = seeded(f"sqlite:///{tmp_path_factory.mktemp('console') / 'db.sqlite3'}")
        context = own_stack(trained, "console", DATABASE_URL=url)
        st = context.__enter__()
        request.config.add_cleanup(lambda: context.__exit__(None, None, None))
        request.config.add_cleanup(_SHARED.clear)
        _SHARED.update(stack=st, url=url)
    return _SHARED["stack"], _SHARED["url"]


def now() -> datetime:
    return datetime.now(timezone.utc)


@pytest.fixture(scope="module")
def made(trained, request: pytest.FixtureRequest,  # noqa: ANN001
         tmp_path_factory: pytest.TempPathFactory) -> tuple[str, datetime]:
    """A web conversation (a fee question, nonsense, thanks) and a widget one with a thumbs
    down, made through the real stack; (database URL, time just before)."""
    st, url = console_stack(trained, request, tmp_path_factory)
    assert st.endpoints_file is not None
    generated = yaml.safe_load(st.endpoints_file.read_text(encoding="utf-8"))
    assert generated["tracker_store"]["type"] == "SQL"
    started = now()
    chat(st, WEB, FEE_QUESTION)
    chat(st, WEB, NONSENSE)
    thanks = chat(st, WEB, "cảm ơn")
    rate(st, WEB, "up", thanks)
    answer = chat(st, WIDGET, PASSPORT, channel="widget")
    rate(st, WIDGET, "down", answer)
    return url, started


@pytest.mark.integration
def test_rasa_keeps_conversations_in_the_catalog_database(made: tuple[str, datetime]) -> None:
    url, _ = made
    tables = set(inspect(create_engine(url)).get_table_names())
    assert {"events", "procedures", "feedback"} <= tables
    with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
        # Rasa's own engine writes into our file, in the WAL mode our engine set
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        senders = {r[0] for r in conn.execute("SELECT DISTINCT sender_id FROM events")}
        indexes = {r[1] for r in conn.execute("PRAGMA index_list('events')")}
    assert {WEB, WIDGET} <= senders
    assert "ix_events_sender_id" in indexes  # what every per-conversation read relies on


@pytest.mark.integration
def test_list_shows_channel_counts_and_ratings(made: tuple[str, datetime]) -> None:
    url, started = made
    with session_scope(url) as s:
        rows, total = list_conversations(s, since=started)
    assert total == 2
    assert [r.sender_id for r in rows] == [WIDGET, WEB]  # latest activity first
    by = {r.sender_id: r for r in rows}
    web, widget = by[WEB], by[WIDGET]
    assert (web.channel, web.messages, web.fallbacks, web.thumbs_up, web.thumbs_down) == (
        "web", 3, 1, 1, 0)
    assert (widget.channel, widget.messages, widget.fallbacks, widget.thumbs_down) == (
        "widget", 1, 0, 1)
    assert web.first_message == FEE_QUESTION and widget.first_message == PASSPORT
    assert started <= web.started <= web.last_activity <= widget.last_activity


@pytest.mark.integration
@pytest.mark.parametrize(("filters", "expected"), [
    ({"channel": "web"}, [WEB]),
    ({"channel": "widget"}, [WIDGET]),
    ({"channel": "zalo"}, []),
    ({"intent": "ask_fee"}, [WEB]),
    ({"intent": "ask_documents"}, [WIDGET]),
    ({"fallback_only": True}, [WEB]),
    ({"thumbs_down_only": True}, [WIDGET]),
    ({"text_query": "CAN CUOC"}, [WEB]),  # case and diacritics ignored
    ({"text_query": "hộ chiếu"}, [WIDGET]),
    ({"text_query": "%"}, []),  # a LIKE wildcard is searched for, not obeyed
    ({"channel": "web", "fallback_only": True, "intent": "thank"}, [WEB]),
    ({"channel": "widget", "fallback_only": True}, []),
])
def test_list_filters(made: tuple[str, datetime], filters: dict[str, Any],
                      expected: list[str]) -> None:
    url, started = made
    with session_scope(url) as s:
        rows, total = list_conversations(s, since=started, **filters)
    assert sorted(r.sender_id for r in rows) == sorted(expected) and total == len(expected)


@pytest.mark.integration
def test_list_date_range_and_paging(made: tuple[str, datetime]) -> None:
    url, started = made
    with session_scope(url) as s:
        rows, _ = list_conversations(s, since=started)
        last = max(r.last_activity for r in rows)
        day = last.astimezone(VIETNAM).date()
        mine = {WEB, WIDGET}
        whole_day = {r.sender_id for r in list_conversations(s, since=day, until=day,
                                                             limit=1000)[0]}
        assert mine <= whole_day  # dates are whole Việt Nam days
        assert list_conversations(s, since=day + timedelta(days=1))[1] == 0
        assert not mine & {r.sender_id for r in list_conversations(
            s, until=started.astimezone(VIETNAM).date() - timedelta(days=1), limit=1000)[0]}
        assert list_conversations(s, since=last + timedelta(seconds=1))[1] == 0
        page, total = list_conversations(s, since=started, limit=1, offset=1)
    assert total == 2 and [r.sender_id for r in page] == [WEB]


@pytest.mark.integration
def test_read_conversation_with_nlu_results(made: tuple[str, datetime]) -> None:
    url, _ = made
    with session_scope(url) as s:
        turns = read_conversation(s, WEB)
        assert conversation_exists(s, WEB) and not conversation_exists(s, "nobody-here")
        assert read_conversation(s, "nobody-here") == []
    assert [t.text for t in turns] == [FEE_QUESTION, NONSENSE, "cảm ơn"]
    fee, nonsense, thanks = turns
    assert fee.intent == "ask_fee" and 0.6 <= fee.confidence <= 1.0
    procedure = [e for e in fee.entities if e.entity == "procedure"]
    assert procedure and FEE_QUESTION[procedure[0].start:procedure[0].end] == "làm lại căn cước"
    assert "action_answer_fee" in fee.actions
    codes = [v for name, v in fee.slots if name == "procedure_code"]
    assert codes and codes[0] in fee.answer  # the answer names the procedure's code
    assert nonsense.is_fallback and nonsense.confidence is not None
    assert nonsense.ranking[0][0] == "nlu_fallback" and len(nonsense.ranking) > 3
    assert [r.action for r in nonsense.replies] == ["utter_default"]
    assert thanks.intent == "thank" and thanks.feedback == ["up"]
    assert fee.feedback == [] and nonsense.feedback == []
    assert all(t.channel == "web" and t.at is not None for t in turns)
    assert fee.at < nonsense.at < thanks.at
    with session_scope(url) as s:
        (widget,) = read_conversation(s, WIDGET)
    assert widget.channel == "widget" and widget.intent == "ask_documents"
    assert widget.feedback == ["down"] and widget.replies[0].buttons  # candidate buttons


def test_channel_of() -> None:
    assert channel_of("zalo-123", None) == "zalo"
    assert channel_of("abc", {"channel": "widget"}) == "widget"
    assert channel_of("abc", {"channel": "<b>"}) == "unknown"


def test_endpoints_keep_the_password_out_of_the_file(tmp_path: Path) -> None:
    config, env = tracker_store_config(
        "postgresql+psycopg2://dvc:s%40cret@db.internal:5433/dvc?sslmode=require")
    assert config == {"type": "SQL", "dialect": "postgresql+psycopg2", "db": "dvc",
                      "url": "db.internal", "port": 5433, "username": "dvc",
                      "password": "${" + TRACKER_PASSWORD_ENV + "}",
                      "query": {"sslmode": "require"}}
    assert env == {TRACKER_PASSWORD_ENV: "s@cret"}
    assert tracker_store_config("sqlite://") == (None, {})  # in memory: not shareable
    settings = Settings.from_env({"DATABASE_URL": f"sqlite:///{tmp_path / 'x.sqlite3'}"})
    path, env = write_endpoints(settings, tmp_path / "run")
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert data["tracker_store"] == {"type": "SQL", "dialect": "sqlite",
                                     "db": str(tmp_path / "x.sqlite3")}
    assert data["action_endpoint"] == {"url": "${ACTION_ENDPOINT_URL}"} and env == {}
    assert path.stat().st_mode & 0o777 == 0o600
    # the checked-in file stays in memory for a bare `rasa shell` / `rasa test`
    checked_in = yaml.safe_load((ROOT / "endpoints.yml").read_text(encoding="utf-8"))
    assert checked_in["tracker_store"]["type"] == "InMemoryTrackerStore"


@pytest.fixture()
def pg_url() -> Iterator[str]:
    """A throw-away PostgreSQL database, reached with a password (trust auth ignores it)."""
    with throwaway_postgres("dvc_test") as plain:
        url = make_url(plain)
        yield (url if url.password else url.set(password="p@ss word")).render_as_string(
            hide_password=False)


def test_postgres_tracker_store(pg_url: str, tmp_path: Path,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Rasa reads the generated endpoints file and stores a conversation in PostgreSQL,
    next to our tables; the console lists and reads it there."""
    from rasa.core.tracker_store import SQLTrackerStore, TrackerStore
    from rasa.shared.core.domain import Domain
    from rasa.shared.core.events import ActionExecuted, BotUttered, SlotSet, UserUttered
    from rasa.shared.core.trackers import DialogueStateTracker
    from rasa.utils.endpoints import read_endpoint_config

    seeded(pg_url)
    path, env = write_endpoints(Settings.from_env({"DATABASE_URL": pg_url}), tmp_path)
    assert set(env) == {TRACKER_PASSWORD_ENV} and env[TRACKER_PASSWORD_ENV] not in \
        path.read_text(encoding="utf-8")
    for key, value in {**env, "ACTION_ENDPOINT_URL": "http://127.0.0.1:9/webhook"}.items():
        monkeypatch.setenv(key, value)  # what the stack gives Rasa's process
    domain = Domain.load(str(ROOT / "domain.yml"))
    store = TrackerStore.create(read_endpoint_config(str(path), "tracker_store"), domain)
    assert isinstance(store, SQLTrackerStore)
    parse = {"intent": {"name": "nlu_fallback", "confidence": 0.45},
             "intent_ranking": [{"name": "nlu_fallback", "confidence": 0.45},
                                {"name": "ask_fee", "confidence": 0.3}],
             "entities": [{"entity": "procedure", "start": 0, "end": 16, "value": "1.014064"}]}
    tracker = DialogueStateTracker.from_events("pg-widget-1", [
        ActionExecuted("action_listen"),
        UserUttered(FEE_QUESTION, parse_data=parse, metadata={"channel": "widget"}),
        ActionExecuted("utter_default"),
        BotUttered("Xin lỗi, mình chưa hiểu ý bạn."),
        SlotSet("procedure_code", "1.014064"),
        ActionExecuted("action_listen"),
    ], domain.slots)
    asyncio.run(store.save(tracker))
    store.engine.dispose()
    with session_scope(pg_url) as s:
        rows, total = list_conversations(s, since=now() - timedelta(hours=1))
        assert total == 1 and (rows[0].sender_id, rows[0].channel, rows[0].messages,
                               rows[0].fallbacks) == ("pg-widget-1", "widget", 1, 1)
        assert list_conversations(s, text_query="CĂN cuoc")[1] == 1  # folded in SQL too
        assert list_conversations(s, text_query="100%")[1] == 0
        assert list_conversations(s, channel="widget", fallback_only=True)[1] == 1
        assert list_conversations(s, channel="web")[1] == 0
        (turn,) = read_conversation(s, "pg-widget-1")
    assert (turn.intent, turn.confidence, turn.ranking[1]) == ("nlu_fallback", 0.45,
                                                               ("ask_fee", 0.3))
    assert turn.replies[0].text.startswith("Xin lỗi") and turn.slots == [
        ("procedure_code", "1.014064")]

"""bot/rasa_runtime.py: Rasa's server with its two measured hot paths fixed — the behaviour
must be exactly Rasa's (same validation verdicts and errors, same predictions)."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from jsonschema import ValidationError

from bot.config import ROOT


def _texts(limit: int = 60) -> list[str]:
    data = yaml.safe_load((ROOT / "tests" / "nlu_test.yml").read_text(encoding="utf-8"))
    texts = [line.strip()[2:] for item in data["nlu"]
             for line in item["examples"].splitlines() if line.strip().startswith("- ")]
    return texts[::max(1, len(texts) // limit)]


def test_action_replies_are_still_validated_with_rasas_error() -> None:
    from rasa.core.actions.action import RemoteAction
    from rasa.utils.endpoints import EndpointConfig

    from bot import rasa_runtime

    rasa_runtime.apply()
    rasa_runtime.apply()  # idempotent
    action = RemoteAction("action_x", EndpointConfig("http://127.0.0.1:9/webhook"))
    good = {"events": [{"event": "slot", "name": "a", "value": 1}],
            "responses": [{"text": "chào"}]}
    before = rasa_runtime._action_result_validator.cache_info().misses
    for _ in range(3):
        assert action._validate_action_result(good) is True
    with pytest.raises(ValidationError, match="Failed to validate Action server response"):
        action._validate_action_result({"events": "not a list"})
    with pytest.raises(ValidationError):
        action._validate_action_result({"events": [{"no_event_key": 1}]})
    # the schema was checked and the validator built at most once for all of them
    assert rasa_runtime._action_result_validator.cache_info().misses - before <= 1


@pytest.mark.slow
def test_serving_load_predicts_exactly_like_rasas_load(trained) -> None:  # noqa: ANN001
    _, model = trained
    texts = "\n".join(_texts())

    def parse(mode: str) -> list[dict]:
        done = subprocess.run([sys.executable, str(ROOT / "tests" / "rasa_parse_probe.py"),
                               str(model), mode], input=texts, cwd=ROOT, text=True,
                              capture_output=True, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
        return json.loads(done.stdout.strip().splitlines()[-1])

    original, patched = parse("original"), parse("patched")
    assert len(original) == len(patched) == len(texts.splitlines()) >= 30
    for a, b in zip(original, patched, strict=True):
        assert a["intent"] == b["intent"] and a["entities"] == b["entities"]
        assert b["confidence"] == pytest.approx(a["confidence"], abs=1e-5)
        assert [n for n, _ in a["ranking"]] == [n for n, _ in b["ranking"]]
        for (_, ca), (_, cb) in zip(a["ranking"], b["ranking"], strict=True):
            assert cb == pytest.approx(ca, abs=1e-5)


def test_the_stack_starts_rasa_through_the_runtime() -> None:
    source = (ROOT / "bot" / "stack.py").read_text(encoding="utf-8")
    assert '"-m", "bot.rasa_runtime", "run"' in source
    assert Path(ROOT / "bot" / "rasa_runtime.py").exists()


async def test_action_calls_reuse_one_connection_with_rasas_headers() -> None:
    import asyncio

    from aiohttp import web
    from rasa.utils.endpoints import EndpointConfig

    from bot import rasa_runtime

    rasa_runtime.apply()
    peers: set = set()

    async def webhook(request: web.Request) -> web.Response:
        peers.add(request.transport.get_extra_info("peername"))
        return web.json_response({"header": request.headers.get("X-Token"),
                                  "body": await request.json()})

    app = web.Application()
    app.router.add_post("/webhook", webhook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        endpoint = EndpointConfig(f"http://127.0.0.1:{port}/webhook", headers={"X-Token": "t"})
        for i in range(5):
            assert await endpoint.request(json={"n": i}) == {"header": "t", "body": {"n": i}}
        assert len(peers) == 1  # five action calls, one kept-alive connection
        await asyncio.sleep(2.5)  # idle longer than the kept connection may stay open
        assert (await endpoint.request(json={"n": 9}))["body"] == {"n": 9}
        assert len(peers) == 2  # a fresh connection, not a dead one
    finally:
        await runner.cleanup()


def test_graphs_evaluate_like_dask() -> None:
    import dask

    from bot.rasa_runtime import evaluate_graph

    calls: list[str] = []

    def node(name: str):  # noqa: ANN202
        def run(*inputs: object) -> tuple[str, tuple]:
            calls.append(name)
            return name, inputs
        return run

    graph = {
        "__message__": ("__message__", {"text": "xin chào"}),  # an input: a value, not a task
        "tokenizer": (node("tokenizer"), "__message__"),
        "featurizer": (node("featurizer"), "tokenizer"),
        "classifier": (node("classifier"), "featurizer", "tokenizer"),
        "unused": (node("unused"), "tokenizer"),
    }
    ours = evaluate_graph(graph, ["classifier"])
    assert calls == ["tokenizer", "featurizer", "classifier"]  # each node once, in order
    calls.clear()
    assert list(ours) == list(dask.get(graph, ["classifier"]))


async def test_saving_a_read_tracker_needs_no_count_and_stores_each_event_once(
        tmp_path: Path) -> None:
    from rasa.core.tracker_store import SQLTrackerStore
    from rasa.shared.core.domain import Domain
    from rasa.shared.core.events import ActionExecuted, BotUttered, UserUttered
    from rasa.shared.core.trackers import DialogueStateTracker
    from sqlalchemy import event

    from bot import rasa_runtime

    rasa_runtime.apply()
    domain = Domain.load(str(ROOT / "domain.yml"))
    store = SQLTrackerStore(domain, dialect="sqlite", db=str(tmp_path / "t.sqlite3"))
    statements: list[str] = []
    event.listen(store.engine, "before_cursor_execute",
                 lambda *args: statements.append(str(args[2]).lower()))

    tracker = DialogueStateTracker.from_events("c1", [ActionExecuted("action_listen")])
    await store.save(tracker)  # a tracker the store never read: counted as Rasa does
    for turn in range(3):
        tracker = await store.retrieve("c1")
        statements.clear()
        tracker.update(UserUttered(f"câu {turn}", {"name": "greet", "confidence": 1.0}))
        tracker.update(BotUttered(f"trả lời {turn}"))
        tracker.update(ActionExecuted("action_listen"))
        await store.save(tracker)
        assert not any("count(" in s for s in statements), statements
        await store.save(tracker)  # saving again adds nothing
    stored = await store.retrieve_full_tracker("c1")
    texts = [e.text for e in stored.events if isinstance(e, (UserUttered, BotUttered))]
    assert texts == ["câu 0", "trả lời 0", "câu 1", "trả lời 1", "câu 2", "trả lời 2"]
    assert len(stored.events) == 1 + 3 * 3


async def test_tracker_store_survives_a_database_restart_without_double_turns() -> None:
    """PostgreSQL restarted (every pooled connection dead) and a save whose commit reached
    the database but whose answer was lost: the turn is stored, and stored once."""
    import os

    import psycopg2
    from rasa.core.tracker_store import SQLTrackerStore
    from rasa.shared.core.domain import Domain
    from rasa.shared.core.events import ActionExecuted, BotUttered, UserUttered
    from rasa.shared.core.trackers import DialogueStateTracker
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine.url import make_url
    from sqlalchemy.pool import NullPool

    from bot import rasa_runtime
    from bot.scratch_db import DEFAULT_ADMIN_URL
    from tests.conftest import throwaway_postgres

    with throwaway_postgres("dvc_rt") as db_url:
        # beside the test's database (unpooled: nothing to close), to cut its connections
        admin = create_engine(os.environ.get("DATABASE_ADMIN_URL", DEFAULT_ADMIN_URL),
                              isolation_level="AUTOCOMMIT", future=True, poolclass=NullPool)
        name = make_url(db_url).database
        rasa_runtime.apply()
        url = make_url(db_url)
        store = SQLTrackerStore(Domain.load(str(ROOT / "domain.yml")),
                                dialect="postgresql", host=url.host, port=url.port,
                                username=url.username, db=name)
        await store.save(DialogueStateTracker.from_events(
            "c1", [ActionExecuted("action_listen")]))

        def turn(tracker: DialogueStateTracker, n: int) -> None:
            tracker.update(UserUttered(f"câu {n}", {"name": "greet", "confidence": 1.0}))
            tracker.update(BotUttered(f"trả lời {n}"))
            tracker.update(ActionExecuted("action_listen"))

        tracker = await store.retrieve("c1")
        turn(tracker, 0)
        with admin.connect() as conn:  # a restart, as the pool sees it
            conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                              "WHERE datname = :d"), {"d": name})
        await store.save(tracker)

        # A commit that reached the database, then the connection broke: the retry
        # must count what is stored instead of inserting the turn again.
        tracker = await store.retrieve("c1")
        turn(tracker, 1)
        real_commit, broke = store.engine.dialect.do_commit, []

        def commit_then_break(dbapi_connection) -> None:  # noqa: ANN001
            real_commit(dbapi_connection)
            if not broke:
                broke.append(1)
                raise psycopg2.OperationalError("server closed the connection unexpectedly")

        store.engine.dialect.do_commit = commit_then_break  # type: ignore[method-assign]
        try:
            await store.save(tracker)
        finally:
            store.engine.dialect.do_commit = real_commit  # type: ignore[method-assign]
        assert broke  # the failure did happen, and was retried
        stored = await store.retrieve_full_tracker("c1")
        texts = [e.text for e in stored.events if isinstance(e, (UserUttered, BotUttered))]
        assert texts == ["câu 0", "trả lời 0", "câu 1", "trả lời 1"]
        store.engine.dispose()


async def test_an_unreachable_action_server_fails_over_to_the_next(monkeypatch) -> None:  # noqa: ANN001
    """A replica's own action server down (restarting after a crash): the action runs on
    another one of ACTIONS_URLS; a server that answers with an error is not retried."""
    from aiohttp import web
    from aiohttp.test_utils import TestServer
    from rasa.core.actions.action import RemoteAction
    from rasa.core.channels import CollectingOutputChannel
    from rasa.core.nlg import TemplatedNaturalLanguageGenerator
    from rasa.shared.core.domain import Domain
    from rasa.shared.core.trackers import DialogueStateTracker
    from rasa.shared.exceptions import RasaException
    from rasa.utils.endpoints import EndpointConfig

    from bot import rasa_runtime
    from tests.conftest import free_port

    calls: list[str] = []

    async def webhook(request: web.Request) -> web.Response:
        calls.append((await request.json())["next_action"])
        if request.app["broken"]:
            return web.json_response({"error": "boom"}, status=500)
        return web.json_response({"events": [], "responses": [{"text": "từ máy dự phòng"}]})

    app = web.Application()
    app["broken"] = False
    app.router.add_post("/webhook", webhook)
    async with TestServer(app) as spare:
        down = f"http://127.0.0.1:{free_port()}"  # nothing listens there
        spare_url = str(spare.make_url("")).rstrip("/")
        monkeypatch.setenv("ACTIONS_URLS", f"{down},{spare_url}")
        # Rasa's own run (another test may have applied the runtime's patches in-process)
        run = rasa_runtime._fail_over_to_other_action_servers(inspect.unwrap(RemoteAction.run))
        action = RemoteAction("action_answer", EndpointConfig(f"{down}/webhook"))
        tracker = DialogueStateTracker("fail-over", [])
        domain = Domain.empty()
        nlg = TemplatedNaturalLanguageGenerator(domain.responses)

        events = await run(action, CollectingOutputChannel(), nlg, tracker, domain)
        assert [e.text for e in events] == ["từ máy dự phòng"] and calls == ["action_answer"]
        assert action.action_endpoint.url == f"{down}/webhook"  # the action is not changed

        app["broken"] = True  # it answered: the action may have run, so no second try
        with pytest.raises(RasaException):
            await run(RemoteAction("action_answer", EndpointConfig(f"{spare_url}/webhook")),
                      CollectingOutputChannel(), nlg, tracker, domain)
        assert calls == ["action_answer", "action_answer"]

        monkeypatch.setenv("ACTIONS_URLS", down)  # no other server: Rasa's own error
        with pytest.raises(RasaException, match="Couldn't connect"):
            await run(action, CollectingOutputChannel(), nlg, tracker, domain)

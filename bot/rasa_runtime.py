"""`python -m bot.rasa_runtime run …`: Rasa's own server, with measured hot paths fixed.

Both were found by profiling our Rasa process with py-spy (README "Performance"):

1. Under load, about 60 % of its CPU time went to `RemoteAction._validate_action_result`:
   Rasa 3.6 checks every action server reply with `jsonschema.validate(result, schema)`,
   and that function first validates the *schema itself* against the JSON Schema
   meta-schema (`check_schema`) and builds a new validator, on every call. The reply is
   still validated here, against the same schema and with the same error, by one validator
   built (and its schema checked) once per process.
2. At start, over 80 % of the model loading went to `RasaModel.load` *training* DIET for
   one step (`model.fit`) so that Keras creates every variable, optimizer slots included,
   before the weights are read; the traced training graph then also stays in memory. For
   serving (not fine-tuning) the weights are read first and restored as the prediction
   graph creates its variables (TensorFlow's restore-on-create of object checkpoints);
   the optimizer's slots, which prediction never uses, are left in the file. Predictions
   are the same (tests/test_rasa_runtime.py compares both loads on the same messages).
3. Smaller, per message: a kept-alive HTTP session to the action server instead of a new
   session and connection per action call (`_KeptSession`); the list of Event subclasses
   that every event read from the tracker store walks, computed once; no COUNT query to
   find a saved tracker's new events (`_count_stored_events_once`); the prediction graph
   run in order without dask's scheduler (`_run_graphs_in_order`).

4. Not for speed: a custom action that cannot run (action server down) gives the citizen
   the gateway's apology instead of silence (`_apologise_when_actions_fail`); the tracker
   store retries reads and writes while the database restarts (`_retry_database`, a retried
   write never stores a turn twice) and checks pooled connections before use; a turn that
   still fails gives the apology instead of an answer that was never stored.

JAX, installed as a TensorFlow dependency, is kept out of the process: TensorFlow Lite's
helpers import it when it is there (and do without it), which cost 2 s of every start and
memory; nothing Rasa serves uses it.

Everything else is Rasa unchanged: the arguments are `rasa`'s (`run --enable-api …`).
`bot run`, the tests and the benchmark start Rasa through this module (bot/stack.py);
training and `rasa test` use plain `rasa`, which never talks to the action server.
"""

from __future__ import annotations

import functools
from typing import Any

_APPLIED = False


@functools.lru_cache(maxsize=1)
def _action_result_validator() -> Any:  # noqa: ANN401 - a jsonschema validator instance
    from jsonschema.validators import validator_for
    from rasa.core.actions.action import RemoteAction

    schema = RemoteAction.action_response_format_spec()
    cls = validator_for(schema)
    cls.check_schema(schema)  # what jsonschema.validate does on every call, done once
    return cls(schema)


def _validate_action_result(self: Any, result: dict[str, Any]) -> bool:  # noqa: ANN401
    """Rasa's check of an action server reply, with the validator built once."""
    from jsonschema import ValidationError
    from rasa.shared.constants import DOCS_BASE_URL

    try:
        _action_result_validator().validate(result)
        return True
    except ValidationError as e:  # the same message Rasa gives
        e.message += (
            ". Failed to validate Action server response from API, "
            "make sure your response from the Action endpoint is valid. "
            f"For more information about the format visit {DOCS_BASE_URL}/custom-actions"
        )
        raise e


def _load_for_serving(original: Any) -> Any:  # noqa: ANN401 - a classmethod
    """`RasaModel.load` that skips the one-step training when loading for prediction."""

    def load(cls: Any, model_file_name: str, model_data_example: Any,  # noqa: ANN401
             predict_data_example: Any = None, finetune_mode: bool = False,  # noqa: ANN401
             *args: Any, **kwargs: Any) -> Any:  # noqa: ANN401
        if finetune_mode or not predict_data_example:
            return original.__func__(cls, model_file_name, model_data_example,
                                     predict_data_example, finetune_mode, *args, **kwargs)
        model = cls(*args, **kwargs)
        status = model.load_weights(model_file_name)
        # building the prediction graph creates the variables; each takes its saved value
        model.run_inference(predict_data_example)
        status.assert_existing_objects_matched()  # every variable prediction uses was read
        status.expect_partial()  # the optimizer's slots stay in the file, on purpose
        return model

    return classmethod(load)


class _KeptSession:
    """What `async with endpoint.session()` gets: a long-lived session that stays open.

    Rasa opens (and closes) a new aiohttp session, hence a new TCP connection, for every
    call to the action server; this one is kept per endpoint and event loop. Idle
    connections are dropped after 2 s, before the action server's own keep-alive timeout
    (Sanic's 5 s), so a request never goes out on a connection the server is closing.
    """

    def __init__(self, session: Any) -> None:  # noqa: ANN401 - aiohttp.ClientSession
        self.session = session

    async def __aenter__(self) -> Any:  # noqa: ANN401
        return self.session

    async def __aexit__(self, *exc: object) -> None:
        return None


def _kept_session(original: Any) -> Any:  # noqa: ANN401 - Rasa's EndpointConfig.session
    def session(self: Any) -> Any:  # noqa: ANN401
        import asyncio

        import aiohttp

        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not in a coroutine: Rasa's own behaviour
            return original(self)
        kept = self.__dict__.get("_dvc_kept")
        if kept is None or kept[0] is not loop or kept[1].session.closed:
            fresh = original(self)  # Rasa's headers, auth and default timeout
            connector = aiohttp.TCPConnector(keepalive_timeout=2.0)
            shared = aiohttp.ClientSession(headers=fresh._default_headers, auth=fresh._default_auth,
                                           timeout=fresh.timeout, connector=connector)
            # the throw-away session never opened a connection; closing it is synchronous
            # in effect, but the coroutine must be awaited: schedule it
            loop.create_task(fresh.close())
            kept = (loop, _KeptSession(shared))
            self.__dict__["_dvc_kept"] = kept
        return kept[1]

    return session


def apply() -> None:
    """Install the fixes in this process (idempotent)."""
    global _APPLIED
    if _APPLIED:
        return
    import rasa.shared.utils.common as common
    from rasa.core.actions.action import RemoteAction
    from rasa.utils.endpoints import EndpointConfig
    from rasa.utils.tensorflow.models import RasaModel

    RemoteAction._validate_action_result = _validate_action_result  # type: ignore[method-assign]
    RasaModel.load = _load_for_serving(RasaModel.__dict__["load"])  # type: ignore[method-assign]
    EndpointConfig.session = _kept_session(EndpointConfig.session)  # type: ignore[method-assign]
    common.all_subclasses = _events_walked_once(common.all_subclasses)
    RemoteAction.run = _apologise_when_actions_fail(  # type: ignore[method-assign]
        _fail_over_to_other_action_servers(RemoteAction.run))
    _apologise_when_a_turn_fails()
    _count_stored_events_once()
    _run_graphs_in_order()
    _APPLIED = True


_ALTERNATES: dict[str, Any] = {}


def _endpoint_at(url: str, like: Any) -> Any:  # noqa: ANN401 - Rasa's EndpointConfig
    """Another action server's endpoint with this one's headers and auth, built once per URL
    (each endpoint keeps its own pooled session, see `_kept_session`; a replica has one
    endpoints file, so one `like` per process)."""
    from rasa.utils.endpoints import EndpointConfig

    if url not in _ALTERNATES:
        _ALTERNATES[url] = EndpointConfig(
            url=f"{url}/webhook", params=like.params, headers=like.headers,
            basic_auth=like.basic_auth, token=like.token, token_name=like.token_name,
            cafile=like.cafile, **like.kwargs)
    return _ALTERNATES[url]


def _other_action_servers(current: str) -> list[str]:
    """ACTIONS_URLS (every action server of the deployment) without the replica's own."""
    import os

    urls = [u.strip().rstrip("/") for u in os.environ.get("ACTIONS_URLS", "").split(",")]
    own = current.rstrip("/").removesuffix("/webhook")
    return [u for u in urls if u and u != own]


def _fail_over_to_other_action_servers(run: Any) -> Any:
    """Each Rasa replica has one action server (its endpoints file). When that one cannot be
    reached (restarting after a crash, killed), the action runs on the next one of
    ACTIONS_URLS instead of the citizen getting the apology. Only a refused or failed
    connection moves it: the request never reached a server, so nothing ran twice."""
    import copy
    import logging

    import aiohttp
    from rasa.shared.exceptions import RasaException

    log = logging.getLogger("bot.rasa_runtime")

    @functools.wraps(run)
    async def wrapped(self: Any, *args: Any, **kwargs: Any) -> Any:
        own = self.action_endpoint
        others = iter(_other_action_servers(own.url) if own is not None else ())
        action = self
        while True:
            try:
                return await run(action, *args, **kwargs)
            except RasaException as exc:
                url = next(others, None)
                if not isinstance(exc.__context__, aiohttp.ClientConnectorError) or url is None:
                    raise
            log.warning("action server %s unreachable, running %s on %s",
                        action.action_endpoint.url, self.name(), url)
            action = copy.copy(self)  # the action object is per turn; never share the change
            action.action_endpoint = _endpoint_at(url, own)

    return wrapped


def _apologise_when_actions_fail(run: Any) -> Any:
    """A custom action that cannot run (action server down, restarting, answering 5xx):
    Rasa logs the error and goes on as if the action had said nothing, so the citizen got
    no answer at all. Here the citizen gets the same apology the gateway gives when Rasa
    is down (with the hotline), and the turn ends; the next message runs normally once
    the action server is back (tests/test_scale_out.py)."""
    import logging
    import os

    from rasa.core.actions.action import ActionExecutionRejection
    from rasa.shared.core.constants import ACTION_LISTEN_NAME
    from rasa.shared.core.events import BotUttered, FollowupAction
    from rasa.shared.exceptions import RasaException

    from bot.gateway.errors import apology_text

    log = logging.getLogger("bot.rasa_runtime")

    @functools.wraps(run)
    async def wrapped(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return await run(self, *args, **kwargs)
        except ActionExecutionRejection:  # a form rejecting input: Rasa's own flow
            raise
        except RasaException as exc:
            log.error("custom action %s failed, the citizen gets an apology: %s",
                      self.name(), exc)
            hotline = os.environ.get("SUPPORT_HOTLINE") or "18001096"
            return [BotUttered(apology_text(hotline)), FollowupAction(ACTION_LISTEN_NAME)]

    return wrapped


def _apologise_when_a_turn_fails() -> None:
    """When handling a message fails (its tracker could not be saved, even after
    `_retry_database`), Rasa's REST channel still returns what the bot had said: the
    citizen reads an answer whose turn was never stored. Here those messages are replaced
    by the apology, so the citizen knows to send the message again and nothing that looked
    answered is lost."""
    import logging
    import os

    from rasa.core.processor import MessageProcessor

    from bot.gateway.errors import apology_text

    original = MessageProcessor.handle_message
    log = logging.getLogger("bot.rasa_runtime")

    @functools.wraps(original)
    async def handle_message(self: Any, message: Any) -> Any:  # noqa: ANN401
        try:
            return await original(self, message)
        except Exception as exc:
            collected = getattr(message.output_channel, "messages", None)
            if isinstance(collected, list):
                collected.clear()
                collected.append({"recipient_id": message.sender_id, "text": apology_text(
                    os.environ.get("SUPPORT_HOTLINE") or "18001096")})
            log.error("turn failed, the citizen gets an apology: %s: %s",
                      type(exc).__name__, str(exc)[:200])
            raise

    MessageProcessor.handle_message = handle_message  # type: ignore[method-assign]


STORED = "_dvc_stored_events"  # on a tracker: how many of its events the store holds


DB_ATTEMPTS = 7  # about 13 s of retries (under LOCK_LIFETIME): a PostgreSQL restart takes seconds


async def _retry_database(call: Any, what: str) -> Any:  # noqa: ANN401
    """Run a tracker-store read or write, again while the database is unreachable (a
    PostgreSQL restart): without it Rasa answers the citizen and loses the turn, because
    its REST channel returns the collected answer even when saving the tracker failed."""
    import asyncio
    import logging

    from sqlalchemy.exc import DBAPIError

    for attempt in range(DB_ATTEMPTS):
        try:
            return await call()
        except DBAPIError as exc:
            if attempt == DB_ATTEMPTS - 1 or not (
                    exc.connection_invalidated or isinstance(exc.orig, OSError)
                    or type(exc.orig).__name__ in ("OperationalError", "InterfaceError")):
                raise
            logging.getLogger("bot.rasa_runtime").warning(
                "tracker store %s failed (%s), retrying", what, type(exc.orig).__name__)
            await asyncio.sleep(min(5.0, 0.25 * 2 ** attempt))
    return None


def _count_stored_events_once() -> None:
    """`SQLTrackerStore.save` asks the database how many events of the current session it
    holds (a COUNT over a sub-query, about a tenth of Rasa's CPU per message) to know which
    of the tracker's events are new. The tracker it saves is the one it read a moment
    before, under the conversation's lock, so that number is known: the events it was
    built from. Trackers the store did not read (new ones) are counted as before."""
    import itertools

    from rasa.core.tracker_store import SQLTrackerStore

    original_retrieve = SQLTrackerStore._retrieve
    original_save = SQLTrackerStore.save
    original_additional = SQLTrackerStore._additional_events

    async def _retrieve(self: Any, sender_id: str,  # noqa: ANN401
                        fetch_events_from_all_sessions: bool) -> Any:  # noqa: ANN401
        tracker = await _retry_database(
            lambda: original_retrieve(self, sender_id, fetch_events_from_all_sessions),
            "read")
        if tracker is not None and not fetch_events_from_all_sessions:
            tracker.__dict__[STORED] = len(tracker.events)
        return tracker

    def _additional_events(self: Any, session: Any, tracker: Any) -> Any:  # noqa: ANN401
        stored = tracker.__dict__.get(STORED)
        if stored is None or stored > len(tracker.events):
            return original_additional(self, session, tracker)
        return itertools.islice(tracker.events, stored, len(tracker.events))

    async def save(self: Any, tracker: Any) -> None:  # noqa: ANN401
        def again() -> Any:  # noqa: ANN401
            # A failed commit may still have reached the database before the connection
            # broke: count what it holds (Rasa's own way) instead of trusting the marker,
            # so a retry adds only the missing events and a turn is never stored twice.
            if again.tried:
                tracker.__dict__.pop(STORED, None)
            again.tried = True
            return original_save(self, tracker)

        again.tried = False  # type: ignore[attr-defined]
        await _retry_database(again, "save")
        tracker.__dict__[STORED] = len(tracker.events)

    original_init = SQLTrackerStore.__init__

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:  # noqa: ANN401
        original_init(self, *args, **kwargs)
        # Rasa's engine hands out pooled connections unchecked: after a PostgreSQL restart
        # every one of them is dead. Checked on checkout (pre-ping), as our own engines are.
        self.engine.pool._pre_ping = True

    SQLTrackerStore.__init__ = __init__  # type: ignore[method-assign]
    SQLTrackerStore._retrieve = _retrieve  # type: ignore[method-assign]
    SQLTrackerStore._additional_events = _additional_events  # type: ignore[method-assign]
    SQLTrackerStore.save = save  # type: ignore[method-assign]


def _run_graphs_in_order() -> None:
    """Rasa runs its prediction graph (a dozen nodes, one after the other) through dask's
    local scheduler for every message; the scheduler's bookkeeping cost more than some of
    the nodes. The same graph is evaluated here in dependency order, each node once, with
    the same inputs, outputs and error."""
    from rasa.engine.exceptions import GraphRunError
    from rasa.engine.runner.dask import DaskGraphRunner

    def run(self: Any, inputs: dict[str, Any] | None = None,  # noqa: ANN401
            targets: list[str] | None = None) -> dict[str, Any]:
        run_targets = targets if targets else self._graph_schema.target_names
        graph = self._build_dask_graph(self._graph_schema.minimal_graph_schema(run_targets))
        if inputs:
            self._add_inputs_to_graph(inputs, graph)
        try:
            return dict(evaluate_graph(graph, run_targets))
        except RuntimeError as e:
            raise GraphRunError("Error running runner.") from e

    DaskGraphRunner.run = run  # type: ignore[method-assign]


def evaluate_graph(graph: dict[str, Any], targets: list[str]) -> list[Any]:
    """dask.get for Rasa's graphs: a task is `(callable, *keys)`; anything else (Rasa's
    inputs, `(name, value)`) is a value. Each task runs once, after the tasks it needs."""
    done: dict[str, Any] = {}

    def value(key: str) -> Any:  # noqa: ANN401
        if key in done:
            return done[key]
        task = graph[key]
        if isinstance(task, tuple) and task and callable(task[0]):
            args = [value(a) if isinstance(a, str) and a in graph else a for a in task[1:]]
            result = task[0](*args)
        else:
            result = task
        done[key] = result
        return result

    return [value(t) for t in targets]


def _events_walked_once(original: Any) -> Any:  # noqa: ANN401 - rasa's all_subclasses
    """Every event read back from the tracker store walks all subclasses of `Event` to find
    its class; Rasa defines them all at import, so that walk is done once (other classes,
    such as slot types a domain may add later, are walked as before)."""
    from rasa.shared.core.events import Event

    events = tuple(original(Event))

    def all_subclasses(cls: Any) -> list[Any]:  # noqa: ANN401
        return list(events) if cls is Event else original(cls)

    return all_subclasses


TOKEN_ENV = "RASA_TOKEN"  # the API token's variable (Settings.rasa_token)


def with_auth_token(argv: list[str], env: dict[str, str]) -> list[str]:
    """`rasa run --enable-api …` with `--auth-token` from RASA_TOKEN; SystemExit without one.

    Rasa's HTTP API loads models and reads and writes every conversation, so it never runs
    without a token (on loopback any local user could call it). Rasa reads the token only
    from its arguments: it is added to this process's argument list here, after the start,
    so `ps` and /proc/PID/cmdline (readable by every user) show the command without it.
    An explicit `--auth-token` / `-t` is kept as given; other commands pass unchanged.
    """
    if len(argv) < 2 or argv[1] != "run" or "--enable-api" not in argv:
        return argv
    if any(a in ("--auth-token", "-t") or a.startswith("--auth-token=") for a in argv):
        return argv
    token = env.get(TOKEN_ENV, "").strip()
    if not token:
        raise SystemExit(f"{TOKEN_ENV} is not set: Rasa's HTTP API (--enable-api) needs a "
                         "token (README \"Security checks\"; `bot run` makes one)")
    return [*argv, f"--auth-token={token}"]  # one word: a token may start with "-"


def main() -> None:
    import os
    import sys

    sys.argv = with_auth_token(sys.argv, dict(os.environ))
    if sys.argv[1:2] == ["run"]:  # serving (Rasa reads the TensorFlow pool sizes at start)
        from bot.config import Settings
        from bot.native_threads import limit_native_threads

        limit_native_threads(Settings.from_env().native_threads)
    sys.modules.setdefault("jax", None)  # type: ignore[arg-type] - `import jax` → ImportError
    apply()
    from rasa.__main__ import main as rasa_main

    rasa_main()


if __name__ == "__main__":
    main()

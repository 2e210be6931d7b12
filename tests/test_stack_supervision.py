"""`bot run`'s supervision (issue 18, items 1 and 2) on cheap stand-in services: a child that
exits is started again with backoff, one that keeps crashing stops the stack with a message,
a stop takes the gateway down first, and children die with their parent. The same `Stack`
runs the real services; tests/test_integration.py stops a real `bot run` with SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from bot.config import Settings
from bot.stack import RestartPolicy, Service, Stack, wait_http
from tests.conftest import free_port

# A child that serves GET / with 200 and, on SIGTERM, notes the time and lingers a moment
# (as a server finishing its requests would) before exiting.
CHILD = textwrap.dedent("""
    import http.server, signal, sys, time, threading
    name, port, notes, linger = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
    def on_term(*_):
        with open(notes, "a") as f:
            f.write(f"{name} term {time.time()}\\n")
        time.sleep(linger)
        with open(notes, "a") as f:
            f.write(f"{name} exit {time.time()}\\n")
        sys.exit(0)
    signal.signal(signal.SIGTERM, on_term)
    class Quiet(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200); self.end_headers(); self.wfile.write(b"ok")
        def log_message(self, *a): pass
    srv = http.server.HTTPServer(("127.0.0.1", port), Quiet)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    while True:
        time.sleep(0.2)
""")


class FakeStack(Stack):
    """A Stack whose services are the stand-in above (names as in the real plan)."""

    def plan(self) -> dict[str, Service]:
        services = {}
        for name, linger in (("actions", 0.0), ("rasa", 0.0), ("gateway", 1.0)):
            port = free_port()
            services[name] = Service(
                [sys.executable, "-c", CHILD, name, str(port), str(self.log_dir / "notes"),
                 str(linger)], f"http://127.0.0.1:{port}/")
        return services


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (exited, not yet reaped by a dead parent's init) counts as gone
        return Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0] != "Z"
    except OSError:
        return False


def until(check, timeout: float = 20.0) -> bool:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return False


@pytest.fixture()
def stack(tmp_path: Path):
    st = FakeStack(Settings(rasa_timeout=1.0), tmp_path / "model.tar.gz", log_dir=tmp_path,
                   restart_policy=RestartPolicy(backoff=0.2, max_backoff=1.0, limit=3,
                                                window=60.0))
    st.start(timeout=30)
    yield st
    st.stop()


def test_a_killed_child_is_started_again_and_serves(stack: Stack, capfd) -> None:  # noqa: ANN001
    old = stack.procs["rasa"].pid
    others = {n: p.pid for n, p in stack.procs.items() if n != "rasa"}
    seen: list[bool] = []

    def crash_and_watch() -> None:
        try:
            stack.kill("rasa")
            seen.append(until(lambda: stack.procs["rasa"].pid != old) and wait_http(
                stack.services["rasa"].health_url, 20, stack.procs["rasa"]))
        finally:
            stack.stopping.set()

    # supervise on the main thread, as `bot run` does: a child dies with the thread that
    # started it (PR_SET_PDEATHSIG), so the restarts must come from a thread that lasts
    threading.Thread(target=crash_and_watch, daemon=True).start()
    assert stack.supervise() == 0  # asked to stop: a clean exit
    assert seen == [True]
    assert "rasa dừng với mã -9; khởi động lại" in capfd.readouterr().err
    time.sleep(0.5)
    assert all(p.poll() is None for p in stack.procs.values())  # supervise does not stop...
    assert {n: p.pid for n, p in stack.procs.items() if n != "rasa"} == others  # ...or touch


def test_a_child_that_keeps_crashing_stops_the_stack_with_a_message(stack: Stack,
                                                                     capfd) -> None:  # noqa: ANN001
    stack.services["actions"].cmd = [sys.executable, "-c", "raise SystemExit(3)"]
    pids = [p.pid for p in stack.procs.values()]
    stack.kill("actions")
    started = time.monotonic()
    assert stack.wait() == 3  # 3 restarts in the window, each exiting at once: give up
    assert time.monotonic() - started < 15  # backoff 0.2, 0.4, 0.8 s, not forever
    err = capfd.readouterr().err
    assert "actions đã dừng 4 lần trong 60 giây (mã 3); dừng toàn bộ trợ lý" in err
    assert not any(alive(pid) for pid in pids)  # and wait() stopped the others


def test_stop_takes_the_gateway_down_before_rasa_and_the_actions(stack: Stack) -> None:
    pids = [p.pid for p in stack.procs.values()]
    stack.stop()
    notes = [line.split() for line in (stack.log_dir / "notes").read_text().splitlines()]
    at = {(name, what): float(t) for name, what, t in notes}
    # the gateway lingers 1 s (finishing its requests): the others are asked only after
    assert at[("gateway", "exit")] <= at[("rasa", "term")]
    assert at[("gateway", "exit")] <= at[("actions", "term")]
    assert not any(alive(pid) for pid in pids)
    assert stack.procs == {}


def test_stopping_while_starting_ends_the_start(tmp_path: Path) -> None:
    st = FakeStack(Settings(), tmp_path / "model.tar.gz", log_dir=tmp_path)
    st.plan = lambda: {"actions": Service([sys.executable, "-c", "import time; time.sleep(60)"],
                                          f"http://127.0.0.1:{free_port()}/")}
    threading.Timer(0.5, st.stopping.set).start()
    started = time.monotonic()
    st.start(timeout=60)  # never healthy: only the stop request ends the wait
    assert time.monotonic() - started < 10
    st.stop()


PARENT = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from bot.config import Settings
    from bot.stack import Stack
    st = Stack(Settings(), Path("model.tar.gz"), log_dir=Path(sys.argv[1]))
    child = st._spawn("actions", [sys.executable, "-c", "import time; time.sleep(120)"])
    print(child.pid, flush=True)
    time.sleep(120)
""")


def test_children_stop_when_bot_run_dies_abruptly(tmp_path: Path) -> None:
    """SIGKILL or an OOM kill gives `bot run` no chance to stop its children (each in its own
    session): they get SIGTERM from the kernel (PR_SET_PDEATHSIG) and exit."""
    parent = subprocess.Popen([sys.executable, "-c", PARENT, str(tmp_path)],
                              stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parent.parent)
    child = int(parent.stdout.readline())
    assert alive(child)
    parent.send_signal(signal.SIGKILL)
    parent.wait(10)
    assert until(lambda: not alive(child), 10), "the child outlived its parent"

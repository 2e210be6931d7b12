"""The whole assistant: real action server, real Rasa server, real gateway, real database.

The processes are started by `bot.stack.Stack`, the same code `bot run` uses.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from bot.catalog.db import session_scope
from bot.catalog.models import Procedure
from bot.stack import Stack
from bot.text import fold
from tests.conftest import ROOT, free_port

pytestmark = pytest.mark.integration

HEALTH_TOKEN = "integration-health-token"  # /healthz's details (README "Security checks")
MONITOR = {"Authorization": f"Bearer {HEALTH_TOKEN}"}


def http(method: str, url: str, body: dict | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.fixture(scope="module")
def stack(trained) -> Iterator[Stack]:
    settings, model = trained
    st = Stack(replace(settings, health_token=HEALTH_TOKEN), model, log_dir=model.parent / "logs")
    st.start()
    yield st
    st.stop()


def base(st: Stack) -> str:
    return f"http://{st.settings.bot_host}:{st.settings.bot_port}"


def chat(st: Stack, sender: str, text: str) -> tuple[int, list[dict]]:
    status, body = http("POST", f"{base(st)}/api/v1/chat", {"sender": sender, "text": text})
    return status, body.get("messages", [])


def joined(msgs: list[dict]) -> str:
    """All bubble texts of one reply (Rasa splits a text on blank lines)."""
    return "\n".join(m.get("text") or "" for m in msgs)


def code_of(st: Stack, name_part: str) -> Procedure:
    with session_scope(st.settings.database_url) as s:
        procs = s.query(Procedure).order_by(Procedure.code).all()
        exact = [p for p in procs if fold(p.short_name or "") == fold(name_part)]
        for p in exact + [p for p in procs if fold(name_part) in fold(p.name)]:
            _ = (p.channels, p.documents)
            return p
    raise AssertionError(name_part)


def test_healthz_reports_all_parts_ok(stack: Stack) -> None:
    status, body = http("GET", f"{base(stack)}/healthz", headers=MONITOR)
    assert status == 200, body
    assert body["status"] == "ok"
    assert all(body["checks"][k]["ok"] for k in ("rasa", "actions", "database"))
    assert http("GET", f"{base(stack)}/healthz") == (200, {"status": "ok"})  # the public


def test_birth_registration_conversation(stack: Stack) -> None:
    """greet → documents → fee follow-up → time follow-up, all from the catalog."""
    birth = code_of(stack, "đăng ký khai sinh")
    sender = "it-birth"
    status, msgs = chat(stack, sender, "chào bạn")
    assert status == 200 and "Xin chào" in msgs[0]["text"]

    status, msgs = chat(stack, sender, "làm giấy khai sinh cho con cần gì")
    text = joined(msgs)
    buttons = [b for m in msgs for b in m["buttons"]]
    if birth.code not in text:  # the bot may ask which variant: pick birth registration
        payload = next(b["payload"] for b in buttons if birth.code in b["payload"])
        status, msgs = chat(stack, sender, payload)
        text = joined(msgs)
    assert birth.code in text and "Hồ sơ cần chuẩn bị" in text
    assert birth.documents[0].name in text

    status, msgs = chat(stack, sender, "mất phí không")
    text = joined(msgs)
    assert birth.code in text and "Phí, lệ phí" in text

    status, msgs = chat(stack, sender, "bao lâu thì có")
    text = joined(msgs)
    assert birth.code in text and "Thời hạn giải quyết" in text


def test_accent_free_teencode_question(stack: Stack) -> None:
    marriage = code_of(stack, "đăng ký kết hôn")
    status, msgs = chat(stack, "it-marriage", "dang ky ket hon can giay to j v")
    assert status == 200
    text = joined(msgs)
    payloads = " ".join(b["payload"] for m in msgs for b in m["buttons"])
    assert marriage.code in text or marriage.code in payloads


def test_button_payload_answers_directly(stack: Stack) -> None:
    p = code_of(stack, "lý lịch tư pháp")
    payload = "/ask_fee" + json.dumps({"procedure": p.code})
    status, msgs = chat(stack, "it-button", payload)
    assert status == 200 and p.code in joined(msgs) and "Phí, lệ phí" in joined(msgs)


def test_out_of_scope_and_handoff(stack: Stack) -> None:
    _, msgs = chat(stack, "it-oos", "hôm nay thời tiết Hà Nội thế nào")
    assert "ngoài phạm vi" in joined(msgs) or "chưa hiểu" in joined(msgs)
    _, msgs = chat(stack, "it-human", "cho tôi nói chuyện với cán bộ")
    assert "chuyển cuộc trò chuyện tới cán bộ" in joined(msgs)


def test_search_endpoint(stack: Stack) -> None:
    p = code_of(stack, "đăng ký tạm trú")
    status, body = http("GET", f"{base(stack)}/api/v1/procedures/search?q=dang%20ky%20tam%20tru"
                               "&limit=3")
    assert status == 200 and body["results"][0]["code"] == p.code
    assert set(body["results"][0]) == {"code", "name", "score"}


def test_cli_parse_and_search(trained) -> None:
    settings, model = trained
    env = {**os.environ, "DATABASE_URL": settings.database_url,
           "MODELS_DIR": str(model.parent)}
    out = subprocess.run([sys.executable, "-m", "bot", "parse", "--model", str(model)],
                         input="lệ phí làm hộ chiếu bao nhiêu\n\nxin chào\n", text=True,
                         capture_output=True, env=env, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert [r["text"] for r in rows] == ["lệ phí làm hộ chiếu bao nhiêu", "xin chào"]
    assert rows[0]["intent"] == "ask_fee" and rows[1]["intent"] == "greet"
    assert set(rows[0]) == {"text", "intent", "confidence", "entities"}
    assert any(e["entity"] == "procedure" for e in rows[0]["entities"])
    out = subprocess.run([sys.executable, "-m", "bot", "search", "--limit", "2"],
                         input="cap lai can cuoc\n", text=True, capture_output=True, env=env,
                         cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    row = json.loads(out.stdout)
    assert row["text"] == "cap lai can cuoc" and 1 <= len(row["results"]) <= 2


def test_terminal_shell_talks_through_the_gateway(stack: Stack) -> None:
    env = {**os.environ, "BOT_PORT": str(stack.settings.bot_port),
           "BOT_HOST": stack.settings.bot_host}
    out = subprocess.run([sys.executable, "-m", "bot", "shell"], input="chào bạn\n/thoat\n",
                         text=True, capture_output=True, env=env, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "Trợ lý: Xin chào" in out.stdout


def _stat(pid: int) -> list[str]:
    """State, parent pid, … of a live process from /proc ([] when it is gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return []


def running(pid: int) -> bool:
    state = _stat(pid)
    return bool(state) and state[0] != "Z"


def children_of(pid: int) -> list[int]:
    """Processes whose parent is `pid` (the stack's children run in their own sessions)."""
    found = []
    for entry in Path("/proc").iterdir():
        state = _stat(int(entry.name)) if entry.name.isdigit() else []
        if state and state[0] != "Z" and int(state[1]) == pid:
            found.append(int(entry.name))
    return found


def test_bot_run_serves_and_stops_cleanly_on_sigterm(trained, tmp_path) -> None:
    """`bot run` (what `make run` calls) with an existing model: no training, URL printed;
    SIGTERM (systemd, Docker, `kill`) answers the message in flight, then stops every child
    and frees the ports (issue 18, item 1)."""

    settings, model = trained
    models = tmp_path / "models"
    models.mkdir()
    (models / model.name).symlink_to(model)
    port = free_port()
    env = {**os.environ, "DATABASE_URL": settings.database_url, "MODELS_DIR": str(models),
           "BOT_PORT": str(port), "RASA_PORT": str(free_port()),
           "ACTIONS_PORT": str(free_port()),
           # the session's catalog is the seed: the shipped national snapshot is loaded on a
           # first start (tests/test_snapshot.py), which would change it for other modules
           "CATALOG_SNAPSHOT": ""}
    proc = subprocess.Popen([sys.executable, "-m", "bot", "run"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()  # blocks until the assistant is ready (or exits)
        assert f"http://127.0.0.1:{port}/" in line, line
        status, body = http("GET", f"http://127.0.0.1:{port}/healthz")
        assert status == 200 and body["status"] == "ok"
        console = proc.stdout.readline()
        assert f"http://127.0.0.1:{port}/console/" in console, console
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/console/login", timeout=30) as r:
            assert r.status == 200 and "Đăng nhập" in r.read().decode()
        children = children_of(proc.pid)
        assert len(children) == 3, children  # actions, rasa, gateway
        answer: list = []
        asking = threading.Thread(target=lambda: answer.append(http(
            "POST", f"http://127.0.0.1:{port}/api/v1/chat",
            {"sender": "sigterm-test", "text": "làm hộ chiếu cần giấy tờ gì"})))
        asking.start()
        time.sleep(0.3)  # the gateway has accepted the message (a turn takes longer)
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=90)
    asking.join(60)
    assert code == 0, proc.stderr.read()[-2000:]
    status, body = answer[0]
    assert status == 200 and body["messages"], body
    assert "Xin lỗi" not in body["messages"][0]["text"]  # a real answer, not the apology
    assert not [pid for pid in children if running(pid)]
    for p in (port, int(env["RASA_PORT"]), int(env["ACTIONS_PORT"])):
        with socket.socket() as sock:  # free again: a server could listen there (a closed
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # connection's
            sock.bind(("127.0.0.1", p))  # TIME_WAIT does not stop a server, a listener does
            sock.listen()


def test_rasa_down_gives_apology_and_503(stack: Stack) -> None:
    """Runs last in this module: stops Rasa and checks the gateway degrades politely."""
    rasa = stack.procs["rasa"]
    rasa.terminate()
    rasa.wait(timeout=30)
    status, body = http("POST", f"{base(stack)}/api/v1/chat", {"sender": "x", "text": "chào"})
    assert status == 503
    assert "Xin lỗi" in body["messages"][0]["text"]
    status, body = http("GET", f"{base(stack)}/healthz", headers=MONITOR)
    assert status == 503 and body["checks"]["rasa"]["ok"] is False
    assert body["checks"]["database"]["ok"] is True

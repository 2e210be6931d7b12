"""The registry end to end: a real `rasa test nlu`, a real (deliberately bad) training, the
gate refusing it, a forced hot swap into a running stack while a conversation goes on, and
the rollback.

The good model is the session's `trained` model; only the bad one is trained here (DIET for
one epoch, without the character n-gram featurizer: about two minutes). The registry has its
own database and models folder; the stack (action server, Rasa, gateway) runs on the
session's catalog and keeps conversations in its SQL tracker store.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from bot.catalog.db import session_scope
from bot.catalog.models import Procedure
from bot.config import ROOT, Settings
from bot.registry.activation import (
    ActivationError,
    GateRefused,
    activate,
    rollback,
    server_status,
)
from bot.registry.evaluation import TEST_FILE, evaluate
from bot.registry.registry import activation_history, get_model, list_models, model_id_for
from bot.registry.training_job import (
    TrainingBusy,
    TrainingProgress,
    cancel_training,
    current_job,
    get_job,
    group_alive,
    start_training,
)
from bot.stack import Stack
from bot.text import fold
from tests.conftest import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SENDER = "registry-flow"


@dataclass
class Flow:
    stack: Stack
    reg: Settings
    good: Path
    bad_config: Path


def worse_config(path: Path) -> Path:
    """config.yml with DIET trained for one epoch and no character n-grams: clearly worse."""
    config = yaml.safe_load((ROOT / "config.yml").read_text(encoding="utf-8"))
    pipeline = []
    for component in config["pipeline"]:
        if component.get("analyzer") == "char_wb":
            continue
        if component["name"] == "DIETClassifier":
            component = {**component, "epochs": 1}
        pipeline.append(component)
    config["pipeline"] = pipeline
    path.write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False),
                    encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def flow(trained, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flow]:
    settings, model = trained
    base = tmp_path_factory.mktemp("registry-flow")
    models = base / "models"
    models.mkdir()
    good = models / model.name
    try:
        os.link(model, good)
    except OSError:
        shutil.copy2(model, good)
    own = Settings.from_env({
        "DATABASE_URL": settings.database_url, "MODELS_DIR": str(models),
        "BOT_PORT": str(free_port()), "RASA_PORT": str(free_port()),
        "ACTIONS_PORT": str(free_port()),
        "RASA_TIMEOUT": "300",  # a turn sent while Rasa loads a model waits for it
    })
    stack = Stack(own, good, log_dir=base / "logs")
    stack.start()
    reg = Settings.from_env({
        "DATABASE_URL": f"sqlite:///{base / 'registry.sqlite3'}", "MODELS_DIR": str(models),
        "RASA_URLS": own.rasa_url,
        # Rasa's API token, made by the stack (bot run without RASA_TOKEN makes one per run)
        "RASA_TOKEN": stack.settings.rasa_token,
    })
    try:
        yield Flow(stack, reg, good, worse_config(base / "config-worse.yml"))
    finally:
        stack.stop()


def chat(stack: Stack, text: str) -> str:
    url = f"http://{stack.settings.bot_host}:{stack.settings.bot_port}/api/v1/chat"
    req = urllib.request.Request(url, data=json.dumps({"sender": SENDER, "text": text}).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=400) as resp:
        body = json.loads(resp.read())
    return "\n".join((m.get("text") or "") + " " + " ".join(b["payload"] for b in m["buttons"])
                     for m in body["messages"])


def served(stack: Stack) -> str | None:
    """The model file the stack's Rasa serves (its /status, with the stack's API token)."""
    status = server_status(stack.settings.rasa_url, token=stack.settings.rasa_token)
    return (status or {}).get("model_file")


def tracker_slot(stack: Stack, slot: str) -> object:
    with urllib.request.urlopen(f"{stack.settings.rasa_url}/conversations/{SENDER}/tracker"
                                f"?token={stack.settings.rasa_token}", timeout=60) as resp:
        return json.loads(resp.read())["slots"].get(slot)


def birth_registration(stack: Stack) -> str:
    with session_scope(stack.settings.database_url) as s:
        for p in s.query(Procedure).order_by(Procedure.code):
            if fold(p.short_name or "") == fold("đăng ký khai sinh"):
                return p.code
    raise AssertionError("no birth registration in the seed catalog")


def test_evaluation_reads_rasa_reports_of_the_serving_model(flow: Flow) -> None:
    result = evaluate(model_id_for(flow.good), flow.reg)
    m = result.model.metrics
    test = yaml.safe_load(TEST_FILE.read_text(encoding="utf-8"))["nlu"]
    intents = {item["intent"] for item in test}
    count = sum(1 for item in test for line in item["examples"].splitlines()
                if line.strip().startswith("- "))
    assert m["support"] == count
    assert set(m["intents"]) == intents
    assert sum(i["support"] for i in m["intents"].values()) == count
    assert all(0.0 <= i["f1"] <= 1.0 for i in m["intents"].values())
    # accuracy is what the misclassified messages say it is
    assert m["accuracy"] == pytest.approx((count - len(m["errors"])) / count)
    assert 0.7 < m["accuracy"] <= 1.0 and 0.7 < m["weighted_f1"] <= 1.0
    assert all(e["intent"] != e["predicted"] for e in m["errors"])
    picture = Path(m["confusion_matrix"])
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert picture.parent.parent.name == f"{result.model.id}-eval"
    assert result.gate["passed"] and result.model.active  # it serves: nothing to beat


def test_gate_refuses_a_worse_model_force_swaps_it_live_and_rollback_restores(
        flow: Flow, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    stack, reg = flow.stack, flow.reg
    good_id = model_id_for(flow.good)
    birth = birth_registration(stack)

    # Turn 1 on the good model sets the conversation's procedure.
    reply = chat(stack, "làm giấy khai sinh cho con cần gì")
    if "Hồ sơ cần chuẩn bị" not in reply:  # the bot offered variants: pick birth registration
        reply = chat(stack, "/ask_documents" + json.dumps({"procedure": birth}))
    assert birth in reply and "Hồ sơ cần chuẩn bị" in reply

    # A background training can be cancelled: its whole process tree stops, the lock is free.
    job_id = start_training(reg, by="tester", config=flow.bad_config)
    assert current_job(reg).id == job_id
    cancelled = cancel_training(reg, job_id, by="tester")
    assert cancelled.status == "cancelled" and "tester" in cancelled.error
    assert not group_alive(cancelled.pid)
    assert current_job(reg) is None

    # A deliberately worse model, trained in the background as the console does it, with
    # the progress the console polls.
    job_id = start_training(reg, by="tester", config=flow.bad_config)
    with pytest.raises(TrainingBusy):  # one training at a time
        start_training(reg, by="someone else")
    seen = []
    deadline = time.monotonic() + 900
    while (job := get_job(reg, job_id)).running and time.monotonic() < deadline:
        seen.append((job.percent, job.phase))
        time.sleep(0.5)
    assert job.status == "succeeded" and job.error is None, (job.error, job.log_path)
    assert job.percent == 100.0 and job.model_id and job.background
    percents = [p for p, _ in seen]
    assert percents == sorted(percents) and len(set(percents)) > 3
    phases = [p for _, p in seen]
    assert any(p.startswith("Đánh giá") for p in phases)
    # One DIET epoch may pass between two polls: the epoch phases are read from the job's
    # own log, through the same parser that wrote the progress rows.
    progress, epoch_phases = TrainingProgress(), []
    for line in Path(job.log_path).read_text(encoding="utf-8", errors="replace") \
            .replace("\r", "\n").splitlines():
        if progress.feed(line):
            epoch_phases.append(progress.phase)
    assert any(p.startswith("Huấn luyện DIETClassifier: vòng") for p in epoch_phases)
    bad = get_model(reg, job.model_id)
    good = get_model(reg, good_id)
    assert (bad.source, bad.trained_by, bad.parent_id) == ("registry", "tester", good_id)
    assert bad.config_path == str(flow.bad_config.resolve()) and len(bad.data_fingerprint) == 64
    assert bad.weighted_f1 < good.weighted_f1 - reg.model_gate_margin
    assert bad.gate["passed"] is False and bad.gate["baseline_id"] == good_id
    assert any("F1 có trọng số" in r for r in bad.gate["reasons"])
    assert bad.gate["worse"], "the intents that got worse are listed"
    assert not bad.active and good.active  # a candidate never serves by itself

    # The gate refuses it, through the API and the CLI; Rasa keeps the good model.
    with pytest.raises(GateRefused):
        activate(bad.id, reg, by="tester")
    from bot.cli import main

    for key in ("DATABASE_URL", "MODELS_DIR"):
        monkeypatch.setenv(key, str(getattr(reg, key.lower())))
    monkeypatch.setenv("RASA_URLS", reg.rasa_urls[0])
    monkeypatch.setenv("RASA_TOKEN", reg.rasa_token)
    assert main(["model", "activate", bad.id]) == 1
    err = capsys.readouterr().err
    assert "không qua ngưỡng so sánh" in err and "Traceback" not in err
    assert served(stack) == flow.good.name

    # --force swaps it into the running server; a turn sent meanwhile is answered, and the
    # conversation keeps its procedure (the follow-ups are payloads: the bad NLU is bad).
    during: dict[str, str] = {}
    sender = threading.Thread(target=lambda: during.update(reply=chat(stack, "/ask_fee")))
    timer = threading.Timer(1.0, sender.start)
    timer.start()
    forced = activate(bad.id, reg, by="tester", force=True)
    timer.join()
    sender.join(timeout=400)
    assert [s.outcome for s in forced.servers] == ["swapped"] and forced.kind == "force"
    status = server_status(stack.settings.rasa_url, token=stack.settings.rasa_token)
    assert status["model_file"] == f"{bad.id}.tar.gz" and status["model_id"] == bad.rasa_model_id
    assert birth in during["reply"] and "Phí, lệ phí" in during["reply"]
    reply = chat(stack, "/ask_processing_time")
    assert birth in reply and "Thời hạn giải quyết" in reply
    assert tracker_slot(stack, "procedure_code") == birth

    # Rollback puts the good model back, still the same conversation, in plain words again.
    back = rollback(reg, by="tester")
    assert back.model.id == good_id and back.previous_id == bad.id
    assert served(stack) == flow.good.name
    reply = chat(stack, "mất phí không")
    assert birth in reply and "Phí, lệ phí" in reply
    states = {m.id: (m.status, m.active) for m in list_models(reg)}
    assert states[good_id] == ("active", True) and states[bad.id] == ("retired", False)
    assert [(h.kind, h.model_id) for h in activation_history(reg)[:2]] == [
        ("rollback", good_id), ("force", bad.id)]


class FailingRasa(ThreadingHTTPServer):
    """A second "Rasa server" that reports a model and then fails to load the new one."""

    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                body = json.dumps({"model_file": "elsewhere.tar.gz", "model_id": "x"}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_PUT(self) -> None:  # noqa: N802
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                body = b'{"message": "disk full"}'
                self.send_response(500)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


def test_a_failed_swap_restores_the_servers_already_swapped(flow: Flow) -> None:
    """Two servers, the second fails: the first is put back, the registry does not change."""
    serving = get_model(flow.reg, "active")
    history = activation_history(flow.reg)
    copy = flow.reg.models_dir / "20991231-000000-same-weights-other-file.tar.gz"
    shutil.copy2(flow.good, copy)
    fake = FailingRasa()
    both = replace(flow.reg, rasa_urls=(flow.stack.settings.rasa_url, fake.url))
    try:
        with pytest.raises(ActivationError) as failed:
            activate(model_id_for(copy), both, by="tester", force=True)
    finally:
        fake.shutdown()
    assert "disk full" in str(failed.value) and "restored" in str(failed.value)
    assert served(flow.stack) == Path(serving.path).name
    assert get_model(flow.reg, "active").id == serving.id
    assert get_model(flow.reg, model_id_for(copy)).status == "ready"
    assert activation_history(flow.reg) == history  # nothing recorded


async def test_console_model_pages_gate_roles_activate_and_rollback(flow: Flow) -> None:
    """The console over the same registry: the refused model's page explains the gate, an
    agent cannot activate, a trainer is refused the worse model, an admin forces it live and
    a trainer rolls back — each audited, each a real hot swap in the running Rasa."""
    from aiohttp.test_utils import TestClient, TestServer
    from sqlalchemy import select

    from bot.console import accounts
    from bot.console.models import AuditEntry
    from bot.gateway.app import create_app
    from tests.test_console_auth import PASSWORD, csrf_of, login

    reg, stack = flow.reg, flow.stack
    good_id = model_id_for(flow.good)
    bad = next(m for m in list_models(reg) if m.gate and m.gate["passed"] is False)
    with session_scope(reg.database_url) as s:
        for name, role in (("an", "agent"), ("minh", "trainer"), ("quan", "admin")):
            accounts.add_operator(s, name, PASSWORD, role)
    console = Settings.from_env({"DATABASE_URL": reg.database_url,
                                 "MODELS_DIR": str(reg.models_dir),
                                 "RASA_URLS": reg.rasa_urls[0], "RASA_URL": reg.rasa_urls[0],
                                 "RASA_TOKEN": reg.rasa_token,
                                 "ACTIONS_URL": stack.settings.actions_url})

    async def client_for(name: str) -> TestClient:
        c = TestClient(TestServer(create_app(console)))
        await c.start_server()
        await login(c, name)
        return c

    agent = await client_for("an")
    try:
        assert (await agent.get("/console/models")).status == 403
        token = await csrf_of(agent)
        resp = await agent.post(f"/console/models/{bad.id}/activate", data={"csrf": token})
        assert resp.status == 403
    finally:
        await agent.close()

    trainer = await client_for("minh")
    admin = await client_for("quan")
    try:
        html = await (await trainer.get("/console/models")).text()
        assert bad.id in html and good_id in html and "đang dùng" in html
        page = await (await trainer.get(f"/console/models/{bad.id}")).text()
        assert "Kém hơn mô hình đang dùng" in page and 'data-testid="metrics"' in page
        assert 'data-testid="activate" disabled' in page
        if bad.metrics.get("confusion_matrix"):
            picture = await trainer.get(f"/console/models/{bad.id}/confusion.png")
            assert picture.status == 200 and picture.content_type == "image/png"
        token = await csrf_of(trainer)
        resp = await trainer.post(f"/console/models/{bad.id}/activate",
                                  data={"csrf": token, "force": "1"})
        assert resp.status == 403  # forcing is for admins
        resp = await trainer.post(f"/console/models/{bad.id}/activate", data={"csrf": token})
        assert resp.status == 409 and "F1 có trọng số" in await resp.text()
        assert served(stack) == flow.good.name

        token = await csrf_of(admin)
        resp = await admin.post(f"/console/models/{bad.id}/activate",
                                data={"csrf": token, "force": "1"})
        assert resp.status == 200, await resp.text()
        assert served(stack) == f"{bad.id}.tar.gz"

        token = await csrf_of(trainer)
        resp = await trainer.post("/console/models/rollback", data={"csrf": token})
        assert resp.status == 200, await resp.text()
        assert served(stack) == flow.good.name
        with session_scope(reg.database_url) as s:
            done = [(e.actor, e.action) for e in s.execute(select(AuditEntry).where(
                AuditEntry.action.startswith("model.")).order_by(AuditEntry.id)).scalars()]
        assert done == [("quan", "model.activate"), ("minh", "model.rollback")]
    finally:
        await trainer.close()
        await admin.close()


async def test_console_model_pages_in_a_browser(flow: Flow) -> None:
    """In Chromium: start a training and watch its progress, stop it; compare the refused
    model with the serving one (scores, gate, confusion matrix); force it live as an admin
    and roll back — real hot swaps in the running Rasa."""
    from aiohttp.test_utils import TestServer
    from playwright.async_api import async_playwright

    from bot.catalog.db import session_scope as scope
    from bot.console import accounts
    from bot.gateway.app import create_app
    from bot.registry.training_job import current_job

    chromium = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    if not Path(chromium).exists():
        pytest.fail(f"chromium not found at {chromium}: `make test` installs it")
    reg, stack = flow.reg, flow.stack
    good_id = model_id_for(flow.good)
    bad = next(m for m in list_models(reg) if m.gate and m.gate["passed"] is False)
    with scope(reg.database_url) as s:
        accounts.add_operator(s, "bichvan", PASSWORD_BROWSER, "admin", "Chị Bích Vân")
    console = Settings.from_env({"DATABASE_URL": reg.database_url,
                                 "MODELS_DIR": str(reg.models_dir),
                                 "RASA_URLS": reg.rasa_urls[0], "RASA_URL": reg.rasa_urls[0],
                                 "RASA_TOKEN": reg.rasa_token,
                                 "ACTIONS_URL": stack.settings.actions_url})
    server = TestServer(create_app(console), host="127.0.0.1")
    await server.start_server()
    base_url = str(server.make_url("")).rstrip("/")
    try:
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            page = await browser.new_page(viewport={"width": 1280, "height": 1000})
            page.on("dialog", lambda d: asyncio.ensure_future(d.accept()))
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            await page.goto(base_url + "/console/models")
            await page.fill("#username", "bichvan")
            await page.fill("#password", PASSWORD_BROWSER)
            await page.click("button[type=submit]")
            await page.wait_for_selector("[data-testid='models']")

            # Train: the progress bar appears and moves; stop it (a full training is slow).
            await page.click("[data-testid='train']")
            await page.wait_for_selector("[data-testid='training'] progress")
            job = current_job(reg)
            assert job is not None and job.requested_by == "bichvan"
            await page.wait_for_function(
                "document.querySelector('[data-job-text]').textContent.includes('%')")
            await page.click("[data-testid='cancel-training']")
            await page.wait_for_selector("[data-testid='train']", timeout=60_000)
            assert current_job(reg) is None

            # Compare: the refused model against the serving one.
            await page.click(f"text={bad.id}")
            await page.wait_for_selector("[data-testid='gate']")
            gate = await page.inner_text("[data-testid='gate']")
            assert "Kém hơn mô hình đang dùng" in gate and "Kém hơn:" in gate
            assert await page.locator("[data-testid='metrics'] tr").count() > 10
            assert await page.is_disabled("[data-testid='activate']")
            if bad.metrics.get("confusion_matrix"):
                width = await page.eval_on_selector("[data-testid='confusion']",
                                                    "img => img.naturalWidth")
                assert width > 100  # the picture loaded
            await page.screenshot(path=str(ROOT / "var" / "screenshots" / "console-model.png"),
                                  full_page=True)

            # Activate (forced, as an admin), then roll back.
            await page.click("text=Vẫn kích hoạt (quản trị)")
            await page.wait_for_selector("text=Đã lưu.", timeout=300_000)
            assert served(stack) == f"{bad.id}.tar.gz"
            await page.click("[data-testid='rollback']")
            await page.wait_for_selector("text=Đã lưu.", timeout=300_000)
            assert served(stack) == flow.good.name
            row = page.locator("tr.current")
            assert good_id in await row.inner_text()
            assert not errors, errors
            await browser.close()
    finally:
        await server.close()


PASSWORD_BROWSER = "mat-khau-trinh-duyet-1"

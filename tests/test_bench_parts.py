"""The benchmark's parts: the load generator against a real HTTP peer, /proc readings,
the workload file, and the report's ratios and targets."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from aiohttp import web

from bot.bench import procs
from bot.bench.load import (
    LoadResult,
    Target,
    gateway_answered,
    gateway_payload,
    rasa_answered,
    rasa_payload,
    run_load,
)
from bot.bench.runner import BenchOptions, Run, build_report, format_table, load_workload

IN_FLIGHT = web.AppKey("in_flight", dict)


async def _peer(delay: float, fail_every: int = 0) -> tuple[web.AppRunner, str, list[dict]]:
    """A Rasa-REST-like server on loopback that records what it received."""
    seen: list[dict] = []
    in_flight = {"now": 0, "max": 0}

    async def webhook(request: web.Request) -> web.Response:
        body = await request.json()
        seen.append(body)
        number = len(seen)
        in_flight["now"] += 1
        in_flight["max"] = max(in_flight["max"], in_flight["now"])
        await asyncio.sleep(delay)
        in_flight["now"] -= 1
        if fail_every and number % fail_every == 0:
            return web.json_response({"error": "boom"}, status=500)
        return web.json_response([{"recipient_id": body["sender"], "text": "ok"}])

    app = web.Application()
    app.router.add_post("/webhooks/rest/webhook", webhook)
    app[IN_FLIGHT] = in_flight
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}/webhooks/rest/webhook", seen


async def test_closed_loop_keeps_turn_order_and_concurrency() -> None:
    runner, url, seen = await _peer(delay=0.02)
    try:
        target = Target("t", url, rasa_payload, rasa_answered)
        convos = [["a1", "a2", "a3"], ["b1", "b2"]]
        result = await run_load(target, convos, concurrency=4, duration=0.6, run_id="x")
        in_flight = runner.app[IN_FLIGHT]["max"]
    finally:
        await runner.cleanup()
    assert result.errors == 0
    assert len(result.latencies) == len(seen) > 8
    assert in_flight <= 4  # never more messages in flight than conversations
    by_sender: dict[str, list[str]] = {}
    for body in seen:
        by_sender.setdefault(body["sender"], []).append(body["message"])
    for texts in by_sender.values():  # one conversation per sender, turns in order
        assert texts in (["a1", "a2", "a3"][: len(texts)], ["b1", "b2"][: len(texts)])
    assert len(by_sender) == result.conversations
    assert min(result.latencies) >= 0.02
    assert result.summary()["p50_ms"] >= 20


async def test_failures_are_counted_not_timed() -> None:
    runner, url, seen = await _peer(delay=0.0, fail_every=3)
    try:
        target = Target("t", url, rasa_payload, rasa_answered)
        result = await run_load(target, [["x", "y", "z"]], concurrency=2, duration=0.3,
                                run_id="y")
    finally:
        await runner.cleanup()
    assert result.errors == len(seen) // 3
    assert len(result.latencies) + result.errors == len(seen)
    assert "HTTP 500" in result.error_samples[0]


async def test_unreachable_target_is_an_error_not_a_crash() -> None:
    target = Target("t", "http://127.0.0.1:9/none", rasa_payload, rasa_answered)
    result = await run_load(target, [["x"]], concurrency=2, duration=0.2, run_id="z")
    assert result.errors > 0 and not result.latencies
    assert result.summary()["p50_ms"] is None


def test_answer_checks() -> None:
    assert rasa_answered([{"text": "chào"}])
    assert not rasa_answered([]) and not rasa_answered({"messages": []})
    assert gateway_answered({"messages": [{"text": "", "buttons": [{"title": "a"}]}]})
    assert not gateway_answered({"messages": []}) and not gateway_answered([{"text": "x"}])
    assert gateway_payload("s", "m")["metadata"] == {"channel": "widget"}


def test_proc_readings_follow_a_child_process() -> None:
    child = subprocess.Popen([sys.executable, "-c",
                              "x = bytearray(80 * 1024 * 1024)\n"
                              "import time\nt = time.time()\n"
                              "while time.time() - t < 1.0: pass\n"
                              "time.sleep(30)"])
    try:
        # the tree reading of this process must include the child
        before = procs.usage(os.getpid())
        time.sleep(1.5)
        after = procs.usage(os.getpid())
        assert child.pid in procs.tree(os.getpid())
        assert procs.rss_mb(child.pid) > 70
        assert after.rss_mb >= procs.rss_mb(child.pid) + procs.rss_mb(os.getpid()) - 1
        assert procs.cpu_seconds(child.pid) > 0.5  # the busy second
        assert after.cpu_s - before.cpu_s > 0.4  # the child's busy second, in this tree
    finally:
        child.kill()
        child.wait()
    assert procs.rss_mb(child.pid) == 0.0 and procs.cpu_seconds(child.pid) == 0.0


def test_shipped_workload_is_valid_and_mixed() -> None:
    w = load_workload()
    texts = [t for c in w.conversations for t in c]
    assert len(w.conversations) >= 8 and all(len(c) >= 1 for c in w.conversations)
    assert any(len(c) >= 3 for c in w.conversations)  # multi-turn follow-ups
    assert any("lệ phí" in t or "phí" in t for t in texts)  # fee questions
    assert any(t.isascii() for t in texts)  # without diacritics
    assert "receipt_code" in w.status_csv.splitlines()[0]
    assert w.starter_conversations and len(w.digest) == 12


@pytest.mark.parametrize("content, problem", [
    ("conversations: []\nstarter_conversations: [[hi]]\n", "conversations"),
    ("conversations: [[xin chào]]\nstarter_conversations: hello\n", "starter_conversations"),
    ("conversations: [[xin chào, '']]\nstarter_conversations: [[hi]]\n", "conversations"),
])
def test_malformed_workload_is_refused_clearly(tmp_path: Path, content: str,
                                               problem: str) -> None:
    path = tmp_path / "w.yaml"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(SystemExit, match=problem):
        load_workload(path)


def _result(target: str, level: int, latencies: list[float], wall: float = 10.0) -> LoadResult:
    return LoadResult(target, level, latencies=latencies, wall_s=wall)


def test_report_ratios_and_targets(tmp_path: Path) -> None:
    run = Run(BenchOptions(levels=(1, 10), headline=10, out_dir=tmp_path))
    run.loads = [
        _result("starter", 10, [0.100] * 50 + [0.200] * 50),
        _result("gateway", 10, [0.050] * 90 + [0.150] * 10),
        _result("rasa", 10, [0.048] * 90 + [0.140] * 10),
        _result("gateway", 1, [0.030] * 10, wall=2.0),
    ]
    run.rss = {"actions": 200.0, "rasa": 700.0, "gateway": 100.0, "total": 1000.0}
    run.starter_rss = 900.0
    run.ready_s, run.starter_ready_s = 20.0, 40.0
    run.quality = {"intent_acc": 0.9, "faq_top1": 0.6, "faq_top3": 0.8}
    report = build_report(run, load_workload(), Path("m.tar.gz"))
    assert report["p50_ms"] == 50.0 and report["starter_p50_ms"] == 150.0
    assert report["ratios"]["p50_ratio"] == round(50 / 150, 3)
    assert report["gateway_overhead_ratio"] == round(50.0 / 48.0, 3)
    assert report["ratios"]["rss_ratio"] == round(1000 / 900, 3)
    assert report["targets"]["rss_ratio"]["met"] is True  # 1.11 ≤ 1.2
    assert report["targets"]["ready_ratio"]["met"] is True
    assert report["msgs_per_s"] == 10.0  # the gateway's best run: 100 in 10 s, not 10 in 2 s
    table = format_table(report)
    assert "| gateway | 10 | 50.0 |" in table and "start → first answer" in table


def test_report_flags_a_missed_target(tmp_path: Path) -> None:
    run = Run(BenchOptions(levels=(10,), headline=10, out_dir=tmp_path))
    run.loads = [_result("starter", 10, [0.05] * 10), _result("gateway", 10, [0.10] * 10),
                 _result("rasa", 10, [0.05] * 10)]
    run.rss, run.starter_rss = {"total": 3000.0}, 1000.0
    report = build_report(run, load_workload(), Path("m.tar.gz"))
    assert report["targets"]["p50_ratio"]["met"] is False
    assert report["targets"]["gateway_overhead_ratio"]["value"] == 2.0
    assert report["targets"]["rss_ratio"]["met"] is False
    assert report["all_targets_met"] is False
    assert "**no**" in format_table(report)

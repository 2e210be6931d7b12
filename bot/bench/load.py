"""Closed-loop load: N virtual users, each sending one conversation's turns one at a time.

A closed loop (a user waits for the answer before typing the next message) is how citizens
use a chat, and it makes "10 concurrent conversations" mean exactly ten messages in flight
at most. Latency is measured per message on the client side, so it includes every hop the
target adds (the gateway's, Rasa's, the action server's).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import numpy as np

# A message's body and a check that the reply is a real answer, per kind of target.
Payload = Callable[[str, str], dict[str, Any]]
Check = Callable[[Any], bool]


def rasa_payload(sender: str, text: str) -> dict[str, Any]:
    """Rasa's REST channel body (the starter bot and our Rasa, directly)."""
    return {"sender": sender, "message": text}


def gateway_payload(sender: str, text: str) -> dict[str, Any]:
    """The gateway's chat API body, as the web widget sends it."""
    return {"sender": sender, "text": text, "metadata": {"channel": "widget"}}


def rasa_answered(data: Any) -> bool:
    """Rasa's REST channel answers with a non-empty list of bot messages."""
    return isinstance(data, list) and any(
        isinstance(m, dict) and (m.get("text") or m.get("buttons")) for m in data)


def gateway_answered(data: Any) -> bool:
    """The gateway answers {"messages": [...]} with at least one message."""
    return isinstance(data, dict) and rasa_answered(data.get("messages"))


@dataclass(frozen=True)
class Target:
    """Where the load goes and how to speak to it."""

    name: str
    url: str
    payload: Payload
    answered: Check


@dataclass
class LoadResult:
    """Latencies (seconds) of answered messages, failures, and the measured wall time."""

    target: str
    concurrency: int
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    wall_s: float = 0.0
    conversations: int = 0

    def percentile_ms(self, q: float) -> float | None:
        if not self.latencies:
            return None
        return round(float(np.percentile(np.asarray(self.latencies), q)) * 1000, 1)

    @property
    def msgs_per_s(self) -> float:
        return round(len(self.latencies) / self.wall_s, 2) if self.wall_s else 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "target": self.target, "concurrency": self.concurrency,
            "messages": len(self.latencies), "errors": self.errors,
            "conversations": self.conversations,
            "p50_ms": self.percentile_ms(50), "p95_ms": self.percentile_ms(95),
            "p99_ms": self.percentile_ms(99),
            "mean_ms": round(1000 * sum(self.latencies) / len(self.latencies), 1)
            if self.latencies else None,
            "msgs_per_s": self.msgs_per_s, "wall_s": round(self.wall_s, 2),
            "error_samples": self.error_samples[:5],
        }


async def _send(session: aiohttp.ClientSession, target: Target, sender: str,
                text: str) -> tuple[bool, float, str]:
    body = target.payload(sender, text)
    started = time.perf_counter()
    try:
        async with session.post(target.url, json=body) as resp:
            raw = await resp.read()
            elapsed = time.perf_counter() - started
            if resp.status != 200:
                return False, elapsed, f"HTTP {resp.status}: {raw[:120]!r}"
            data = json.loads(raw)
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError, ValueError) as exc:
        return False, time.perf_counter() - started, f"{type(exc).__name__}: {exc}"
    if not target.answered(data):
        return False, elapsed, f"no answer: {raw[:120]!r}"
    return True, elapsed, ""


async def run_load(target: Target, conversations: Sequence[Sequence[str]], concurrency: int,
                   duration: float, run_id: str, timeout: float = 60.0) -> LoadResult:
    """`concurrency` users send conversations to `target` for `duration` seconds.

    No new message starts after the deadline; messages in flight then are still counted
    (their latency is real) and the wall time runs until the last one returns. Each
    conversation uses a fresh sender id so trackers do not grow across the run.
    """
    result = LoadResult(target.name, concurrency)
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    client_timeout = aiohttp.ClientTimeout(total=timeout)
    started = time.perf_counter()
    deadline = started + duration

    async def user(index: int, session: aiohttp.ClientSession) -> None:
        turn = 0
        while time.perf_counter() < deadline:
            # users start at different conversations: the mix is the same from the start
            convo = conversations[(index + turn) % len(conversations)]
            sender = f"bench-{run_id}-{target.name}-{concurrency}-{index}-{turn}"
            turn += 1
            for i, text in enumerate(convo):
                if time.perf_counter() >= deadline:
                    return
                if i == 0:  # counted once its first message is sent, not before the check
                    result.conversations += 1
                ok, elapsed, why = await _send(session, target, sender, text)
                if ok:
                    result.latencies.append(elapsed)
                else:
                    result.errors += 1
                    if len(result.error_samples) < 5:
                        result.error_samples.append(why)

    async with aiohttp.ClientSession(connector=connector, timeout=client_timeout) as session:
        await asyncio.gather(*(user(i, session) for i in range(concurrency)))
    result.wall_s = time.perf_counter() - started
    return result


async def send_once(target: Target, sender: str, text: str,
                    timeout: float = 10.0) -> tuple[bool, str]:
    """One message: (answered, why not) — readiness probes and warm-up use it."""
    client_timeout = aiohttp.ClientTimeout(total=timeout)
    async with aiohttp.ClientSession(timeout=client_timeout) as session:
        ok, _, why = await _send(session, target, sender, text)
        return ok, why

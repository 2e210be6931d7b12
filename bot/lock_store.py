"""Rasa's Redis lock store, with a degraded mode while Redis is unreachable.

Several Rasa replicas share one tracker store; Rasa's lock store serialises the messages
of one conversation so two replicas never update its tracker at once. With Rasa's own
`RedisLockStore`, every message fails while Redis is down. Here, a Redis error switches
the replica to in-process locks for `RETRY_SECONDS`, then Redis is tried again.

Why that is safe enough to keep answering: the gateway routes each conversation to one
replica (rendezvous hashing, README "Scaling out"), so in-process locks still serialise a
conversation as long as its replica stays up. Only a conversation that fails over to
another replica *while* Redis is down could be handled by two replicas at once. The
degraded mode is logged once per switch (both ways), and the gateway's /healthz shows
the lock store as down.

Configured in the endpoints file `bot.stack` writes when REDIS_URL is set:
`lock_store: {type: bot.lock_store.FallbackRedisLockStore, url: host, port, db, ...}`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import rasa.core.lock_store as lock_store_module
from rasa.core.lock import TicketLock
from rasa.core.lock_store import InMemoryLockStore, LockError, LockStore, RedisLockStore
from rasa.utils.endpoints import EndpointConfig
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

RETRY_SECONDS = 10.0  # how long a replica keeps to in-process locks before trying Redis
SOCKET_TIMEOUT = 2.0  # seconds: a hung Redis must not hold a citizen's message for Rasa's 10


class FallbackRedisLockStore(LockStore):
    """Redis ticket locks; in-process ticket locks while Redis does not answer."""

    def __init__(self, endpoint_config: EndpointConfig) -> None:
        kwargs: dict[str, Any] = dict(endpoint_config.kwargs or {})
        kwargs.setdefault("socket_timeout", SOCKET_TIMEOUT)
        self.redis = RedisLockStore(host=endpoint_config.url or "localhost", **kwargs)
        self.memory = InMemoryLockStore()
        self._degraded_until = 0.0
        super().__init__()

    @property
    def degraded(self) -> bool:
        return time.monotonic() < self._degraded_until

    def _fall_back(self, exc: Exception) -> None:
        if not self.degraded:
            log.error("Redis lock store unreachable (%s): this replica uses in-process "
                      "conversation locks until it answers again (degraded mode, README "
                      "\"Scaling out\")", type(exc).__name__)
        self._degraded_until = time.monotonic() + RETRY_SECONDS
        self._was_degraded = True

    def _recovered(self) -> None:
        if getattr(self, "_was_degraded", False):
            self._was_degraded = False
            log.warning("Redis lock store answers again: shared conversation locks resumed")

    def _call(self, name: str, *args: Any) -> Any:
        if not self.degraded:
            try:
                result = getattr(self.redis, name)(*args)
            except RedisError as exc:
                self._fall_back(exc)
            else:
                self._recovered()
                return result
        return getattr(self.memory, name)(*args)

    async def _acquire_lock(self, conversation_id: str, ticket: int,
                            wait_time_in_seconds: float) -> TicketLock:
        """Rasa's wait for our turn, with the waiting ticket kept alive.

        In Rasa's loop a waiting ticket expires like the one it waits for: when a replica
        dies holding a conversation's lock, the ticket of the replica waiting behind it
        (issued moments later, same lifetime) expires within the same poll, and the waiter
        then spins until its client gives up (seen in `bot loadtest`: a killed replica's
        conversations hung for the gateway's whole timeout). Here a waiter renews its own
        ticket on every poll — it is alive — so only a dead holder's ticket runs out.
        """
        while True:
            lock = self.get_lock(conversation_id)
            if lock is None:
                break
            if not lock.is_locked(ticket):
                return lock
            mine = next((t for t in lock.tickets if t.number == ticket), None)
            if mine is None:  # our ticket is gone (Redis flushed or failed over)
                break
            mine.expires = max(mine.expires, time.time() + lock_store_module.LOCK_LIFETIME)
            lock.remove_expired_tickets()
            self.save_lock(lock)
            await asyncio.sleep(wait_time_in_seconds)
        raise LockError(f"Could not acquire lock for conversation_id '{conversation_id}'.")

    def get_lock(self, conversation_id: str) -> TicketLock | None:
        return self._call("get_lock", conversation_id)

    def delete_lock(self, conversation_id: str) -> None:
        self._call("delete_lock", conversation_id)

    def save_lock(self, lock: TicketLock) -> None:
        self._call("save_lock", lock)

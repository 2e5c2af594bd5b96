"""Hearing about cancels: one Redis pattern subscription per worker process.

A step registers its run id and an asyncio.Event; the listener thread sets the event
when the run's cancel signal arrives. The heartbeat's database poll is the fallback.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any

import redis
from django.conf import settings

from core.per_process import PerProcess
from runs.cancel_signal import channel_pattern, run_id_from_channel

logger = logging.getLogger(__name__)


class CancelListener:
    def __init__(self) -> None:
        self._waiters: dict[str, tuple[asyncio.AbstractEventLoop, asyncio.Event]] = {}
        self._lock = threading.Lock()
        self.subscribed = threading.Event()
        threading.Thread(target=self._listen_forever, name="nomaflow-cancel", daemon=True).start()

    def watch(self, run_id: str) -> asyncio.Event:
        """An event that is set when `run_id` is canceled; call `forget` when done."""
        event = asyncio.Event()
        with self._lock:
            self._waiters[run_id] = (asyncio.get_running_loop(), event)
        return event

    def forget(self, run_id: str) -> None:
        with self._lock:
            self._waiters.pop(run_id, None)

    def _notify(self, run_id: str) -> None:
        with self._lock:
            waiter = self._waiters.get(run_id)
        if waiter and not waiter[0].is_closed():
            waiter[0].call_soon_threadsafe(waiter[1].set)

    def _listen_forever(self) -> None:
        while True:
            try:
                self._listen()
            except Exception as exc:  # Redis restarted or unreachable: retry, the poll covers us
                self.subscribed.clear()
                logger.warning("cancel listener lost Redis (%s); reconnecting", exc)
                time.sleep(1)

    def _listen(self) -> None:
        client = redis.Redis.from_url(settings.REDIS_URL, health_check_interval=10)
        pubsub = client.pubsub(ignore_subscribe_messages=False)
        pubsub.psubscribe(channel_pattern())
        for message in pubsub.listen():
            if message["type"] == "psubscribe":
                self.subscribed.set()
            elif message["type"] == "pmessage":
                self._notify(run_id_from_channel(_text(message["channel"])))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _started() -> CancelListener:
    started = CancelListener()
    started.subscribed.wait(2)  # normally instant; the poll covers a slow Redis
    return started


# The process's listener, started on first use (after a prefork child is forked).
listener = PerProcess(_started)

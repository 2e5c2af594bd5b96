"""The one place that sends websocket events (log lines, step and run state changes).

Callers have always persisted what they publish, so a lost event costs a refetch, never
data. Publishing never blocks the caller: messages go onto an in-process queue that one
background event loop drains, in order, into the Channels layer. If Redis is down, slow
or hung, messages are dropped with a warning (the queue is bounded, a send is timed out)
and the step goes on; websocket consumers fill the gaps from the database.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

from channels.layers import get_channel_layer
from django.db import transaction

from core.per_process import PerProcess

from .models import Run, StepRun
from .serializers import RunSummarySerializer, step_run_dict

logger = logging.getLogger(__name__)
QUEUE_LIMIT = 1000  # events waiting for Redis; beyond it new ones are dropped
QUEUE_LINES_LIMIT = 50_000  # log lines waiting for Redis: bounds the worker's memory
SEND_TIMEOUT_S = 5.0  # a hung Redis must not hold the queue forever
BATCH_MAX = 100  # queued events folded into one send per run
# At most one send per COALESCE_S: an event that follows a send within it waits for the
# window's end, with whatever else comes; an event after a quiet spell goes at once. A
# group send costs Redis round trips (and a worker's GIL time) whether anyone watches or
# not, and a fast chain has several events per step.
COALESCE_S = 0.01


def group_name(run_id: str) -> str:
    return f"run.{run_id}"


def publish_log(run_id: str, lines: list[dict[str, Any]]) -> None:
    if lines:
        _send_after_commit(run_id, {"type": "run.log", "lines": lines})


def publish_step(step_run: StepRun, *, last_seq: int | None = None) -> None:
    """`last_seq`: the run's last stored line when the step changed, if the caller knows it
    (a step's end does); consumers then need not ask the database before sending it."""
    message: dict[str, Any] = {"type": "run.step", "step": step_run_dict(step_run)}
    if last_seq is not None:
        message["last_seq"] = last_seq
    _send_after_commit(step_run.run_id, message)


# One serializer for every `run` frame: building its fields costs more than using them, twice a
# run on the worker's path. to_representation keeps no state between calls.
_RUN_FRAME = RunSummarySerializer()


def publish_run(run: Run) -> None:
    _send_after_commit(run.id, {"type": "run.run", "run": _RUN_FRAME.to_representation(run)})


def _send_after_commit(run_id: str, message: dict[str, Any]) -> None:
    # A client that reacts to an event by reading the API must find what it announced.
    transaction.on_commit(lambda: _send(run_id, message))


def _send(run_id: str, message: dict[str, Any]) -> None:
    try:
        _publisher().send(run_id, message)
    except Exception:  # never let the live view break the write that preceded it
        logger.exception("could not queue an event for run %s", run_id)


def wait_until_sent(timeout: float = 5.0) -> bool:
    """Block until every queued event has been handed to Redis (shutdown, tests)."""
    return _publisher().drained.wait(timeout)


class _Publisher:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.queue: asyncio.Queue[tuple[str, dict[str, Any]]] | None = None
        self.queued_lines = 0  # only touched on the loop's thread
        self.drained = threading.Event()
        self.drained.set()
        ready = threading.Event()
        threading.Thread(target=self._serve, args=(ready,), name="nomaflow-events", daemon=True).start()
        ready.wait()

    def send(self, run_id: str, message: dict[str, Any]) -> None:
        self.drained.clear()
        self.loop.call_soon_threadsafe(self._enqueue, group_name(run_id), message)

    def _enqueue(self, group: str, message: dict[str, Any]) -> None:
        assert self.queue is not None
        lines = len(message.get("lines", ()))
        if self.queue.qsize() >= QUEUE_LIMIT or self.queued_lines + lines > QUEUE_LINES_LIMIT:
            logger.warning("event queue full; dropping an event for %s (clients refetch gaps)", group)
            if self.queue.empty():
                self.drained.set()
            return
        self.queued_lines += lines
        self.queue.put_nowait((group, message))

    def _serve(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        self.queue = asyncio.Queue()
        ready.set()
        self.loop.run_until_complete(self._drain())

    async def _drain(self) -> None:
        assert self.queue is not None
        layer = get_channel_layer()
        last_send = -COALESCE_S
        while True:
            first = await self.queue.get()
            # Events queued in the same instant (a step's end) always join; within the
            # window after the last send, so does everything until its end.
            await asyncio.sleep(max(0.0, last_send + COALESCE_S - self.loop.time()))
            last_send = self.loop.time()
            for group, message in self._batches(first):
                try:
                    await asyncio.wait_for(layer.group_send(group, message), SEND_TIMEOUT_S)
                except Exception as exc:  # Redis down: the database still has everything
                    logger.warning("could not publish to %s: %r", group, exc)
            if self.queue.empty():
                self.drained.set()

    def _batches(self, first: tuple[str, dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
        """`first` and whatever else is queued, one message per run: a step's end (its
        lines, then its state) is one group send instead of two. A group send costs several
        Redis round trips whether anyone watches or not, so this is most of publishing's cost."""
        assert self.queue is not None
        by_group: dict[str, list[dict[str, Any]]] = {}
        item: tuple[str, dict[str, Any]] | None = first
        taken = 0
        while item is not None:
            group, message = item
            self.queued_lines -= len(message.get("lines", ()))
            by_group.setdefault(group, []).append(message)
            taken += 1
            item = self.queue.get_nowait() if taken < BATCH_MAX and not self.queue.empty() else None
        return [
            (group, messages[0] if len(messages) == 1 else {"type": "run.batch", "messages": messages})
            for group, messages in by_group.items()
        ]


# One publisher per process: a forked Celery child starts its own.
_publisher = PerProcess(_Publisher)

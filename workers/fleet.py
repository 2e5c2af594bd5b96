"""The worker fleet as Celery itself knows it: the one module that asks the workers (by
broadcast) and the broker (queue depths). Nothing is registered beside what Celery knows:
a worker is live when it answers, and its facts are what it answers.

A broadcast waits its whole timeout (Celery cannot know how many workers will answer), so
the three inspections run at once, and `fleet_snapshot` shares one answer per process for a
few seconds between the pages and the metrics that poll it.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from celery import current_app
from django.utils import timezone
from kombu import Connection
from kombu.exceptions import OperationalError
from redis.exceptions import RedisError

from core.per_process import PerProcess

logger = logging.getLogger(__name__)

# Celery's own inspect commands: pid, uptime and pool size; the queues consumed now; the
# version line of its bug report (nothing else of the report is kept).
INSPECTIONS = ("stats", "active_queues", "report")
# A broker that is down answers no broadcast: try to connect once, not for ever.
CONNECT_RETRIES = 1
# kombu's error for a connection it could not make; redis-py's for one lost after it was made.
BROKER_ERRORS = (OperationalError, RedisError, OSError)
CELERY_VERSION = re.compile(r"celery:(\S+)")


@dataclass(frozen=True)
class Worker:
    """One live Celery worker node."""

    hostname: str  # celery node name, e.g. "celery@host1"
    pid: int
    queues: tuple[str, ...]
    concurrency: int
    version: str  # "celery 5.5.3", "" if the worker did not say in time
    started_at: datetime | None
    last_seen: datetime

    @property
    def host(self) -> str:
        """The machine part of the node name ("host1" of "celery@host1")."""
        return self.hostname.rpartition("@")[2]


def live_workers(timeout_s: float = 1.0) -> list[Worker]:
    """The workers that answer within `timeout_s`, by hostname. A worker that answers late
    or not at all is left out; a broker that is down gives an empty fleet, not an error."""
    with ThreadPoolExecutor(len(INSPECTIONS)) as pool:
        stats, queues, reports = pool.map(lambda command: _inspect(command, timeout_s), INSPECTIONS)
    seen = timezone.now()
    return [
        _worker(hostname, stats[hostname], queues[hostname], reports.get(hostname), seen)
        for hostname in sorted(stats.keys() & queues.keys())
    ]


def served_queues(workers: Iterable[Worker]) -> set[str]:
    """Every queue at least one of `workers` consumes from."""
    return {queue for worker in workers for queue in worker.queues}


def queue_depths(queues: Iterable[str]) -> dict[str, int]:
    """Messages waiting in the broker in each of `queues` (0 for a queue never sent to);
    empty if the broker cannot be reached. kombu's queue_declare counts them as the Redis
    transport stores them: every priority list of the queue, under the key prefix."""
    names = sorted(set(queues))
    try:
        with _connection() as connection:
            channel = connection.default_channel
            return {name: _depth(channel, name) for name in names}
    except BROKER_ERRORS as error:
        logger.warning("queue depths: broker unreachable: %s", error)
        return {}


def fleet_snapshot(max_age_s: float = 5.0) -> list[Worker]:
    """`live_workers()`, asked at most once per `max_age_s` in this process. Callers that
    come while a broadcast is out wait for its answer instead of sending their own."""
    return _snapshots().get(max_age_s)


def stop_consuming(hostname: str, queue: str, timeout_s: float = 1.0) -> bool:
    """Tell worker `hostname` to stop consuming from `queue` (Celery's cancel_consumer);
    True once it acknowledged, False if it did not answer within `timeout_s`."""
    return _control("cancel_consumer", hostname, queue, timeout_s)


def start_consuming(hostname: str, queue: str, timeout_s: float = 1.0) -> bool:
    """Tell worker `hostname` to consume from `queue` again (Celery's add_consumer);
    True once it acknowledged, False if it did not answer within `timeout_s`."""
    return _control("add_consumer", hostname, queue, timeout_s)


def forget_snapshot() -> None:
    """Make the next `fleet_snapshot` ask the workers (after a drain changed their queues)."""
    _snapshots().forget()


class _Snapshot:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._taken_at = -float("inf")
        self._workers: list[Worker] = []

    def get(self, max_age_s: float) -> list[Worker]:
        with self._lock:
            if time.monotonic() - self._taken_at > max_age_s:
                self._workers = live_workers()
                self._taken_at = time.monotonic()
            return self._workers

    def forget(self) -> None:
        with self._lock:
            self._taken_at = -float("inf")


# Made again in a forked child: the parent's lock may have been held when it forked.
_snapshots = PerProcess(_Snapshot)


def _connection() -> Connection:
    connection: Connection = current_app.connection_for_write()
    try:
        connection.ensure_connection(max_retries=CONNECT_RETRIES)
    except BaseException:
        connection.release()
        raise
    return connection


def _inspect(command: str, timeout_s: float) -> dict[str, Any]:
    """{hostname: answer} of one inspect broadcast; {} if nobody answered in time."""
    try:
        with _connection() as connection:
            inspect = current_app.control.inspect(timeout=timeout_s, connection=connection)
            return getattr(inspect, command)() or {}
    except BROKER_ERRORS as error:
        logger.warning("inspect %s: broker unreachable: %s", command, error)
        return {}


def _control(command: str, hostname: str, queue: str, timeout_s: float) -> bool:
    try:
        with _connection() as connection:
            # One destination, one answer awaited: returns as soon as the worker acknowledges.
            replies = current_app.control.broadcast(
                command, arguments={"queue": queue}, destination=[hostname], reply=True,
                timeout=timeout_s, limit=1, connection=connection,
            )  # fmt: skip
    except BROKER_ERRORS as error:
        logger.warning("%s %s to %s: broker unreachable: %s", command, queue, hostname, error)
        return False
    return any("ok" in reply.get(hostname, {}) for reply in replies or [])


def _worker(hostname: str, stats: dict[str, Any], queues: list[dict[str, Any]], report: Any, seen: datetime) -> Worker:
    uptime_s = stats.get("uptime")
    pool = stats.get("pool")
    return Worker(
        hostname=hostname,
        pid=int(stats.get("pid", 0)),
        queues=tuple(sorted(queue["name"] for queue in queues)),
        concurrency=int(pool.get("max-concurrency", 0)) if isinstance(pool, dict) else 0,
        version=_version(report),
        started_at=seen - timedelta(seconds=uptime_s) if isinstance(uptime_s, int | float) else None,
        last_seen=seen,
    )


def _version(report: Any) -> str:
    text = report.get("ok", "") if isinstance(report, dict) else ""
    match = CELERY_VERSION.search(text) if isinstance(text, str) else None
    return f"celery {match.group(1)}" if match else ""


def _depth(channel: Any, queue: str) -> int:
    # Not passive: kombu's passive check (EXISTS) ignores global_keyprefix, so with a prefix
    # every queue would be "not found". On Redis a declare creates nothing (a queue is a list
    # made by its first message), and the count (LLEN of each priority list) is prefixed.
    return int(channel.queue_declare(queue=queue).message_count)

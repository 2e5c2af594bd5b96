"""The scheduler leader lock: one Redis key, held by one `manage.py scheduler` at a time.

The key's value says who holds it and since when (JSON: holder `host:pid`, acquired_at,
and a nonce that makes each acquisition's token unique); its TTL is
NOMAFLOW_SCHEDULER_LOCK_TTL_S, renewed by the holder on every tick. A holder that dies or
stalls lets the key expire, and a follower takes it over. The lock only decides who does
the work: exactly one run per cron fire is the database's guarantee (unique
`(job, scheduled_for)`), so a leader that stalls past its TTL and wakes up beside a new
one still fires nothing twice.

It lives in `runs` because the admin shows `lock_status()`, and `runs` never imports
`workers`.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

import redis
from django.conf import settings
from django.utils import timezone
from redis.lock import Lock

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LockStatus:
    """Who leads the schedulers: `holder` (`host:pid`), since `acquired_at`, and the
    seconds left before the lock expires unless renewed."""

    holder: str
    acquired_at: datetime
    ttl_s: float


def lock_key() -> str:
    return f"{settings.REDIS_PREFIX}nomaflow:scheduler:leader"


def this_process() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def lock_status(client: redis.Redis | None = None) -> LockStatus | None:
    """The current holder of the leader lock, or None if no scheduler leads."""
    client = client or _client()
    with client.pipeline() as pipe:
        pipe.get(lock_key())
        pipe.pttl(lock_key())
        raw, ttl_ms = pipe.execute()
    if raw is None or ttl_ms < 0:
        return None
    try:
        value = json.loads(raw)
        return LockStatus(value["holder"], datetime.fromisoformat(value["acquired_at"]), ttl_ms / 1000)
    except (ValueError, KeyError, TypeError):
        return LockStatus(holder=raw.decode(errors="replace"), acquired_at=datetime.fromtimestamp(0, UTC), ttl_s=0)


class SchedulerLock:
    """This process's side of the leader lock: `acquire()` never waits, `renew()` resets
    the TTL if the lock is still ours and tells whether it is."""

    def __init__(self, *, holder: str | None = None, ttl_s: float | None = None, client: redis.Redis | None = None):
        self.holder = holder or this_process()
        self.ttl_s = ttl_s or settings.NOMAFLOW_SCHEDULER_LOCK_TTL_S
        # thread_local=False: the token must be the same whichever thread renews it.
        self._lock = Lock(client or _client(), lock_key(), timeout=self.ttl_s, blocking=False, thread_local=False)
        self.held = False
        self._redis_down = False

    def acquire(self) -> bool:
        """Take the lock if nobody holds it; True if this process now leads. With Redis
        unreachable nobody can lead: False, and a warning the first time."""
        token = json.dumps(
            {"holder": self.holder, "acquired_at": timezone.now().isoformat(), "nonce": uuid.uuid4().hex}
        )
        with self._redis_errors():
            self.held = bool(self._lock.acquire(blocking=False, token=token))
        return self.held

    def renew(self) -> bool:
        """Reset the TTL if the lock is still ours; False (and no longer held) if it was lost,
        or if Redis cannot be reached to say so (a leader that cannot renew must not lead on)."""
        if not self.held:
            return False
        self.held = False
        with self._redis_errors():
            try:
                self._lock.reacquire()
                self.held = True
            except redis.exceptions.LockError:  # expired, and maybe taken by another scheduler
                pass
        return self.held

    def release(self) -> None:
        """Give the lock up at once (a clean shutdown), so a follower need not wait for the TTL."""
        if not self.held:
            return
        self.held = False
        try:
            self._lock.release()
        except redis.exceptions.LockError:
            pass  # already expired: nothing to give up
        except redis.RedisError as exc:
            logger.warning("scheduler lock not released (%s); it expires in %g s", exc, self.ttl_s)

    @contextmanager
    def _redis_errors(self) -> Iterator[None]:
        """Turn a Redis outage into "not leading", warning once per outage, not every tick."""
        try:
            yield
        except redis.RedisError as exc:
            if not self._redis_down:
                logger.warning("scheduler lock: Redis unreachable (%s); no scheduler can lead until it is back", exc)
            self._redis_down = True
            return
        if self._redis_down:
            logger.warning("scheduler lock: Redis reachable again")
        self._redis_down = False


def _client() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=5, socket_connect_timeout=5)

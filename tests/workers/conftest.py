"""Fixtures for the scheduler's leader lock tests: the real Redis, with no lock around."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from django.conf import settings

from runs.scheduler_lock import lock_key, lock_status
from tests.processes import wait_for


@pytest.fixture
def lock_redis(clean_redis: None) -> Iterator[redis.Redis]:
    """The real Redis, with no scheduler lock before or after the test."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    client.delete(lock_key())
    yield client
    client.delete(lock_key())


def expire_lock(client: redis.Redis) -> None:
    """What a dead holder's lock comes to: the key expires (here in 1 ms)."""
    client.pexpire(lock_key(), 1)
    wait_for(lambda: lock_status(client) is None, 5, what="the lock key to expire")

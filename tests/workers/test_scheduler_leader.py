"""Leadership in workers/scheduler.Scheduler with the real Redis lock: only the leader
works, the lead moves when the leader's lock expires, and the new leader resumes from the
database."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import redis
from django.conf import settings

from jobs.models import Job
from runs.models import Run
from runs.scheduler_lock import SchedulerLock, lock_key, lock_status
from tests.factories import make_job
from tests.processes import wait_for
from workers.scheduler import Scheduler

pytestmark = pytest.mark.django_db
NOOP = {"callable": "workers.builtins:noop"}


def at(minute: int, second: float = 0) -> datetime:
    return datetime(2026, 3, 1, 12, minute, tzinfo=UTC) + timedelta(seconds=second)


@pytest.fixture
def client(clean_redis: None) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(settings.REDIS_URL)
    client.delete(lock_key())
    yield client
    client.delete(lock_key())


@pytest.fixture
def minutely(db: None) -> Job:
    job = make_job(NOOP, schedule="* * * * *", max_concurrent_runs=5)
    Job.objects.filter(pk=job.pk).update(created_at=at(0))
    return job


def scheduler(name: str) -> Scheduler:
    return Scheduler(SchedulerLock(holder=name, ttl_s=10))


def expire(client: redis.Redis) -> None:
    client.pexpire(lock_key(), 1)
    wait_for(lambda: lock_status(client) is None, 5, what="the lock to expire")


def fired(job: Job) -> list[datetime]:
    return list(Run.objects.filter(job=job).order_by("scheduled_for").values_list("scheduled_for", flat=True))


def test_only_the_leader_fires(client: redis.Redis, minutely: Job) -> None:
    first, second = scheduler("host-a:1"), scheduler("host-b:2")

    assert first.step(now=at(1, 1))
    assert not second.step(now=at(2, 1))  # a follower does nothing, even with fires due

    assert fired(minutely) == [at(1)]


def test_the_lead_moves_when_the_leaders_lock_expires_and_the_new_leader_resumes_from_the_database(
    client: redis.Redis, minutely: Job, caplog: pytest.LogCaptureFixture
) -> None:
    old, new = scheduler("host-a:1"), scheduler("host-b:2")
    old.step(now=at(1, 1))
    new.step(now=at(1, 2))
    expire(client)  # the old leader stalls past its TTL

    assert new.step(now=at(2, 30))  # it takes over 30 s after the 12:02 fire: late, not missed
    assert not old.step(now=at(2, 31))  # and the old one, waking up, steps down

    assert fired(minutely) == [at(1), at(2)]
    assert "scheduler host-b:2: took the lead" in caplog.text
    assert "scheduler host-a:1: lost the lead" in caplog.text
    status = lock_status(client)
    assert status is not None and status.holder == "host-b:2"


def test_a_stopping_leader_hands_over_at_once(client: redis.Redis, minutely: Job) -> None:
    old, new = scheduler("host-a:1"), scheduler("host-b:2")
    old.step(now=at(1, 1))

    old.stop()

    assert new.step(now=at(2, 1))
    assert fired(minutely) == [at(1), at(2)]

"""Leadership in workers/scheduler.Scheduler with the real Redis lock: only the leader
works, the lead moves when the leader's lock expires, and the new leader resumes from the
database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import redis

from jobs.models import Job
from runs.models import Run
from runs.scheduler_lock import SchedulerLock, lock_status
from tests.factories import make_job
from tests.workers.conftest import expire_lock
from workers.scheduler import Scheduler

pytestmark = pytest.mark.django_db
NOOP = {"callable": "workers.builtins:noop"}


def at(minute: int, second: float = 0) -> datetime:
    return datetime(2026, 3, 1, 12, minute, tzinfo=UTC) + timedelta(seconds=second)


@pytest.fixture
def minutely(db: None) -> Job:
    job = make_job(NOOP, schedule="* * * * *", max_concurrent_runs=5)
    Job.objects.filter(pk=job.pk).update(created_at=at(0))
    return job


def scheduler(name: str) -> Scheduler:
    return Scheduler(SchedulerLock(holder=name, ttl_s=10))


def fired(job: Job) -> list[datetime]:
    return list(Run.objects.filter(job=job).order_by("scheduled_for").values_list("scheduled_for", flat=True))


def test_only_the_leader_fires(lock_redis: redis.Redis, minutely: Job) -> None:
    first, second = scheduler("host-a:1"), scheduler("host-b:2")

    assert first.step(now=at(1, 1))
    assert not second.step(now=at(2, 1))  # a follower does nothing, even with fires due

    assert fired(minutely) == [at(1)]


def test_the_lead_moves_when_the_leaders_lock_expires_and_the_new_leader_resumes_from_the_database(
    lock_redis: redis.Redis, minutely: Job, caplog: pytest.LogCaptureFixture
) -> None:
    old, new = scheduler("host-a:1"), scheduler("host-b:2")
    old.step(now=at(1, 1))
    new.step(now=at(1, 2))
    expire_lock(lock_redis)  # the old leader stalls past its TTL

    assert new.step(now=at(2, 30))  # it takes over 30 s after the 12:02 fire: late, not missed
    assert not old.step(now=at(2, 31))  # and the old one, waking up, steps down

    assert fired(minutely) == [at(1), at(2)]
    assert "scheduler host-b:2: took the lead" in caplog.text
    assert "scheduler host-a:1: lost the lead" in caplog.text
    status = lock_status(lock_redis)
    assert status is not None and status.holder == "host-b:2"


def test_a_stopping_leader_hands_over_at_once(lock_redis: redis.Redis, minutely: Job) -> None:
    old, new = scheduler("host-a:1"), scheduler("host-b:2")
    old.step(now=at(1, 1))

    old.stop()

    assert new.step(now=at(2, 1))
    assert fired(minutely) == [at(1), at(2)]

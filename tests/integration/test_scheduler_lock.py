"""THE LONG TEST (up to 2 minutes, by nature: it waits for real minutes to pass).

Three real `manage.py scheduler` processes on a `* * * * *` job: one fire under the
first leader, which is SIGKILLed two seconds before the next, so that fire falls into
the handover. Exactly one run per minute, none missing, and the lock taken over.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
import redis
from django.conf import settings
from django.utils import timezone

from jobs.models import Job
from runs.models import LogLine, Run
from runs.scheduler_lock import lock_key, lock_status
from tests.factories import make_job
from tests.processes import Process, start_scheduler, wait_for

NOOP = {"callable": "workers.builtins:noop"}
# A short TTL keeps the handover (and the test) short; the fire in it is then a few seconds late.
SCHEDULER_ENV = {"NOMAFLOW_SCHEDULER_TICK_S": "0.5", "NOMAFLOW_SCHEDULER_LOCK_TTL_S": "5"}


@pytest.fixture
def free_lock(clean_redis: None) -> Iterator[None]:
    client = redis.Redis.from_url(settings.REDIS_URL)
    client.delete(lock_key())
    yield
    client.delete(lock_key())  # a SIGKILLed holder must not hold up the next test's scheduler


@pytest.fixture
def schedulers(transactional_db: None, free_lock: None) -> Iterator[list[Process]]:
    processes: list[Process] = []
    try:
        for _ in range(3):
            processes.append(start_scheduler(**SCHEDULER_ENV))
        yield processes
    finally:
        for process in processes:
            process.stop()


def leader(processes: list[Process]) -> Process | None:
    """The process holding the lock, found through lock_status() (holder `host:pid`)."""
    status = lock_status()
    if status is None:
        return None
    return next((p for p in processes if status.holder.endswith(f":{p.proc.pid}")), None)


def fires(job: Job) -> list[datetime]:
    return list(Run.objects.filter(job=job).order_by("scheduled_for").values_list("scheduled_for", flat=True))


def minute_after(ts: datetime) -> datetime:
    return ts.replace(second=0, microsecond=0) + timedelta(minutes=1)


def wait_until(ts: datetime) -> None:
    """Let the wall clock reach `ts` (the one thing this test has to wait for)."""
    timeout = (ts - timezone.now()).total_seconds() + 10
    wait_for(lambda: timezone.now() >= ts, max(timeout, 1), 0.1, f"the clock to reach {ts.isoformat()}")


@pytest.mark.timeout(300)
def test_three_schedulers_fire_each_minute_exactly_once_through_a_leader_sigkill(schedulers: list[Process]) -> None:
    job = make_job(NOOP, schedule="* * * * *", max_concurrent_runs=100)
    first = minute_after(job.created_at)
    old_leader = wait_for(lambda: leader(schedulers), 30, 0.1, "a scheduler to lead")

    # A fire under the first leader, then its death 2 s before the next.
    wait_for(lambda: first in fires(job), 90, 0.2, "a fire under the first leader")
    assert leader(schedulers) is old_leader
    handover = first + timedelta(minutes=1)
    wait_until(handover - timedelta(seconds=2))
    os.kill(old_leader.proc.pid, signal.SIGKILL)
    old_leader.proc.wait(10)
    survivors = [p for p in schedulers if p is not old_leader]

    new_leader = wait_for(lambda: leader(survivors), 30, 0.1, "a surviving scheduler to take over the lock")
    wait_for(lambda: handover in fires(job), 60, 0.2, f"the fire of {handover.isoformat()}")
    wait_until(handover + timedelta(seconds=5))  # time for a duplicate to show, if there were one

    assert new_leader is not old_leader
    assert fires(job) == [first, handover]  # exactly one run per minute, none missing, none extra
    runs = Run.objects.filter(job=job)
    assert {r.triggered_by for r in runs} == {"cron"}
    # The fire in the handover was late, not missed: fired, with no catchup note.
    lines = dict(LogLine.objects.filter(run__job=job, seq=1).values_list("run__scheduled_for", "message"))
    assert lines[handover].startswith(f"cron fire for {handover.isoformat()} · ")
    assert not any("catchup" in line for line in lines.values())
    output = new_leader.output()
    assert "took the lead" in output

"""A real `manage.py scheduler` started after a gap: each job's `catchup` policy decides
what it fires. The gap is simulated by the jobs' last fire lying three days back."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
import redis
from django.conf import settings
from django.utils import timezone

from jobs.models import Job
from runs.models import LogLine, Run
from runs.scheduler_lock import lock_key
from runs.services import run_trigger
from tests.factories import make_job
from tests.processes import start_scheduler, wait_for

NOOP = {"callable": "workers.builtins:noop"}


@pytest.fixture
def free_lock(clean_redis: None) -> Iterator[None]:
    client = redis.Redis.from_url(settings.REDIS_URL)
    client.delete(lock_key())
    yield
    client.delete(lock_key())


def daily_job_missed_three_times(policy: str, fire_at: datetime) -> Job:
    """A job firing daily at `fire_at`'s time of day (UTC), last fired three days before it."""
    job = make_job(NOOP, id=policy, schedule=f"{fire_at.minute} {fire_at.hour} * * *", catchup=policy)
    run_trigger(job_id=job.id, triggered_by="cron", scheduled_for=fire_at - timedelta(days=3))
    return job


def fires(job: Job) -> list[datetime]:
    return list(Run.objects.filter(job=job).order_by("scheduled_for").values_list("scheduled_for", flat=True))


def test_a_scheduler_started_after_a_gap_skips_or_fires_the_latest_by_policy(
    transactional_db: None, free_lock: None
) -> None:
    # Today's fire was 30 minutes ago: missed (far past the grace), like the two before it.
    today = (timezone.now() - timedelta(minutes=30)).replace(second=0, microsecond=0)
    skip, latest = daily_job_missed_three_times("skip", today), daily_job_missed_three_times("latest", today)

    scheduler = start_scheduler(NOMAFLOW_SCHEDULER_TICK_S="0.2")
    try:
        run = wait_for(lambda: Run.objects.filter(job=latest, scheduled_for=today).first(), 30, 0.1, "the latest fire")
        scheduler.wait_for_output("skip: catchup=skip, 3 missed fires skipped")
    finally:
        scheduler.stop()

    assert fires(latest) == [today - timedelta(days=3), today]
    line = LogLine.objects.get(run=run, seq=1).message
    assert line.startswith(f"cron fire for {today.isoformat()} · ")
    assert line.endswith(" s late · catchup=latest, 2 missed fires skipped")
    assert fires(skip) == [today - timedelta(days=3)]
    assert f"latest: catchup=latest, 2 missed fires skipped; firing the latest, of {today.isoformat()}" in (
        scheduler.output()
    )

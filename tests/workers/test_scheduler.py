"""The scheduler tick: cron fires exactly once per fire time, and the reaper."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone as dj_timezone

from runs.models import Run
from runs.services import run_trigger
from tests.factories import make_job
from workers import scheduler

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 3, 1, 12, 0, 30, tzinfo=UTC)


def test_each_fire_in_the_period_triggers_one_cron_run() -> None:
    job = make_job({"callable": "workers.builtins:noop"}, schedule="* * * * *", max_concurrent_runs=5)

    scheduler.tick(since=T0, now=T0 + timedelta(minutes=2, seconds=1))

    runs = Run.objects.filter(job=job).order_by("scheduled_for")
    assert [r.scheduled_for for r in runs] == [
        datetime(2026, 3, 1, 12, 1, tzinfo=UTC),
        datetime(2026, 3, 1, 12, 2, tzinfo=UTC),
    ]
    assert {r.triggered_by for r in runs} == {"cron"}


def test_two_schedulers_seeing_the_same_fire_create_one_run() -> None:
    job = make_job({"callable": "workers.builtins:noop"}, schedule="* * * * *")
    period = {"since": T0, "now": T0 + timedelta(seconds=45)}

    scheduler.tick(**period)
    scheduler.tick(**period)

    assert Run.objects.filter(job=job).count() == 1


def test_disabled_and_unscheduled_jobs_do_not_fire() -> None:
    make_job({"callable": "workers.builtins:noop"}, schedule="* * * * *", enabled=False)
    make_job({"callable": "workers.builtins:noop"})

    scheduler.tick(since=T0, now=T0 + timedelta(minutes=5))

    assert not Run.objects.exists()


def test_schedules_follow_the_job_timezone() -> None:
    job = make_job({"callable": "workers.builtins:noop"}, schedule="30 2 * * *", timezone="Europe/Paris")

    scheduler.tick(since=datetime(2026, 7, 1, tzinfo=UTC), now=datetime(2026, 7, 2, tzinfo=UTC))

    assert Run.objects.get(job=job).scheduled_for == datetime(2026, 7, 1, 0, 30, tzinfo=UTC)


def test_the_reaper_fails_steps_whose_heartbeat_is_too_old() -> None:
    job = make_job({"callable": "workers.builtins:noop"}, {"callable": "workers.builtins:noop"})
    run = run_trigger(job_id=job.id, triggered_by="api")[0]
    first = run.steps.get(name="F0001")
    first.claim(worker="w1@host:42")
    run.mark_running()

    scheduler.tick(since=dj_timezone.now(), now=dj_timezone.now() + timedelta(seconds=2))  # within the timeout
    first.refresh_from_db()
    assert first.state == "RUNNING"

    scheduler.tick(since=dj_timezone.now(), now=dj_timezone.now() + timedelta(seconds=10))
    run.refresh_from_db()
    steps = list(run.steps.values_list("state", "reason"))
    assert run.state == "FAILED"
    assert steps == [("FAILED", "worker lost"), ("CANCELED", "upstream failed")]
    assert run.steps.get(name="F0001").error == "no heartbeat from worker w1@host:42 for more than 3 s"

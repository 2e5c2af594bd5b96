"""The scheduler tick (workers/scheduler.py): cron fires exactly once, resumed from the
database, the catchup policy after a gap, the first line of a cron run, and the reaper.

The tick takes `now`, so a gap is simulated by the job's last fire (or creation) lying
in the past of `now`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone as dj_timezone

from jobs.models import Job
from runs import services
from runs.models import LogLine, Run
from runs.services import run_trigger
from tests.factories import make_job
from workers import engine, scheduler

pytestmark = pytest.mark.django_db
NOOP = {"callable": "workers.builtins:noop"}
T0 = datetime(2026, 3, 1, 12, 0, 30, tzinfo=UTC)


def at(hour: int, minute: int = 0, second: float = 0) -> datetime:
    return datetime(2026, 3, 1, hour, minute, tzinfo=UTC) + timedelta(seconds=second)


def created(job: Job, when: datetime) -> Job:
    Job.objects.filter(pk=job.pk).update(created_at=when)
    return Job.objects.get(pk=job.pk)


def fired(job: Job) -> list[datetime]:
    return list(Run.objects.filter(job=job).order_by("scheduled_for").values_list("scheduled_for", flat=True))


def first_line(run: Run) -> str:
    return LogLine.objects.get(run=run, seq=1).message


def cron_run(job: Job, when: datetime) -> Run:
    """The job's fire at `when`, as an earlier scheduler made it."""
    return run_trigger(job_id=job.id, triggered_by="cron", scheduled_for=when)[0]


# --- firing -----------------------------------------------------------------------------------


def test_each_fire_triggers_one_cron_run_that_says_which_fire_and_how_late() -> None:
    job = created(make_job(NOOP, schedule="* * * * *", max_concurrent_runs=5), T0)
    done: dict[str, datetime] = {}

    scheduler.tick(now=at(12, 1, 2.5), done_until=done)
    scheduler.tick(now=at(12, 2, 0.25), done_until=done)

    assert fired(job) == [at(12, 1), at(12, 2)]
    runs = Run.objects.filter(job=job).order_by("scheduled_for")
    assert {r.triggered_by for r in runs} == {"cron"}
    assert [first_line(r) for r in runs] == [
        "cron fire for 2026-03-01T12:01:00+00:00 · 2.5 s late",
        "cron fire for 2026-03-01T12:02:00+00:00 · 0.2 s late",
    ]


def test_two_schedulers_seeing_the_same_fire_create_one_run() -> None:
    job = created(make_job(NOOP, schedule="* * * * *"), T0)

    scheduler.tick(now=T0 + timedelta(seconds=45), done_until={})
    scheduler.tick(now=T0 + timedelta(seconds=46), done_until={})

    run = Run.objects.get(job=job)
    assert LogLine.objects.filter(run=run).count() == 1  # the loser wrote nothing either


def test_disabled_and_unscheduled_jobs_do_not_fire() -> None:
    created(make_job(NOOP, schedule="* * * * *", enabled=False), T0)
    created(make_job(NOOP), T0)

    scheduler.tick(now=T0 + timedelta(seconds=45))

    assert not Run.objects.exists()


def test_schedules_follow_the_job_timezone_and_the_line_shows_its_wall_clock() -> None:
    job = make_job(NOOP, schedule="30 2 * * *", timezone="Europe/Paris")
    created(job, datetime(2026, 7, 1, tzinfo=UTC))

    scheduler.tick(now=datetime(2026, 7, 1, 0, 30, 1, tzinfo=UTC))

    run = Run.objects.get(job=job)
    assert run.scheduled_for == datetime(2026, 7, 1, 0, 30, tzinfo=UTC)
    assert (
        first_line(run) == "cron fire for 2026-07-01T00:30:00+00:00 (2026-07-01 02:30 CEST Europe/Paris) · 1.0 s late"
    )


def test_a_refused_fire_is_logged_and_does_not_stop_the_others(caplog: pytest.LogCaptureFixture) -> None:
    stepless = created(make_job(schedule="* * * * *", id="stepless"), T0)
    other = created(make_job(NOOP, schedule="* * * * *", id="other"), T0)

    scheduler.tick(now=at(12, 1, 1))

    assert fired(stepless) == [] and fired(other) == [at(12, 1)]
    assert 'stepless: cron fire of 2026-03-01T12:01:00+00:00 refused: job "stepless" has no steps' in caplog.text


# --- resuming: from the database, not from the leader's start -------------------------------


def test_a_new_leader_fires_the_fire_that_fell_into_the_handover_late_and_nothing_twice() -> None:
    job = created(make_job(NOOP, schedule="* * * * *", max_concurrent_runs=5), at(11))
    cron_run(job, at(12, 1))  # the old leader's last fire; it died before 12:02

    scheduler.tick(now=at(12, 2, 40), done_until={})  # the new leader, 40 s into the minute

    assert fired(job) == [at(12, 1), at(12, 2)]
    assert first_line(Run.objects.get(job=job, scheduled_for=at(12, 2))) == (
        "cron fire for 2026-03-01T12:02:00+00:00 · 40.0 s late"
    )


def test_a_job_that_never_fired_starts_from_its_creation() -> None:
    job = created(make_job(NOOP, schedule="* * * * *"), at(12, 0, 59.9))

    scheduler.tick(now=at(12, 1, 0.5), done_until={})

    assert fired(job) == [at(12, 1)]


# --- catchup after downtime -----------------------------------------------------------------


@pytest.fixture
def hourly_down_since_9() -> dict[str, Job]:
    """Two hourly jobs whose last fire was 09:00; the schedulers were down until after 12:00."""
    jobs = {}
    for policy in ("skip", "latest"):
        job = created(make_job(NOOP, id=policy, schedule="0 * * * *", catchup=policy, max_concurrent_runs=5), at(8))
        cron_run(job, at(9))
        jobs[policy] = job
    return jobs


def test_back_within_the_grace_of_a_fire_skip_fires_only_that_one_and_says_what_it_skipped(
    hourly_down_since_9: dict[str, Job], caplog: pytest.LogCaptureFixture
) -> None:
    scheduler.tick(now=at(12, 0, 30))

    job = hourly_down_since_9["skip"]
    assert fired(job) == [at(9), at(12)]
    assert first_line(Run.objects.get(job=job, scheduled_for=at(12))) == (
        "cron fire for 2026-03-01T12:00:00+00:00 · 30.0 s late · catchup=skip, 2 missed fires skipped"
    )
    assert "skip: catchup=skip, 2 missed fires skipped" in caplog.text


def test_back_within_the_grace_of_a_fire_latest_fires_the_latest_missed_one_too(
    hourly_down_since_9: dict[str, Job],
) -> None:
    scheduler.tick(now=at(12, 0, 30))

    job = hourly_down_since_9["latest"]
    assert fired(job) == [at(9), at(11), at(12)]
    assert first_line(Run.objects.get(job=job, scheduled_for=at(11))) == (
        "cron fire for 2026-03-01T11:00:00+00:00 · 3630.0 s late · catchup=latest, 1 missed fire skipped"
    )
    assert first_line(Run.objects.get(job=job, scheduled_for=at(12))) == (
        "cron fire for 2026-03-01T12:00:00+00:00 · 30.0 s late"
    )


def test_back_between_fires_skip_fires_nothing_until_the_next_fire(hourly_down_since_9: dict[str, Job]) -> None:
    done: dict[str, datetime] = {}
    scheduler.tick(now=at(12, 20), done_until=done)
    job = hourly_down_since_9["skip"]
    assert fired(job) == [at(9)]

    scheduler.tick(now=at(13, 0, 1), done_until=done)

    assert fired(job) == [at(9), at(13)]
    assert first_line(Run.objects.get(job=job, scheduled_for=at(13))) == (
        "cron fire for 2026-03-01T13:00:00+00:00 · 1.0 s late"
    )


def test_back_between_fires_latest_fires_only_the_most_recent_missed_one(hourly_down_since_9: dict[str, Job]) -> None:
    done: dict[str, datetime] = {}
    scheduler.tick(now=at(12, 20), done_until=done)
    scheduler.tick(now=at(12, 20, 1), done_until=done)
    scheduler.tick(now=at(12, 21), done_until={})  # and a new leader after it

    job = hourly_down_since_9["latest"]
    assert fired(job) == [at(9), at(12)]
    assert first_line(Run.objects.get(job=job, scheduled_for=at(12))) == (
        "cron fire for 2026-03-01T12:00:00+00:00 · 1200.0 s late · catchup=latest, 2 missed fires skipped"
    )


def test_a_very_long_gap_of_a_minutely_job_fires_the_latest_and_counts_without_walking_it_all() -> None:
    job = created(make_job(NOOP, schedule="* * * * *", catchup="latest"), at(0))
    now = at(0) + timedelta(days=30, seconds=90)

    scheduler.tick(now=now)

    minute = now.replace(second=0)
    assert fired(job) == [minute - timedelta(minutes=1), minute]  # the latest missed, and one on time
    run = Run.objects.get(job=job, scheduled_for=minute - timedelta(minutes=1))
    assert first_line(run).endswith(f"catchup=latest, {scheduler.MAX_MISSED_WALKED - 1}+ missed fires skipped")


# --- the reaper (leader-only, like everything in the tick) ------------------------------------


def test_the_reaper_fails_steps_whose_heartbeat_is_too_old() -> None:
    job = make_job(NOOP, NOOP)
    run = run_trigger(job_id=job.id, triggered_by="api")[0]
    first = run.steps.get(name="F0001")
    first.claim(worker="w1@host:42")
    run.mark_running()

    scheduler.tick(now=dj_timezone.now() + timedelta(seconds=2))  # within the timeout
    first.refresh_from_db()
    assert first.state == "RUNNING"

    scheduler.tick(now=dj_timezone.now() + timedelta(seconds=10))
    run.refresh_from_db()
    steps = list(run.steps.values_list("state", "reason"))
    assert run.state == "FAILED"
    assert steps == [("FAILED", "worker lost"), ("CANCELED", "upstream failed")]
    assert run.steps.get(name="F0001").error == "no heartbeat from worker w1@host:42 for more than 3 s"


def test_a_worker_whose_clock_is_behind_is_not_taken_for_lost(monkeypatch: pytest.MonkeyPatch) -> None:
    """Heartbeats and the reaper's cutoff are on the database's clock: a worker host an
    hour behind claims and beats, and the reaper, on the right time, leaves its step be."""
    job = make_job(NOOP)
    run = run_trigger(job_id=job.id, triggered_by="api")[0]
    step = run.steps.get()
    real_now = dj_timezone.now
    with monkeypatch.context() as skewed:
        skewed.setattr(dj_timezone, "now", lambda: real_now() - timedelta(hours=1))
        assert step.claim(worker="w1@behind:42")
        assert engine._beat(step.pk, run.id) == (True, None)

    assert services.steps_reap_lost() == 0
    assert run.steps.get().state == "RUNNING"
    assert services.steps_reap_lost(now=real_now() + timedelta(seconds=10)) == 1  # silent past the timeout

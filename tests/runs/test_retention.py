"""Retention: the purge removes exactly the runs finished before the cutoff, with their
step runs and log lines, and nothing else; the built-in housekeeping job runs it."""

from __future__ import annotations

import importlib
from datetime import UTC, datetime, timedelta

import pytest
from django.apps import apps
from django.utils import timezone

from core.models import AuditEvent
from jobs.models import Job
from jobs.validation import check_step
from runs.models import LogLine, Run, SiteSettings, StepRun
from runs.retention import HOUSEKEEPING_JOB_ID, _line_chunks, runs_purge_batches, runs_purge_expired
from runs.services import run_trigger
from tests.factories import make_job
from tests.processes import Process, wait_terminal

NOW = datetime(2026, 11, 28, 3, 17, tzinfo=UTC)
CUTOFF = NOW - timedelta(days=90)
_migration = importlib.import_module("runs.migrations.0006_housekeeping_job")


def install_housekeeping_job() -> Job:
    """The job as its migration creates it (transactional tests truncate it away)."""
    _migration.create_job(apps, None)
    return Job.objects.get(id=HOUSEKEEPING_JOB_ID)


def finished_run(job: Job, finished_at: datetime | None, *, lines: int = 3, state: str = "SUCCEEDED") -> Run:
    """A run with one step run and `lines` log lines, finished at `finished_at` (None: in flight)."""
    queued = (finished_at or NOW - timedelta(days=400)) - timedelta(minutes=1)
    run = Run.objects.create(
        job=job, state=state, triggered_by="cli", queued_at=queued, finished_at=finished_at, last_seq=lines
    )
    StepRun.objects.create(run=run, position=1, name="F0001", type="python", state=state if finished_at else "RUNNING")
    LogLine.objects.bulk_create(
        LogLine(run=run, seq=seq, ts=queued, level="INFO", message=f"line {seq}") for seq in range(1, lines + 1)
    )
    return run


@pytest.fixture
def job(db: None) -> Job:
    return make_job({"callable": "workers.builtins:noop"})


def test_only_runs_finished_before_the_cutoff_are_removed(job: Job) -> None:
    other_job = make_job({"callable": "workers.builtins:noop"})
    just_before = finished_run(job, CUTOFF - timedelta(microseconds=1), state="FAILED")
    other_old = finished_run(other_job, CUTOFF - timedelta(days=300), state="CANCELED")
    at_cutoff = finished_run(job, CUTOFF)
    just_after = finished_run(job, CUTOFF + timedelta(microseconds=1))
    recent_other = finished_run(other_job, NOW - timedelta(hours=1))
    old_in_flight = finished_run(job, None, state="RUNNING")
    old_queued = finished_run(other_job, None, state="QUEUED")

    purged = runs_purge_expired(days=90, now=NOW)

    kept = {at_cutoff.pk, just_after.pk, recent_other.pk, old_in_flight.pk, old_queued.pk}
    assert set(Run.objects.values_list("pk", flat=True)) == kept
    assert set(StepRun.objects.values_list("run_id", flat=True)) == kept
    assert set(LogLine.objects.values_list("run_id", flat=True)) == kept
    assert LogLine.objects.count() == 3 * len(kept)
    assert (purged.runs, purged.steps, purged.log_lines) == (2, 2, 6)
    assert {just_before.pk, other_old.pk}.isdisjoint(kept)


def test_batches_smaller_than_a_run_remove_every_line_and_count_them(job: Job) -> None:
    runs = [finished_run(job, CUTOFF - timedelta(days=1 + n), lines=n) for n in (0, 1, 2, 7, 25)]
    keep = finished_run(job, NOW, lines=4)

    purged = runs_purge_expired(days=90, now=NOW, run_batch=2, line_batch=3)

    assert (purged.runs, purged.log_lines) == (len(runs), 35)
    assert list(Run.objects.values_list("pk", flat=True)) == [keep.pk]
    assert list(LogLine.objects.filter(run=keep).values_list("seq", flat=True)) == [1, 2, 3, 4]


def test_line_chunks_pack_small_runs_and_split_big_ones() -> None:
    chunks = list(_line_chunks([("a", 2), ("b", 0), ("c", 3), ("d", 12), ("e", 5)], 5))

    assert chunks == [
        (["d"], (0, 5)),
        (["d"], (5, 10)),
        (["d"], (10, 15)),
        (["a", "b", "c"], None),
        (["e"], None),
    ]


def test_kept_runs_and_replays_of_removed_runs_survive(job: Job) -> None:
    original = finished_run(job, CUTOFF - timedelta(days=1))
    replay = finished_run(job, NOW - timedelta(days=1))
    Run.objects.filter(pk=replay.pk).update(replay_of=original)
    housekeeping_itself = finished_run(job, CUTOFF - timedelta(days=2))

    purged = runs_purge_expired(days=90, now=NOW, keep={housekeeping_itself.pk})

    assert purged.runs == 1
    assert set(Run.objects.values_list("pk", flat=True)) == {replay.pk, housekeeping_itself.pk}
    replay.refresh_from_db()
    assert replay.replay_of is None


def test_the_retention_comes_from_the_settings_and_the_summary_says_what_went(job: Job) -> None:
    SiteSettings.objects.update_or_create(pk=1, defaults={"retention_days": 10})
    SiteSettings.forget()
    now = timezone.now()
    finished_run(job, now - timedelta(days=11), lines=1_234)
    kept = finished_run(job, now - timedelta(days=9))

    purged = runs_purge_expired()
    SiteSettings.forget()

    assert list(Run.objects.values_list("pk", flat=True)) == [kept.pk]
    assert purged.days == 10
    assert purged.summary() == (
        f"removed 1 runs and 1,234 log lines older than {purged.cutoff:%Y-%m-%d %H:%M} UTC (10 days)"
    )


def test_stopping_between_batches_keeps_the_rest(job: Job) -> None:
    runs = [finished_run(job, CUTOFF - timedelta(days=n + 1), lines=2) for n in range(4)]
    batches = runs_purge_batches(days=90, now=NOW, run_batch=2, line_batch=100)

    totals = [next(batches) for _ in range(3)]  # start, lines of batch 1, runs of batch 1
    batches.close()

    assert [(t.runs, t.log_lines) for t in totals] == [(0, 0), (0, 4), (2, 4)]
    assert set(Run.objects.values_list("pk", flat=True)) == {runs[0].pk, runs[1].pk}  # the newest two


def test_the_housekeeping_job_is_a_valid_catalogue_job(db: None) -> None:
    Job.objects.filter(id=HOUSEKEEPING_JOB_ID).delete()

    job = install_housekeeping_job()

    expected = ("Housekeeping: retention", "17 3 * * *", "latest", True)
    assert (job.name, job.schedule, job.catchup, job.enabled) == expected
    [step] = job.steps.all()
    assert check_step(step.name, step.type, step.op_kwargs, job.params, job_id=job.id) == {}


def test_the_housekeeping_job_purges_through_a_worker_and_logs_it(worker: Process) -> None:
    job = make_job({"callable": "workers.builtins:noop"})
    old = [finished_run(job, timezone.now() - timedelta(days=91), lines=50) for _ in range(2)]
    recent = finished_run(job, timezone.now() - timedelta(days=89))
    install_housekeeping_job()

    run, _ = run_trigger(job_id=HOUSEKEEPING_JOB_ID, triggered_by="cli")
    run = wait_terminal(run)

    assert run.state == "SUCCEEDED"
    assert set(Run.objects.values_list("pk", flat=True)) == {recent.pk, run.pk}
    [summary] = run.log_lines.filter(step="purge", message__startswith="removed ").values_list("message", flat=True)
    assert summary.startswith("removed 2 runs and 100 log lines older than ") and summary.endswith(" UTC (90 days)")
    assert not Run.objects.filter(pk__in=[r.pk for r in old]).exists()
    purge = AuditEvent.objects.get(action="purge")
    assert (purge.actor, purge.object_type, purge.object_id) == ("system", "run", run.pk)
    assert (purge.diff["runs"], purge.diff["log_lines"], purge.diff["days"]) == (2, 100, 90)

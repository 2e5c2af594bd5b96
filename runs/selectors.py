"""Read queries for jobs, runs and log lines. Each returns a lazy queryset, shaped so that
serializing a page costs a fixed number of queries whatever its size.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from datetime import datetime, timedelta
from itertools import islice
from typing import NamedTuple

from django.db.models import OuterRef, Prefetch, QuerySet, Subquery

from jobs.models import Job
from jobs.schedule import fires_between
from jobs.selectors import jobs_list

from .choices import LEVEL_ORDER, LogLevel
from .models import LogLine, Run, StepRun

# A run summary needs its steps (for step_summary) but never their tracebacks.
_STEP_ROWS = StepRun.objects.defer("traceback").order_by("position")


def runs_list(*, job_id: str | None = None) -> QuerySet[Run]:
    """Runs, newest first, ready for RunSummarySerializer."""
    runs = run_detail()
    if job_id is not None:
        runs = runs.filter(job_id=job_id)
    return runs.order_by("-id")


def run_detail() -> QuerySet[Run]:
    """Runs ready for RunSerializer (steps included)."""
    return Run.objects.select_related("actor").prefetch_related(Prefetch("steps", queryset=_STEP_ROWS))


def jobs_with_last_run() -> QuerySet[Job]:
    """Jobs with their steps and `last_runs` (a list of zero or one Run), in three queries."""
    newest = Run.objects.filter(job=OuterRef("pk")).order_by("-id").values("id")[:1]
    # One index probe per job on (job, -id), instead of ranking every run of every job.
    last_ids = Job.objects.annotate(last_id=Subquery(newest)).filter(last_id__isnull=False).values("last_id")
    last_runs = runs_list().filter(id__in=Subquery(last_ids))
    return jobs_list().prefetch_related(Prefetch("runs", queryset=last_runs, to_attr="last_runs"))


def log_lines(
    *, run_id: str, after: int = 0, upto: int | None = None, step: str | None = None, level: str | None = None
) -> QuerySet[LogLine]:
    """Lines of run `run_id` with after < seq ≤ upto, of `step`, at `level` or above, in seq order."""
    lines = LogLine.objects.filter(run_id=run_id, seq__gt=after)
    if upto is not None:
        lines = lines.filter(seq__lte=upto)
    if step is not None:
        lines = lines.filter(step=step)
    if level is not None:
        lines = lines.filter(
            level__in=[name for name, rank in LEVEL_ORDER.items() if rank >= LEVEL_ORDER[LogLevel(level)]]
        )
    return lines.order_by("seq")


class ScheduleEntry(NamedTuple):
    """One fire of a job: a past one with its run, or a future one (run is None)."""

    job_id: str
    at: datetime
    run: Run | None


def schedule_entries(
    *, start: datetime, end: datetime, now: datetime, job_id: str | None, limit: int
) -> list[ScheduleEntry]:
    """Fires with start ≤ at < end, by time then job, at most `limit` + 1 of them (so the
    caller can tell that there are more). Fires up to `now` are the cron runs that were made
    (of any job: history stays history); later ones are computed for enabled scheduled jobs."""
    past = runs_list(job_id=job_id).filter(scheduled_for__gte=start, scheduled_for__lt=end, scheduled_for__lte=now)
    entries: list[ScheduleEntry] = []
    for run in past.order_by("scheduled_for", "job_id")[: limit + 1]:
        assert run.scheduled_for is not None  # by the filter
        entries.append(ScheduleEntry(run.job_id, run.scheduled_for, run))
    jobs = Job.objects.filter(enabled=True, schedule__isnull=False).exclude(schedule="").order_by("id")
    if job_id is not None:
        jobs = jobs.filter(pk=job_id)
    # Lazily merged, so a minutely job costs `limit` cron steps, not a month of them.
    after = max(now, start - timedelta(microseconds=1))
    future = heapq.merge(*(_future_fires(job, after, end) for job in jobs), key=lambda e: (e.at, e.job_id))
    entries.extend(islice(future, limit + 1 - len(entries)))
    return entries


def _future_fires(job: Job, after: datetime, end: datetime) -> Iterator[ScheduleEntry]:
    for at in fires_between(job, after, end):
        if at < end:
            yield ScheduleEntry(job.id, at, None)


def scheduled_jobs() -> QuerySet[Job]:
    """Enabled jobs with a schedule, each annotated with `last_fire`: its latest cron fire
    (None if it never fired). One index probe per job on (job, scheduled_for)."""
    latest = Run.objects.filter(job=OuterRef("pk"), scheduled_for__isnull=False).order_by("-scheduled_for")
    jobs = Job.objects.filter(enabled=True, schedule__isnull=False).exclude(schedule="")
    return jobs.annotate(last_fire=Subquery(latest.values("scheduled_for")[:1])).order_by("id")

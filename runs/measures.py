"""What the run lifecycle records in the metrics (core/metrics.py), from the rows that
runs/services.py already holds: no query of their own, but one for a canceled run's end.

Each `*_after_commit` records once the surrounding transaction commits (at once outside
one), so a transaction that runs.locking retries, or one that rolls back, counts nothing
twice and nothing that did not happen. `robust`: a metric never fails the caller.
"""

from __future__ import annotations

import functools
from datetime import datetime

from django.db import transaction

from core import metrics
from core.models import AuditEvent

from .choices import REASON_WORKER_LOST, RunState
from .models import Run, StepRun


def run_created_after_commit(run: Run) -> None:
    labels = metrics.RUNS_TRIGGERED.labels(run.job_id, metrics.trigger_kind(run.triggered_by))
    transaction.on_commit(labels.inc, robust=True)


def run_started_after_commit(run: Run) -> None:
    transaction.on_commit(metrics.RUNS_STARTED.labels(run.job_id).inc, robust=True)


def run_finished_after_commit(run: Run, state: RunState) -> None:
    record = functools.partial(
        _run_finished, run.id, run.job_id, state, run.started_at, run.finished_at, run.canceled_by
    )
    transaction.on_commit(record, robust=True)


def step_finished_after_commit(step_run: StepRun, job_id: str, lines: int) -> None:
    record = functools.partial(
        _step_finished, job_id, step_run.type, step_run.state, step_run.reason, step_run.started_at,
        step_run.finished_at, lines,
    )  # fmt: skip
    transaction.on_commit(record, robust=True)


def step_claimed(step_run: StepRun, job_id: str, sent_at: float | None) -> None:
    """The wait between a step's message being sent (the `sent_at` epoch its publisher
    stamped, workers/apps.py) and its claim; steps sent by an older version have none. The
    claim is committed already."""
    if sent_at is None or step_run.started_at is None:
        return
    waited = max(0.0, step_run.started_at.timestamp() - sent_at)  # hosts' clocks may differ a little
    metrics.STEP_QUEUED.labels(job_id, step_run.queue).observe(waited)


def _run_finished(
    run_id: str, job_id: str, state: str, started_at: datetime | None, finished_at: datetime | None,
    canceled_by: str | None,
) -> None:  # fmt: skip
    metrics.RUNS_FINISHED.labels(job_id, state).inc()
    if started_at is not None and finished_at is not None:
        metrics.RUN_DURATION.labels(job_id, state).observe(_seconds(started_at, finished_at))
    if canceled_by and finished_at is not None:
        requested = _cancel_requested_at(run_id)
        if requested is not None:
            metrics.CANCEL_LATENCY.labels(job_id).observe(max(0.0, _seconds(requested, finished_at)))


def _step_finished(
    job_id: str, type_name: str, state: str, reason: str, started_at: datetime | None, finished_at: datetime | None,
    lines: int,
) -> None:  # fmt: skip
    metrics.STEPS_FINISHED.labels(job_id, type_name, state).inc()
    if started_at is not None and finished_at is not None:
        metrics.STEP_DURATION.labels(job_id, type_name, state).observe(_seconds(started_at, finished_at))
    if reason == REASON_WORKER_LOST:
        metrics.STEPS_WORKER_LOST.labels(job_id, type_name).inc()
    if lines:
        metrics.LOG_LINES.inc(lines)


def _cancel_requested_at(run_id: str) -> datetime | None:
    """When the cancel was accepted: its audit event, which run_cancel records with canceled_by."""
    events = AuditEvent.objects.filter(object_type=Run._meta.model_name, object_id=run_id, action="cancel")
    return events.values_list("at", flat=True).first()


def _seconds(start: datetime, end: datetime) -> float:
    return (end - start).total_seconds()

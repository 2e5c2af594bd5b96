"""python steps on a real worker: only marked callables run, and the housekeeping purge only
in the housekeeping job, even when a run's snapshot was written around validation."""

from __future__ import annotations

import importlib
from datetime import timedelta

import pytest
from django.apps import apps
from django.utils import timezone

from core.errors import InputError
from runs.models import Run, SiteSettings
from runs.retention import HOUSEKEEPING_JOB_ID
from runs.services import run_trigger
from tests.factories import make_job
from tests.processes import Process, wait_terminal

PURGE = "workers.housekeeping:purge_expired"


def old_history() -> Run:
    """A run of another job that finished 100 days ago: past a retention of 90 days, not of 120."""
    finished = timezone.now() - timedelta(days=100)
    job = make_job({"callable": "workers.builtins:noop"})
    return Run.objects.create(job=job, state="SUCCEEDED", triggered_by="cli", queued_at=finished, finished_at=finished)


def test_a_job_naming_the_purge_cannot_be_triggered(db: None) -> None:
    history = old_history()
    job = make_job({"callable": PURGE, "retention_days": 0})  # stored around the API's validation

    with pytest.raises(InputError, match='belongs to the built-in "housekeeping" job; no other job may name it'):
        run_trigger(job_id=job.id, triggered_by="api")

    assert Run.objects.filter(pk=history.pk).exists()


@pytest.mark.parametrize(
    ("callable_", "error"),
    [
        (PURGE, 'purge_expired runs only in the built-in "housekeeping" job, not in "'),
        ("tests.steps:unmarked_helper", "tests.steps:unmarked_helper is not a step callable"),
    ],
)
def test_the_worker_refuses_a_callable_written_into_the_snapshot(worker: Process, callable_: str, error: str) -> None:
    history = old_history()
    # Two runs of a one-at-a-time job: the second waits, unseen by any worker, while its
    # snapshot is rewritten as a direct database write would.
    job = make_job({"callable": "workers.builtins:sleep", "seconds": 1}, max_concurrent_runs=1)
    first, _ = run_trigger(job_id=job.id, triggered_by="api")
    waiting, _ = run_trigger(job_id=job.id, triggered_by="api")
    parameters = waiting.parameters
    parameters["steps"]["F0001"]["op_kwargs"] = {"callable": callable_}
    assert Run.objects.filter(pk=waiting.pk, dispatched_at__isnull=True).update(parameters=parameters) == 1

    assert wait_terminal(first).state == "SUCCEEDED"
    run = wait_terminal(waiting)

    assert run.state == "FAILED"
    assert error in run.steps.get().error
    assert Run.objects.filter(pk=history.pk).exists()


def test_the_housekeeping_job_may_not_shorten_the_admins_retention(worker: Process) -> None:
    importlib.import_module("runs.migrations.0006_housekeeping_job").create_job(apps, None)
    SiteSettings.objects.update_or_create(pk=1, defaults={"retention_days": 90})
    history = old_history()
    shorter = {"steps": {"purge": {"op_kwargs": {"retention_days": 0}}}}

    run = wait_terminal(run_trigger(job_id=HOUSEKEEPING_JOB_ID, overrides=shorter, triggered_by="api")[0])

    assert run.state == "FAILED"
    assert "retention_days 0 is shorter than the retention set in admin › settings (90 days)" in run.steps.get().error
    assert Run.objects.filter(pk=history.pk).exists()

    longer = {"steps": {"purge": {"op_kwargs": {"retention_days": 120}}}}
    again = wait_terminal(run_trigger(job_id=HOUSEKEEPING_JOB_ID, overrides=longer, triggered_by="api")[0])
    assert again.state == "SUCCEEDED", again.steps.get().error
    assert Run.objects.filter(pk=history.pk).exists()  # 100 days old: within 120

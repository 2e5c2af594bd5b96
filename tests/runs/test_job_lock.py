"""runs.job_lock: the one-statement read of a job, its steps and its slots."""

from __future__ import annotations

import pytest
from django.db import transaction

from jobs.models import Job
from runs.job_lock import lock_job, lock_job_slots
from runs.models import Run
from tests.factories import make_job

pytestmark = pytest.mark.django_db


def test_lock_job_reads_the_definition_with_steps_in_position_order() -> None:
    job = make_job(
        {"callable": "workers.builtins:noop", "retries": 2, "retry_delay_s": 0.5, "queue": "etl"},
        {"callable": "workers.builtins:sleep", "seconds": 1, "enabled": False, "timeout_s": 3},
        params={"day": "2026-11-28"},
        log_level="DEBUG",
        max_concurrent_runs=3,
    )

    locked = lock_job(job.id)

    assert (locked.id, locked.params, locked.log_level, locked.max_concurrent_runs) == (
        job.id, {"day": "2026-11-28"}, "DEBUG", 3,
    )  # fmt: skip
    first, second = locked.steps
    assert (first.name, first.position, first.retries, first.retry_delay_s, first.queue, first.enabled) == (
        "F0001", 1, 2, 0.5, "etl", True,
    )  # fmt: skip
    assert (second.op_kwargs, second.enabled, second.timeout_s) == (
        {"callable": "workers.builtins:sleep", "seconds": 1}, False, 3,
    )  # fmt: skip
    assert locked.base()["steps"]["F0002"] == {"op_kwargs": second.op_kwargs, "enabled": False}


def test_a_job_without_steps_locks_with_an_empty_step_list() -> None:
    job = make_job()

    assert lock_job(job.id).steps == []


def test_an_unknown_job_does_not_exist() -> None:
    with pytest.raises(Job.DoesNotExist, match="nope"):
        lock_job("nope")
    with pytest.raises(Job.DoesNotExist):
        lock_job_slots("nope")


def test_slots_count_dispatched_active_runs_as_busy_and_undispatched_ones_as_waiting() -> None:
    job = make_job({"callable": "workers.builtins:noop"}, max_concurrent_runs=2)
    common = {"job": job, "parameters": {}, "triggered_by": "api"}
    Run.objects.create(state="RUNNING", dispatched_at="2026-11-28T10:00Z", **common)
    Run.objects.create(state="QUEUED", dispatched_at="2026-11-28T10:00Z", **common)
    Run.objects.create(state="QUEUED", **common)
    Run.objects.create(state="SUCCEEDED", dispatched_at="2026-11-28T09:00Z", **common)

    with transaction.atomic():
        slots = lock_job_slots(job.id)

    assert (slots.busy, slots.waiting, slots.free, slots.start_now) == (2, 1, 0, False)

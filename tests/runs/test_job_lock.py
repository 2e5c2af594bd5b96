"""runs.job_lock: the one-round-trip lock and read of a job, its steps and its slots."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, transaction

from jobs.models import Job
from runs.job_lock import lock_job, lock_job_slots
from runs.models import Run
from runs.services import run_trigger
from tests.factories import make_job
from tests.processes import wait_for

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


def lock_waiters() -> int:
    """Lock requests waiting right now (pg_locks is live; pg_stat_activity would be read
    once per transaction)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_locks WHERE NOT granted")
        return cursor.fetchone()[0]


@pytest.mark.django_db(transaction=True)
def test_a_trigger_that_waited_for_the_lock_counts_the_run_its_holder_just_started() -> None:
    """Two triggers of a one-slot job at once: the second waits for the first's row lock,
    and must then see the first run in the slot, not the count from before it waited."""
    # A queue no worker serves: the session's worker (tests/conftest.py) must not run these
    # committed runs while the test's teardown empties the tables.
    job = make_job({"callable": "workers.builtins:noop", "queue": "test-unserved"}, max_concurrent_runs=1)
    second: dict[str, Run] = {}

    def trigger_second() -> None:
        try:
            second["run"] = run_trigger(job_id=job.id, triggered_by="api")[0]
        finally:
            connection.close()

    with transaction.atomic():  # the first trigger holds the job's lock until this commits
        first, _ = run_trigger(job_id=job.id, triggered_by="api")
        waiting = threading.Thread(target=trigger_second)
        waiting.start()
        wait_for(lock_waiters, timeout=10, interval=0.01, what="the second trigger to wait for the job's lock")
    waiting.join(10)

    assert Run.objects.get(pk=first.pk).dispatched_at is not None
    assert Run.objects.get(pk=second["run"].pk).dispatched_at is None  # waits QUEUED for the slot

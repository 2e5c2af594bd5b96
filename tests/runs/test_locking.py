"""runs.locking on real PostgreSQL: the lock order's one way back up (waiting runs taken
SKIP LOCKED under the job's lock), and the retry of a transaction PostgreSQL rolled back
to break a deadlock."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from django.conf import settings
from django.db import OperationalError, connection, transaction

from core.api.errors import busy_detail
from core.errors import conflict_kind
from jobs.models import Job
from runs import logstore, services
from runs.choices import RunState, StepState
from runs.job_lock import lock_job_slots
from runs.locking import ATTEMPTS, retry_on_conflict
from runs.models import Run
from tests.factories import end_as, make_job

pytestmark = pytest.mark.django_db(transaction=True)  # threads need each other's commits
QUEUE = "locking-test"  # no worker listens: dispatched runs stay as they are


def in_thread(fn: Callable[[], Any]) -> threading.Thread:
    def target() -> None:
        try:
            fn()
        finally:
            connection.close()

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread


def external_connection() -> psycopg.Connection[Any]:
    """Another client of the same database, outside Django (never retried by us)."""
    db = settings.DATABASES["default"]
    return psycopg.connect(f"postgresql://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}")


def test_a_slot_handover_skips_the_waiting_run_a_canceller_holds_instead_of_waiting() -> None:
    """Before: the hand-over held the job's row and waited for the waiting run's row, while
    the run's canceller held that row and waited for the job's: a deadlock."""
    job = make_job({"callable": "workers.builtins:noop", "queue": QUEUE}, max_concurrent_runs=1)
    running, _ = services.run_trigger(job_id=job.id, triggered_by="api")
    held_run, _ = services.run_trigger(job_id=job.id, triggered_by="api")
    next_run, _ = services.run_trigger(job_id=job.id, triggered_by="api")
    held, handed_over = threading.Event(), threading.Event()

    def canceller() -> None:  # run_cancel's order: the run's row, later the job's
        with transaction.atomic():
            Run.objects.select_for_update().get(pk=held_run.pk)
            held.set()
            handed_over.wait(10)
            lock_job_slots(job.id)

    cancelling = in_thread(canceller)
    assert held.wait(10)
    Run.objects.filter(pk=running.pk).update(state=RunState.SUCCEEDED)  # its slot is free
    handover = in_thread(services.runs_dispatch_waiting)
    handover.join(5)
    finished_first = not handover.is_alive()
    handed_over.set()
    cancelling.join(10)
    handover.join(10)

    assert finished_first, "the hand-over waited for a run its canceller held"
    dispatched = set(Run.objects.filter(dispatched_at__isnull=False).values_list("pk", flat=True))
    assert dispatched == {running.pk, next_run.pk}


def test_a_replays_end_never_waits_for_the_run_it_replays(caplog: pytest.LogCaptureFixture) -> None:
    """The storm's deadlock, in order. A replay's step ends: it holds its run, updates it
    twice (the last line's seq, then the state) and takes the job's lock to hand its slot
    on. Meanwhile the original is being replayed again: its row held, waiting for the job's
    lock. Before: PostgreSQL checked `replay_of` at the end's COMMIT (a second update of a
    row the transaction wrote re-checks its foreign keys), waiting for the original's row
    under the job's lock: a deadlock, retried."""
    job = make_job({"callable": "workers.builtins:noop", "queue": QUEUE})
    original = end_as(services.run_trigger(job_id=job.id, triggered_by="api")[0], "SUCCEEDED")
    replay = services.run_replay(run_id=original.pk, triggered_by="api")
    replay.mark_running()
    step = replay.steps.get()
    step.claim(worker="w")
    job_held, release = threading.Event(), threading.Event()

    def hold_the_job() -> None:
        with transaction.atomic():
            lock_job_slots(job.id)
            job_held.set()
            release.wait(10)

    def end_the_replays_step() -> None:
        lines = [logstore.entry("INFO", "done", step.name)]
        services.step_finish(step_run=step, state=StepState.SUCCEEDED, lines=lines)

    holder = in_thread(hold_the_job)
    assert job_held.wait(10)
    ending = in_thread(end_the_replays_step)
    wait_for_lock_waiters(1)  # the end queues first for the job's lock, holding its run
    replaying = in_thread(lambda: services.run_replay(run_id=original.pk, triggered_by="api"))
    wait_for_lock_waiters(2)  # the second replay holds the original and waits behind it
    release.set()
    for thread in (holder, ending, replaying):
        thread.join(15)

    assert not [r for r in caplog.records if "deadlock" in r.getMessage()], "a deadlock was broken by a retry"
    assert Run.objects.get(pk=replay.pk).state == RunState.SUCCEEDED
    assert Run.objects.filter(replay_of=original).count() == 2


def wait_for_lock_waiters(count: int) -> None:
    """Until `count` sessions of this database wait for a lock."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            if cursor.fetchone()[0] >= count:
                return
        time.sleep(0.02)
    raise AssertionError(f"{count} session(s) never waited for a lock")


def test_a_deadlock_victim_is_run_again_and_succeeds() -> None:
    first, second = make_job(id="first"), make_job(id="second")
    attempts: list[int] = []
    ours_locked, theirs_locked = threading.Event(), threading.Event()

    @retry_on_conflict
    def second_then_first() -> None:
        attempts.append(1)
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL deadlock_timeout = '20ms'")  # ours finds the cycle: the victim
            Job.objects.select_for_update().get(pk=second.pk)
            if len(attempts) == 1:
                ours_locked.set()
                theirs_locked.wait(10)
            Job.objects.select_for_update().get(pk=first.pk)

    def theirs() -> None:
        with external_connection() as conn, conn.transaction():
            conn.execute("SET LOCAL deadlock_timeout = '10s'")
            conn.execute("SELECT 1 FROM jobs_job WHERE id = %s FOR UPDATE", [first.pk])
            theirs_locked.set()
            ours_locked.wait(10)
            conn.execute("SELECT 1 FROM jobs_job WHERE id = %s FOR UPDATE", [second.pk])

    other = in_thread(theirs)
    second_then_first()
    other.join(10)

    assert len(attempts) == 2


def test_inside_an_outer_transaction_the_conflict_goes_to_its_owner() -> None:
    calls: list[int] = []

    @retry_on_conflict
    def deadlocked() -> None:
        calls.append(1)
        raise deadlock_error()

    with pytest.raises(OperationalError), transaction.atomic():
        deadlocked()
    assert calls == [1]

    with pytest.raises(OperationalError):
        deadlocked()
    assert len(calls) == 1 + ATTEMPTS  # bounded: the last one is raised


def test_the_api_answers_a_conflict_or_a_full_pool_as_busy() -> None:
    from psycopg_pool import PoolTimeout

    full = OperationalError("couldn't get a connection after 5.00 sec")
    full.__cause__ = PoolTimeout("couldn't get a connection after 5.00 sec")

    assert conflict_kind(deadlock_error()) == "deadlock"
    assert "deadlock" in (busy_detail(deadlock_error()) or "")
    assert "NOMAFLOW_DB_POOL_MAX_SIZE" in (busy_detail(full) or "")
    assert busy_detail(OperationalError("connection refused")) is None
    assert busy_detail(ValueError()) is None


def deadlock_error() -> OperationalError:
    """What Django raises for PostgreSQL's deadlock_detected (40P01)."""
    error = OperationalError("deadlock detected")
    error.__cause__ = psycopg.errors.DeadlockDetected("deadlock detected")
    return error

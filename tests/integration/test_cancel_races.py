"""Cancel under races, 200 times each, against a real worker.

In every iteration: no step starts after the cancel is recorded, every run ends in a
terminal state, a canceled run ends SUCCEEDED exactly when the cancel stopped nothing,
and no run changes state once terminal (checked again at the end).
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from django.db import connection

from core.errors import StateConflict
from core.models import AuditEvent
from jobs.models import Job
from runs.models import Run, StepRun
from runs.services import run_cancel, run_replay, run_trigger
from tests.factories import make_job
from tests.processes import Process, wait_for, wait_terminal

ITERATIONS = 200
BY = "user:otto"


@dataclass
class Attempt:
    run: Run
    canceled: bool
    started_at_cancel: set[str] = field(default_factory=set)


def started(run: Run) -> set[str]:
    return set(StepRun.objects.filter(run=run, started_at__isnull=False).values_list("name", flat=True))


def cancel(run: Run) -> Attempt:
    try:
        run_cancel(run_id=run.id, by=BY)
    except StateConflict:
        return Attempt(run, canceled=False)
    return Attempt(run, canceled=True, started_at_cancel=started(run))


def trigger(job: Job) -> Run:
    return run_trigger(job_id=job.id, triggered_by="api")[0]


def wait_step_started(run: Run) -> None:
    wait_for(lambda: started(run), interval=0.005, what=f"a step of {run.id} to start")


def work_completed(run: Run) -> bool:
    """Every step that was to run SUCCEEDED; the others were disabled before the run started."""
    states = set(run.steps.values_list("state", "reason"))
    return states <= {("SUCCEEDED", ""), ("CANCELED", "skipped: disabled")}


def assert_cancel_verdict(run: Run) -> None:
    """A run whose cancel was accepted: SUCCEEDED iff the cancel stopped nothing, and its
    last line says which."""
    last = run.log_lines.order_by("-seq").first().message
    assert run.canceled_by == BY, run.id
    if work_completed(run):
        assert (run.state, last) == ("SUCCEEDED", f"cancel by {BY} arrived after the last step finished"), run.id
    else:
        assert (run.state, last) == ("CANCELED", f"run cancelled by {BY}"), run.id


def check(attempts: list[Attempt]) -> None:
    """The invariants, for every attempt; then nothing moves any more."""
    final = {}
    for attempt in attempts:
        run = wait_terminal(attempt.run)
        if attempt.canceled:
            assert_cancel_verdict(run)
            assert started(run) == attempt.started_at_cancel, f"{run.id}: a step started after the cancel"
            assert not run.steps.filter(state__in=["PENDING", "RUNNING"]).exists()
        else:
            assert run.state in ("SUCCEEDED", "FAILED"), run.id
        final[run.id] = (run.state, run.finished_at, list(run.steps.values_list("state", "finished_at")))
    assert any(a.canceled for a in attempts)
    for attempt in attempts:  # a terminal run never changes state again
        run = Run.objects.get(pk=attempt.run.pk)
        assert (run.state, run.finished_at, list(run.steps.values_list("state", "finished_at"))) == final[run.id]


def concurrently(*calls: Callable[[], Any]) -> list[Any]:
    """Run `calls` at the same moment in threads; each returns its value or its exception."""
    barrier = threading.Barrier(len(calls))

    def go(call: Callable[[], Any]) -> Any:
        barrier.wait()
        try:
            return call()
        except Exception as exc:
            return exc
        finally:
            connection.close()

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(go, calls))


def test_cancel_right_after_trigger(worker: Process) -> None:
    job = make_job(
        {"callable": "workers.builtins:noop"}, {"callable": "workers.builtins:noop"}, max_concurrent_runs=1000
    )

    check([cancel(trigger(job)) for _ in range(ITERATIONS)])


def test_cancel_within_milliseconds_of_a_step_finishing(worker: Process) -> None:
    job = make_job(
        {"callable": "workers.builtins:sleep", "seconds": 0.02},
        {"callable": "workers.builtins:noop"},
        max_concurrent_runs=1000,
    )
    attempts = []
    for _ in range(ITERATIONS):
        run = trigger(job)
        wait_step_started(run)
        threading.Event().wait(random.uniform(0, 0.04))  # jitter: land the cancel around the step's end
        attempts.append(cancel(run))

    check(attempts)


def test_a_cancel_as_the_last_step_ends_leaves_a_state_that_says_what_the_work_did(worker: Process) -> None:
    job = make_job(
        {"callable": "workers.builtins:noop"},
        {"callable": "workers.builtins:sleep", "seconds": 0.02},
        {"callable": "workers.builtins:noop", "enabled": False},
        max_concurrent_runs=1000,
    )
    attempts = []
    for _ in range(ITERATIONS):
        run = trigger(job)
        wait_for(lambda run=run: "F0002" in started(run), interval=0.005, what=f"F0002 of {run.id} to start")
        threading.Event().wait(random.uniform(0, 0.035))  # around the last step's end
        attempts.append(cancel(run))

    check(attempts)
    canceled = [wait_terminal(a.run) for a in attempts if a.canceled]
    # Both verdicts were reached: cancels that stopped the step, and cancels that came too late.
    assert {run.state for run in canceled} == {"SUCCEEDED", "CANCELED"}


def test_double_cancel(worker: Process) -> None:
    queued = make_job({"callable": "workers.builtins:noop", "queue": "idle"}, max_concurrent_runs=1000)
    running = make_job({"callable": "workers.builtins:sleep", "seconds": 30}, max_concurrent_runs=1000)
    attempts = []
    for index in range(ITERATIONS):
        run = trigger(queued if index % 2 else running)
        if not index % 2:
            wait_step_started(run)
        cancel_once = partial(run_cancel, run_id=run.id, by=BY)
        results = concurrently(cancel_once, cancel_once)
        assert all(isinstance(r, Run | StateConflict) for r in results), results
        attempts.append(Attempt(run, canceled=True, started_at_cancel=started(run)))

    check(attempts)
    for attempt in attempts:
        assert AuditEvent.objects.filter(action="cancel", object_id=attempt.run.id).count() == 1
        assert attempt.run.log_lines.filter(message__startswith="run cancelled by").count() == 1


def test_cancel_and_replay_at_the_same_time(worker: Process) -> None:
    job = make_job({"callable": "workers.builtins:sleep", "seconds": 0.02}, max_concurrent_runs=1000)
    attempts, replays = [], []
    for _ in range(ITERATIONS):
        run = trigger(job)
        wait_step_started(run)
        threading.Event().wait(random.uniform(0, 0.03))
        canceled, replayed = concurrently(
            partial(run_cancel, run_id=run.id, by=BY), partial(run_replay, run_id=run.id, triggered_by="api")
        )
        assert isinstance(canceled, Run | StateConflict) and isinstance(replayed, Run | StateConflict)
        attempts.append(Attempt(run, canceled=isinstance(canceled, Run), started_at_cancel=started(run)))
        if isinstance(replayed, Run):
            replays.append(replayed)

    check(attempts)
    for replay in replays:  # a replay is a run of its own: the original's cancel never touches it
        replay = wait_terminal(replay)
        assert replay.state == "SUCCEEDED" and replay.canceled_by is None
        assert replay.parameters == replay.replay_of.parameters

"""Guarded state transitions: a terminal run or step never changes state again."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from runs.models import Run, StepRun
from runs.services import run_trigger
from runs.transitions import cancel_verdict
from tests.factories import make_job

pytestmark = pytest.mark.django_db


def queued_run() -> Run:
    job = make_job({"callable": "workers.builtins:noop"}, {"callable": "workers.builtins:noop"})
    return run_trigger(job_id=job.id, triggered_by="api")[0]


def test_a_step_is_claimed_at_most_once() -> None:
    step = queued_run().steps.first()

    assert step.claim(worker="w1") is True
    assert StepRun.objects.get(pk=step.pk).claim(worker="w2") is False
    step.refresh_from_db()
    assert (step.state, step.worker, step.attempts) == ("RUNNING", "w1", 1)


def test_a_step_of_a_finished_run_cannot_be_claimed() -> None:
    run = queued_run()
    run.finish("CANCELED", canceled_by="user:otto")

    assert run.steps.first().claim(worker="w1") is False


@pytest.mark.parametrize("final", ["SUCCEEDED", "FAILED", "CANCELED"])
def test_a_terminal_run_never_changes_state_again(final: str) -> None:
    run = queued_run()
    assert run.finish(final) is True

    stale = Run.objects.get(pk=run.pk)
    assert stale.mark_running() is False
    for other in {"SUCCEEDED", "FAILED", "CANCELED"} - {final}:
        assert stale.finish(other) is False
    assert Run.objects.get(pk=run.pk).state == final


def test_a_canceled_step_never_ends_succeeded() -> None:
    step = queued_run().steps.first()
    step.claim(worker="w1")
    assert step.finish("CANCELED", reason="canceled by user:otto") is True

    assert StepRun.objects.get(pk=step.pk).finish("SUCCEEDED") is False
    assert StepRun.objects.get(pk=step.pk).state == "CANCELED"


def test_a_steps_end_finishes_it_and_reads_the_run_in_one_round_trip() -> None:
    run = queued_run()
    first, second = run.steps.order_by("position")
    first.claim(worker="w1")

    with CaptureQueriesContext(connection) as queries:
        at_end = first.finish_and_read_run("FAILED", reason="", error="boom", traceback="tb")
        assert at_end is not None
        read = (at_end.run.state, at_end.run.canceled_by, at_end.has_pending_steps)
        notify = (at_end.run.job.notify_on, at_end.run.job.notify_emails, at_end.run.job.notify_webhook)

    assert len(queries) == 1  # the job's notification settings come with the run
    assert read == ("QUEUED", None, True)  # the second step is still pending
    assert notify == ([], [], "") and at_end.run.job.name == run.job.name  # the rest of the job: when asked
    assert "parameters" in at_end.run.get_deferred_fields()  # a step's end does not read the snapshot
    assert (first.state, first.error, first.finished_at is not None) == ("FAILED", "boom", True)
    stored = StepRun.objects.get(pk=first.pk)
    assert (stored.state, stored.error, stored.traceback, stored.finished_at) == (
        "FAILED",
        "boom",
        "tb",
        first.finished_at,
    )
    assert second.finish_and_read_run("SUCCEEDED") is None  # a step succeeds only once it ran (runs.transitions)
    assert second.finish_and_read_run("CANCELED", reason="upstream failed") is not None  # a PENDING one can be


def test_a_claim_reads_the_step_its_run_and_the_runs_steps_in_one_round_trip() -> None:
    run = queued_run()
    first = StepRun(pk=run.steps.order_by("position")[0].pk)

    with CaptureQueriesContext(connection) as queries:
        assert first.claim(worker="w1") is True
        read = (first.run.state, first.run.parameters, [step.state for step in first.run.steps.all()])

    assert len(queries) == 1
    assert read == ("QUEUED", run.parameters, ["RUNNING", "PENDING"])
    stored = StepRun.objects.get(pk=first.pk)
    assert (first.state, first.worker, first.attempts, first.name) == ("RUNNING", "w1", 1, stored.name)
    assert (first.started_at, first.heartbeat_at) == (stored.started_at, stored.heartbeat_at)
    assert StepRun(pk=first.pk).claim(worker="w2") is False  # a second delivery changes nothing


def test_a_claim_with_the_run_at_hand_is_one_statement() -> None:
    """A worker keeps the runs it executes steps of (runs.services.step_claim): a chain's
    later steps claim without reading the run again."""
    run = queued_run()
    first, second = (StepRun(pk=pk) for pk in run.steps.order_by("position").values_list("pk", flat=True))
    first.claim(worker="w1")
    StepRun.objects.filter(pk=first.pk).update(state="SUCCEEDED")

    with CaptureQueriesContext(connection) as queries:
        assert second.claim(worker="w1", run=first.run) is True

    assert len(queries) == 1 and second.run is first.run
    assert StepRun(pk=second.pk).claim(worker="w1", run=first.run) is False


def test_a_claim_that_does_not_start_its_run_reads_none_of_its_steps() -> None:
    """A long chain's later steps: only the claim that starts a run needs its steps."""
    run = queued_run()
    first_id, second_id = run.steps.order_by("position").values_list("pk", flat=True)
    StepRun(pk=first_id).claim(worker="w1")
    Run.objects.get(pk=run.pk).mark_running()
    StepRun.objects.get(pk=first_id).finish("SUCCEEDED")
    second = StepRun(pk=second_id)

    assert second.claim(worker="w1") is True

    assert "steps" not in getattr(second.run, "_prefetched_objects_cache", {})
    assert (second.run.state, second.state) == ("RUNNING", "RUNNING")


def test_the_end_of_a_step_that_already_ended_changes_nothing() -> None:
    step = queued_run().steps.first()
    step.claim(worker="w1")
    assert step.finish("CANCELED", reason="canceled by user:otto") is True

    late = StepRun.objects.get(pk=step.pk)
    assert late.finish_and_read_run("SUCCEEDED") is None
    assert (late.state, StepRun.objects.get(pk=step.pk).state) == ("CANCELED", "CANCELED")


def run_with_steps_at(*states: str) -> Run:
    """A RUNNING run whose steps are at `states` (DISABLED: skipped before the run started),
    as a cancel finds it."""
    job = make_job(*({"callable": "workers.builtins:noop", "enabled": s != "DISABLED"} for s in states))
    run = run_trigger(job_id=job.id, triggered_by="api")[0]
    run.mark_running()
    for step, state in zip(run.steps.order_by("position"), states, strict=True):
        if state in ("RUNNING", "SUCCEEDED", "FAILED", "CANCELED"):
            step.claim(worker="w")
        if state in ("SUCCEEDED", "FAILED"):
            step.finish(state)
        elif state == "CANCELED":
            step.finish(state, reason="canceled by user:otto")
    return run


@pytest.mark.parametrize(
    ("states", "verdict"),
    [
        (["SUCCEEDED", "SUCCEEDED"], "SUCCEEDED"),  # the cancel came after the last step's work
        (["SUCCEEDED", "DISABLED"], "SUCCEEDED"),  # a disabled step was never part of the work
        (["DISABLED", "SUCCEEDED", "DISABLED"], "SUCCEEDED"),
        (["SUCCEEDED", "CANCELED"], "CANCELED"),  # stopped by the cancel
        (["SUCCEEDED", "PENDING"], "CANCELED"),  # never started
        (["SUCCEEDED", "RUNNING"], "CANCELED"),  # still winding down
        (["FAILED", "DISABLED"], "CANCELED"),  # a cancel that met a failure stays CANCELED, as before
    ],
)
def test_a_canceled_runs_ending_is_what_its_steps_did(states: list[str], verdict: str) -> None:
    run = run_with_steps_at(*states)

    assert run.ending_after_cancel() == verdict


def test_the_cancel_verdict_looks_at_reasons_not_only_states() -> None:
    assert cancel_verdict([("SUCCEEDED", ""), ("CANCELED", "skipped: disabled")]) == "SUCCEEDED"
    assert cancel_verdict([("SUCCEEDED", ""), ("CANCELED", "canceled by user:otto")]) == "CANCELED"
    assert cancel_verdict([("SUCCEEDED", ""), ("CANCELED", "upstream failed")]) == "CANCELED"

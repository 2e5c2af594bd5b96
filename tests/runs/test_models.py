"""Guarded state transitions: a terminal run or step never changes state again."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from runs.models import Run, StepRun
from runs.services import run_trigger
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
        at_end = first.end("FAILED", reason="", error="boom", traceback="tb")

    assert len(queries) == 1
    assert at_end == ("QUEUED", None, True)  # the second step is still pending
    assert (first.state, first.error, first.finished_at is not None) == ("FAILED", "boom", True)
    stored = StepRun.objects.get(pk=first.pk)
    assert (stored.state, stored.error, stored.traceback, stored.finished_at) == (
        "FAILED",
        "boom",
        "tb",
        first.finished_at,
    )
    assert second.end("SUCCEEDED") is not None  # a PENDING step can end too (a disabled or upstream-failed one)


def test_the_end_of_a_step_that_already_ended_changes_nothing() -> None:
    step = queued_run().steps.first()
    step.claim(worker="w1")
    assert step.finish("CANCELED", reason="canceled by user:otto") is True

    late = StepRun.objects.get(pk=step.pk)
    assert late.end("SUCCEEDED") is None
    assert (late.state, StepRun.objects.get(pk=step.pk).state) == ("CANCELED", "CANCELED")

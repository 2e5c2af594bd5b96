"""A worker SIGKILLed mid-step: the scheduler's reaper fails the step as `worker lost`,
and no step attempt ever runs a second time, even after the broker's visibility timeout."""

from __future__ import annotations

from pathlib import Path

from runs.choices import REASON_UPSTREAM_FAILED, REASON_WORKER_LOST, StepState
from runs.models import Run
from runs.services import run_trigger, step_finish
from tests.factories import make_job
from tests.processes import Process, start_worker, wait_for, wait_terminal

QUEUE = "doomed"
# A one-second visibility timeout: a message the dead worker held would come back at once.
FAST_REDELIVERY = {"NOMAFLOW_VISIBILITY_TIMEOUT_S": "1"}


def test_sigkill_mid_step_fails_it_as_worker_lost_and_nothing_runs_twice(scheduler: Process, tmp_path: Path) -> None:
    ran = tmp_path / "ran.txt"
    record = {"callable": "tests.steps:record", "path": str(ran), "queue": QUEUE}
    job = make_job(
        record,
        {"callable": "tests.steps:record_and_sleep", "path": str(ran), "seconds": 120, "queue": QUEUE},
        record,
    )
    doomed = start_worker(queues=QUEUE, concurrency=1, name="doomed", **FAST_REDELIVERY)
    run, _ = run_trigger(job_id=job.id, triggered_by="cli")
    wait_for(lambda: ran.exists() and " F0002 " in ran.read_text(), what="F0002 to start its work")

    doomed.kill()
    doomed.stop()

    run = wait_terminal(run, timeout=30)
    steps = {s.name: s for s in run.steps.all()}
    assert run.state == "FAILED"
    assert (steps["F0002"].state, steps["F0002"].reason) == ("FAILED", REASON_WORKER_LOST)
    assert "no heartbeat from worker doomed-" in steps["F0002"].error
    assert (steps["F0003"].state, steps["F0003"].reason) == ("CANCELED", REASON_UPSTREAM_FAILED)
    messages = list(run.log_lines.order_by("seq").values_list("message", flat=True))
    assert messages[-2].startswith("step F0002 · worker lost: no heartbeat from worker doomed-")
    assert messages[-1].startswith("step F0002 · FAILED · ")

    # A fresh worker on the same queue restores whatever the broker still held; a probe
    # run going through behind it shows the queue has been drained.
    revived = start_worker(queues=QUEUE, concurrency=1, name="revived", **FAST_REDELIVERY)
    try:
        probe = make_job({"callable": "workers.builtins:noop", "queue": QUEUE})
        probe_run, _ = run_trigger(job_id=probe.id, triggered_by="cli")
        assert wait_terminal(probe_run).state == "SUCCEEDED"
    finally:
        revived.stop()
    assert [line.split()[1] for line in ran.read_text().splitlines()] == ["F0001", "F0002"]
    run.refresh_from_db()
    assert run.state == "FAILED" and run.steps.get(name="F0002").attempts == 1


def test_a_step_ended_elsewhere_stops_on_its_workers_next_heartbeat(transactional_db: None, tmp_path: Path) -> None:
    """What a worker cut off past the heartbeat timeout finds when it comes back: its step
    already failed as `worker lost` (here written as the reaper writes it). It stops the
    work at its next heartbeat instead of running it to its end, keeps the recorded end,
    and its one process takes new work at once."""
    ran = tmp_path / "ran.txt"
    job = make_job({"callable": "tests.steps:record_and_sleep", "path": str(ran), "seconds": 120, "queue": QUEUE})
    worker = start_worker(queues=QUEUE, concurrency=1, name="partitioned", NOMAFLOW_HEARTBEAT_INTERVAL_S="0.2")
    try:
        run, _ = run_trigger(job_id=job.id, triggered_by="cli")
        wait_for(ran.exists, what="the step to start its work")
        step = run.steps.get()
        step_finish(step_run=step, state=StepState.FAILED, reason=REASON_WORKER_LOST, error="no heartbeat (test)")

        worker.wait_for_output("was ended elsewhere; stopping it", timeout=10)
        probe = make_job({"callable": "workers.builtins:noop", "queue": QUEUE})
        probe_run, _ = run_trigger(job_id=probe.id, triggered_by="cli")
        assert wait_terminal(probe_run, timeout=15).state == "SUCCEEDED"  # long before the 120 s step's end
    finally:
        worker.stop()
    step.refresh_from_db()
    assert (step.state, step.reason, step.error) == ("FAILED", REASON_WORKER_LOST, "no heartbeat (test)")
    assert Run.objects.get(pk=run.pk).state == "FAILED"

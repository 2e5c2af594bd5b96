"""Workers on three "hosts" (network namespaces, tests/netns.py), each serving a queue of its
own and reaching PostgreSQL and Redis over its link. Steps go to the host of their queue.
One host's link is cut mid-step: the reaper fails that step as `worker lost` within the
heartbeat timeout, it never runs twice, the other hosts' runs go on; once the link is back
the cut worker finishes its step against a row that is already ended (and changes nothing),
then takes new work."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import pytest
from django.utils import timezone

from jobs.models import Job
from runs.choices import REASON_UPSTREAM_FAILED, REASON_WORKER_LOST
from runs.models import Run, SiteSettings, StepRun
from runs.services import run_trigger
from tests import netns
from tests.factories import make_job
from tests.processes import Process, start_scheduler, start_worker, wait_for, wait_terminal

QUEUES = ("east", "west", "gpu")  # host i serves QUEUES[i] only
CUT = "west"
HEARTBEAT_INTERVAL_S = 0.5
HEARTBEAT_TIMEOUT_S = 3.0
REAP_SLACK_S = 2.0  # the scheduler's tick, the last beat before the cut, a loaded machine
CUT_STEP_SLEEP_S = 6.0  # outlasts the reap: the cut worker only gets to its finish after the link is back
WORKER_ENV = {
    "NOMAFLOW_HEARTBEAT_INTERVAL_S": str(HEARTBEAT_INTERVAL_S),
    "NOMAFLOW_VISIBILITY_TIMEOUT_S": "1",  # anything the broker could hand out twice would come back at once
    # A cut inside a log write leaves the run's row locked until PostgreSQL ends the session.
    "NOMAFLOW_DB_IDLE_IN_TRANSACTION_S": "1",
}


@pytest.fixture
def hosts(transactional_db: None) -> Iterator[dict[str, netns.Host]]:
    with netns.hosts(len(QUEUES)) as made:
        yield dict(zip(QUEUES, made, strict=True))


@pytest.fixture
def workers(hosts: dict[str, netns.Host]) -> Iterator[dict[str, Process]]:
    """One worker per host, started side by side (each takes seconds to boot)."""

    def start(queue: str) -> Process:
        host = hosts[queue]
        return start_worker(queue, 1, queue, prefix=host.prefix, **WORKER_ENV, **host.env())

    with ThreadPoolExecutor(len(QUEUES)) as pool:
        futures = {queue: pool.submit(start, queue) for queue in QUEUES}
    started = {queue: future.result() for queue, future in futures.items() if future.exception() is None}
    try:
        if len(started) < len(QUEUES):
            failed = next(f.exception() for f in futures.values() if f.exception() is not None)
            raise AssertionError(f"a worker on its host did not start: {failed}")
        yield started
    finally:
        for worker in started.values():
            worker.kill()  # the link may still be down: no warm shutdown to wait for
            worker.stop()


@pytest.fixture
def reaper(transactional_db: None) -> Iterator[Process]:
    """The scheduler (on the root namespace, loopback), reading our heartbeat timeout from its start."""
    SiteSettings.objects.update_or_create(pk=1, defaults={"heartbeat_timeout_s": HEARTBEAT_TIMEOUT_S})
    process = start_scheduler(NOMAFLOW_SCHEDULER_TICK_S="0.2")
    yield process
    process.stop()


def test_steps_run_on_their_queue_s_host_and_a_cut_host_loses_only_its_step(
    hosts: dict[str, netns.Host], workers: dict[str, Process], reaper: Process, tmp_path: Path
) -> None:
    ledger = Ledger(tmp_path / "ran.txt")
    across = trigger(make_job(*(ledger.step(queue) for queue in QUEUES)))
    assert wait_terminal(across).state == "SUCCEEDED"
    for step, queue in zip(across.steps.order_by("position"), QUEUES, strict=True):
        assert_ran_on(hosts, workers, step, queue, ledger.pids(across, step.name))

    lost, reaped = cut_mid_step(hosts[CUT], workers[CUT], ledger)
    assert_late_end_changes_nothing(workers[CUT], ledger, lost, reaped)

    again = trigger(make_job(ledger.step(CUT), ledger.step(CUT)))  # the cut host takes new work
    assert wait_terminal(again, timeout=60).state == "SUCCEEDED"
    for step in again.steps.order_by("position"):
        assert_ran_on(hosts, workers, step, CUT, ledger.pids(again, step.name))


def cut_mid_step(host: netns.Host, worker: Process, ledger: Ledger) -> tuple[Run, StepRun]:
    """Cut `host` (CUT's) while its run and the other hosts' runs are mid-step; back up once
    its step is reaped and the others' runs, and runs started during the cut, have ended."""
    doomed = trigger(make_job(ledger.step(CUT), ledger.step(CUT, CUT_STEP_SLEEP_S), ledger.step(CUT)))
    wait_for(lambda: ledger.started(doomed, "F0002"), what="the doomed step to start on its host")
    others = [queue for queue in QUEUES if queue != CUT]
    spanning = [trigger(make_job(ledger.step(q, 1), ledger.step(q, 1), ledger.step(q))) for q in others]
    wait_for(lambda: all(ledger.started(run, "F0001") for run in spanning), what="the other hosts' runs to start")
    cut_at = timezone.now()
    host.cut()
    try:
        during = [trigger(make_job(ledger.step(q), ledger.step(q))) for q in others]
        lost = wait_terminal(doomed, timeout=HEARTBEAT_TIMEOUT_S + 20)
        for run in spanning + during:
            assert wait_terminal(run).state == "SUCCEEDED", f"{run.job_id}: the cut of {CUT} stopped another host"
        assert all(run.finished_at and run.finished_at > cut_at for run in spanning), "they spanned the cut"
        steps = {s.name: s for s in lost.steps.all()}
        reaped = steps["F0002"]
        assert lost.state == "FAILED"
        assert (reaped.state, reaped.reason) == ("FAILED", REASON_WORKER_LOST)
        assert reaped.error.startswith(f"no heartbeat from worker {CUT}-")
        assert (steps["F0003"].state, steps["F0003"].reason) == ("CANCELED", REASON_UPSTREAM_FAILED)
        assert_within_timeout(cut_at, reaped)
        assert worker.proc.poll() is None, "the cut worker is alive, only unreachable"
    finally:
        host.restore()
    return lost, reaped


def assert_late_end_changes_nothing(worker: Process, ledger: Ledger, lost: Run, reaped: StepRun) -> None:
    """Back on the network, the cut worker gets to its step's end: the row is already ended."""
    worker.wait_for_output(f"workers.execute_step[{reaped.task_id}] succeeded", timeout=60)
    # Its connections hung and resumed: had the cut reset them, this would be a milder test.
    noticed = [s for s in ("heartbeat of step", "database error in", "broker lost") if s in worker.output()]
    assert not noticed, f"the cut was not a silent partition: {noticed}"
    after = StepRun.objects.get(pk=reaped.pk)
    ended = (after.state, after.reason, after.error, after.finished_at, after.attempts, after.worker)
    assert ended == (reaped.state, reaped.reason, reaped.error, reaped.finished_at, 1, reaped.worker)
    assert Run.objects.filter(pk=lost.pk, state="FAILED", finished_at=lost.finished_at).exists()
    messages = list(lost.log_lines.order_by("seq").values_list("message", flat=True))
    assert not [m for m in messages if m.startswith("step F0002 · SUCCEEDED")], messages
    assert messages[-1].startswith("step F0002 · FAILED · "), messages
    assert [line[1] for line in ledger.lines(lost)] == ["F0001", "F0002"]  # never run twice


class Ledger:
    """The file tests.steps.record appends `run step pid` to: what ran, how often, in which process."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def step(self, queue: str, seconds: float = 0) -> dict[str, object]:
        """A step on `queue` that records itself (then sleeps `seconds`)."""
        if seconds:
            return {
                "callable": "tests.steps:record_and_sleep",
                "path": str(self.path),
                "seconds": seconds,
                "queue": queue,
            }
        return {"callable": "tests.steps:record", "path": str(self.path), "queue": queue}

    def lines(self, run: Run) -> list[list[str]]:
        text = self.path.read_text() if self.path.exists() else ""
        return [line.split() for line in text.splitlines() if line.startswith(f"{run.id} ")]

    def started(self, run: Run, step: str) -> bool:
        return any(line[1] == step for line in self.lines(run))

    def pids(self, run: Run, step: str) -> list[int]:
        return [int(line[2]) for line in self.lines(run) if line[1] == step]


def trigger(job: Job) -> Run:
    return run_trigger(job_id=job.id, triggered_by="cli")[0]


def assert_ran_on(
    hosts: dict[str, netns.Host], workers: dict[str, Process], step: StepRun, queue: str, pids: list[int]
) -> None:
    """`step` ran once, in the namespace of `queue`'s host, by that host's worker."""
    assert step.queue == queue and step.state == "SUCCEEDED", (step.name, step.queue, step.state)
    assert len(pids) == 1, f"{step.name} ran {len(pids)} times"
    assert hosts[queue].owns(pids[0]), f"{step.name} ({queue}) ran outside {hosts[queue].netns}"
    assert step.worker.startswith(f"{queue}-") and step.worker.endswith(f":{pids[0]}"), step.worker
    assert workers[queue].proc.poll() is None


def assert_within_timeout(cut_at: datetime, reaped: StepRun) -> None:
    assert reaped.finished_at is not None
    silent_s = (reaped.finished_at - cut_at).total_seconds()
    assert silent_s <= HEARTBEAT_TIMEOUT_S + REAP_SLACK_S, f"reaped {silent_s:.1f} s after the cut"

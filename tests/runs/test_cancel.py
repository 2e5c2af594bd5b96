"""run_cancel against a real worker: each step type stops for real, and the record says so."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from django.conf import settings

from core.errors import StateConflict
from core.models import AuditEvent
from runs import logstore
from runs.models import Run, StepRun
from runs.services import run_cancel, run_trigger, step_claim, step_finish, step_started
from tests.factories import ConnectorFactory, make_job
from tests.processes import Process, start_worker, wait_for, wait_terminal
from tests.scratch_db import scratch_database

BY = "user:otto"


def trigger(*steps: dict, **job_fields: object) -> Run:
    return run_trigger(job_id=make_job(*steps, **job_fields).id, triggered_by="api")[0]


def wait_running(run: Run, step: str) -> StepRun:
    return wait_for(lambda: StepRun.objects.filter(run=run, name=step, state="RUNNING").first(), what=f"{step} running")


def assert_canceled_record(run: Run) -> None:
    run = wait_terminal(run)
    assert (run.state, run.canceled_by) == ("CANCELED", BY)
    last = run.log_lines.order_by("-seq").first()
    assert last.message == f"run cancelled by {BY}"
    assert AuditEvent.objects.filter(action="cancel", object_id=run.id, actor=BY).count() == 1
    assert not run.steps.filter(state="SUCCEEDED", finished_at__gt=run.finished_at).exists()


def test_a_queued_run_is_canceled_at_once_and_its_tasks_never_run(transactional_db: None, tmp_path: Path) -> None:
    record = {"callable": "tests.steps:record", "path": str(tmp_path / "ran.txt"), "queue": "idle"}
    run = trigger(record, record)

    run_cancel(run_id=run.id, by=BY)

    run.refresh_from_db()
    assert run.state == "CANCELED" and run.finished_at is not None
    assert list(run.steps.values_list("state", "reason")) == [("CANCELED", f"canceled by {BY}")] * 2
    assert_canceled_record(run)
    # A worker arriving later on that queue gets the messages, and the claim refuses them.
    late = start_worker(queues="idle", concurrency=1, name="late")
    try:
        probe = trigger({"callable": "workers.builtins:noop", "queue": "idle"})
        assert wait_terminal(probe).state == "SUCCEEDED"
    finally:
        late.stop()
    assert not (tmp_path / "ran.txt").exists()


def test_an_async_python_step_is_cancelled_at_its_await(worker: Process) -> None:
    run = trigger({"callable": "workers.builtins:sleep", "seconds": 60}, {"callable": "workers.builtins:noop"})
    wait_running(run, "F0001")

    run_cancel(run_id=run.id, by=BY)

    assert_canceled_record(run)
    first, second = run.steps.order_by("position")
    assert (first.state, first.reason) == ("CANCELED", f"canceled by {BY}")
    assert first.duration_s < 10
    assert (second.state, second.reason, second.started_at) == ("CANCELED", f"canceled by {BY}", None)
    messages = list(run.log_lines.order_by("seq").values_list("message", flat=True))
    assert messages[-3:] == [f"step F0001 canceled by {BY}", messages[-2], f"run cancelled by {BY}"]
    assert messages[-2].startswith("step F0001 · CANCELED · ")


def test_a_sync_python_step_stops_at_check_canceled(worker: Process, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    run = trigger({"callable": "tests.steps:cooperative", "marker": str(marker)})
    wait_running(run, "F0001")

    run_cancel(run_id=run.id, by=BY)

    assert_canceled_record(run)
    assert marker.read_text() == "stopped"  # the thread itself ended before the step did
    assert run.steps.get().state == "CANCELED"


@pytest.fixture
def probe_db() -> Iterator[str]:
    """A scratch database (no step may use nomaflow's own) with an empty table, and its connector."""
    with scratch_database("cancel") as url:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE TABLE cancel_probe (n int)")
        ConnectorFactory(name="scratch", kind="postgres", url=url)
        yield url


def test_sql_query_is_cancelled_on_the_server_and_rolled_back(worker: Process, probe_db: str) -> None:
    sql = ["INSERT INTO cancel_probe VALUES (1)", "SELECT pg_sleep(60)"]
    run = trigger({"type": "sql_query", "op_kwargs": {"connector": "scratch", "sql": sql}})
    activity = "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE %s AND state <> 'idle'"
    with psycopg.connect(probe_db, autocommit=True) as conn:
        wait_for(lambda: conn.execute(activity, [f"%{run.id}%"]).fetchone()[0] == 1, what="pg_sleep on the server")

        run_cancel(run_id=run.id, by=BY)

        assert_canceled_record(run)
        assert conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE %s", [f"%{run.id}%"]
        ).fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM cancel_probe").fetchone() == (0,)


def test_a_step_that_ignores_cancel_has_its_worker_process_terminated(worker: Process) -> None:
    run = trigger({"callable": "workers.builtins:busy", "seconds": 120})
    wait_running(run, "F0001")

    run_cancel(run_id=run.id, by=BY)

    assert_canceled_record(run)
    step = run.steps.get()
    assert (step.state, step.reason) == ("CANCELED", f"canceled by {BY}")
    assert settings.NOMAFLOW_CANCEL_GRACE_S <= step.duration_s < 30
    assert run.log_lines.filter(message__contains="did not stop within 1.5 s; terminating worker process").exists()
    wait_for(lambda: "exitcode 75" in worker.output(), what="the pool to report the terminated process")
    # The worker comes back and takes new work.
    assert wait_terminal(trigger({"callable": "workers.builtins:noop"})).state == "SUCCEEDED"


def test_cancel_reaches_canceled_even_when_the_worker_is_gone(transactional_db: None, scheduler: Process) -> None:
    doomed = start_worker(queues="doomed", concurrency=1, name="doomed")
    run = trigger({"callable": "workers.builtins:sleep", "seconds": 120, "queue": "doomed"})
    wait_running(run, "F0001")
    doomed.kill()
    doomed.stop()

    run_cancel(run_id=run.id, by=BY)

    assert_canceled_record(run)
    step = run.steps.get()
    assert (step.state, step.reason) == ("CANCELED", f"canceled by {BY}")


def test_canceling_a_finished_run_is_a_conflict(worker: Process) -> None:
    run = wait_terminal(trigger({"callable": "workers.builtins:noop"}))

    with pytest.raises(StateConflict, match="already ended SUCCEEDED"):
        run_cancel(run_id=run.id, by=BY)
    run.refresh_from_db()
    assert run.state == "SUCCEEDED" and run.canceled_by is None
    assert not AuditEvent.objects.filter(action="cancel").exists()


def test_a_second_cancel_while_winding_down_changes_nothing(worker: Process) -> None:
    run = trigger({"callable": "workers.builtins:busy", "seconds": 120})
    wait_running(run, "F0001")

    run_cancel(run_id=run.id, by=BY)
    run_cancel(run_id=run.id, by="user:edna")

    assert_canceled_record(run)
    assert run.log_lines.filter(message__startswith="run cancelled by").count() == 1


def test_a_sqlite_query_is_interrupted_without_killing_the_worker(worker: Process, tmp_path: Path) -> None:
    ConnectorFactory(name="lite", kind="sqlite", url=f"sqlite:///{tmp_path / 'lite.db'}")
    forever = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT count(*) FROM n"
    run = trigger({"type": "sql_query", "op_kwargs": {"connector": "lite", "sql": forever}})
    wait_running(run, "F0001")

    run_cancel(run_id=run.id, by=BY)

    assert_canceled_record(run)
    assert run.steps.get().state == "CANCELED"
    assert not run.log_lines.filter(message__contains="terminating worker process").exists()


def cancel_while_the_first_step_finishes(run: Run) -> Run:
    """Claim F0001 as a worker would, accept the cancel while it is RUNNING, then end it
    SUCCEEDED: its work had already returned when the cancel came."""
    step = step_claim(step_run_id=run.steps.get(name="F0001").pk, worker="w1")
    assert step is not None
    step_started(step)
    run_cancel(run_id=run.id, by=BY)
    end = logstore.entry("INFO", "step F0001 · SUCCEEDED · 0.0 s", "F0001")
    assert step_finish(step_run=step, state="SUCCEEDED", lines=[end]) is False  # the chain stops here
    return Run.objects.get(pk=run.pk)


@pytest.mark.django_db
def test_a_late_cancel_ends_the_run_succeeded_only_if_it_stopped_nothing() -> None:
    noop = {"callable": "workers.builtins:noop"}
    late = cancel_while_the_first_step_finishes(trigger(noop, {**noop, "enabled": False}))
    stopping = cancel_while_the_first_step_finishes(trigger(noop, noop))  # F0002 never starts

    assert (late.state, late.canceled_by, late.finished_at is not None) == ("SUCCEEDED", BY, True)
    assert list(late.steps.values_list("state", "reason")) == [("SUCCEEDED", ""), ("CANCELED", "skipped: disabled")]
    messages = list(late.log_lines.order_by("seq").values_list("message", flat=True))
    assert messages[-2:] == ["step F0001 · SUCCEEDED · 0.0 s", f"cancel by {BY} arrived after the last step finished"]
    assert AuditEvent.objects.filter(action="cancel", object_id=late.id, actor=BY).count() == 1
    assert (stopping.state, stopping.canceled_by) == ("CANCELED", BY)
    assert list(stopping.steps.values_list("state", "reason")) == [
        ("SUCCEEDED", ""),
        ("CANCELED", f"canceled by {BY}"),
    ]
    assert stopping.log_lines.order_by("-seq").first().message == f"run cancelled by {BY}"

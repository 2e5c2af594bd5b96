"""A database restart under a live worker: what ending its PostgreSQL sessions does.

Workers keep their connections from step to step, so a restart only shows at their next
query. Before workers.runtime.on_live_connection, the first step a worker took after one
failed to start (its message already taken: the run stalled for NOMAFLOW_STALL_S), and a
step running through one could never record its end (failed later as `worker lost`).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.db import connection

from runs.models import Run
from runs.services import run_trigger
from tests import processes
from tests.factories import make_job

APP_NAME = "nomaflow-test-restart"  # names this worker's database sessions

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def restart_worker(django_db_setup: None) -> Iterator[processes.Process]:
    """A worker of its own on a queue of its own, so only its sessions are ended."""
    worker = processes.start_worker(
        queues="restart", name="restart-worker",
        DATABASE_URL=f"{processes.test_env()['DATABASE_URL']}?application_name={APP_NAME}",
    )  # fmt: skip
    yield worker
    worker.stop()


def end_worker_sessions() -> int:
    """What a PostgreSQL restart does to the worker: its sessions end under it."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s", [APP_NAME])
        return len(cursor.fetchall())


def run_of(job_id: str) -> Run:
    return run_trigger(job_id=job_id, triggered_by="api")[0]


def test_a_worker_whose_sessions_ended_runs_its_next_steps(restart_worker: processes.Process) -> None:
    make_job({"callable": "workers.builtins:noop", "queue": "restart"}, id="before")
    make_job(*[{"callable": "workers.builtins:echo", "message": "hi", "queue": "restart"}] * 3, id="after")
    assert processes.wait_terminal(run_of("before")).state == "SUCCEEDED"  # the worker now holds sessions

    assert end_worker_sessions() > 0

    run = processes.wait_terminal(run_of("after"), timeout=20)
    assert run.state == "SUCCEEDED", list(run.steps.values_list("name", "state", "error"))
    assert "retrying once" in restart_worker.output()


def test_a_step_running_when_its_sessions_end_still_records_its_end(restart_worker: processes.Process) -> None:
    make_job(
        {"callable": "workers.builtins:sleep", "seconds": 1.5, "queue": "restart"},
        {"callable": "workers.builtins:echo", "message": "after the restart", "queue": "restart"},
        id="through",
    )
    run = run_of("through")
    processes.wait_for(lambda: run.steps.filter(state="RUNNING").exists(), 20, what="the first step to start")

    assert end_worker_sessions() > 0

    run = processes.wait_terminal(run, timeout=20)
    assert run.state == "SUCCEEDED", list(run.steps.values_list("name", "state", "error"))
    assert run.log_lines.filter(message="after the restart").exists()

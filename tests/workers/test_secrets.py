"""On the worker: `${NAME}` resolves only secret references, never nomaflow's own database,
and every value it resolves is hidden in the step's log lines, error and traceback."""

from __future__ import annotations

import json
import os

import pytest
from django.conf import settings
from django.contrib.auth.models import User

from runs.models import Run
from runs.services import run_trigger
from tests.factories import ConnectorFactory, make_job
from tests.http_server import LocalServer
from tests.processes import Process, wait_terminal

# The session's worker inherits os.environ when it starts, after collection.
DB_VAR, DB_SECRET = "NOMAFLOW_SECRET_TEST_DBNAME", "canary-db-5e1f9a"
PATH_VAR, PATH_SECRET = "NOMAFLOW_SECRET_TEST_PATH", "canary-path-77c2d0"
os.environ.setdefault(DB_VAR, DB_SECRET)
os.environ.setdefault(PATH_VAR, PATH_SECRET)
ESCALATE = "UPDATE auth_user SET is_superuser = true"


def run_steps(*steps: dict, log_level: str = "INFO") -> Run:
    job = make_job(*steps, log_level=log_level)
    return wait_terminal(run_trigger(job_id=job.id, triggered_by="api")[0], timeout=60)


def recorded(run: Run) -> str:
    """Everything the run left that a viewer can read: log lines, errors, tracebacks."""
    lines = list(run.log_lines.order_by("seq").values_list("message", flat=True))
    return json.dumps([lines, list(run.steps.values_list("error", "traceback"))])


@pytest.mark.parametrize("url", ["${DATABASE_URL}", "postgresql://postgres:${SECRET_KEY}@127.0.0.1/postgres"])
def test_a_row_with_a_settings_reference_fails_on_the_worker_without_connecting(
    worker: Process, editor: User, url: str
) -> None:
    ConnectorFactory(name="own", kind="postgres", url=url)  # as an admin could write it before the rule
    run = run_steps({"type": "sql_query", "op_kwargs": {"connector": "own", "sql": ESCALATE}})

    assert run.state == "FAILED"
    error = run.steps.get().error
    assert error.startswith('PermissionError: connector "own": ${')
    assert "is one of nomaflow's own settings and is never resolved" in error
    assert not User.objects.filter(is_superuser=True).exists()


def test_a_literal_url_to_nomaflows_own_database_fails_on_the_worker(worker: Process, editor: User) -> None:
    own = settings.DATABASES["default"]
    ConnectorFactory(
        name="own", kind="postgres", url=f"postgresql://{own['USER']}@localhost:{own['PORT']}/{own['NAME']}"
    )
    run = run_steps({"type": "sql_query", "op_kwargs": {"connector": "own", "sql": ESCALATE}})

    assert run.state == "FAILED"
    assert "is nomaflow's own database, which no step may use" in run.steps.get().error
    assert not User.objects.filter(is_superuser=True).exists()


def test_a_resolved_secret_is_hidden_in_a_sql_steps_error_traceback_and_log(worker: Process) -> None:
    own = settings.DATABASES["default"]
    # The server names the database it cannot find: the resolved secret, in the driver's error.
    ConnectorFactory(
        name="dw", kind="postgres", url=f"postgresql://{own['USER']}@127.0.0.1:{own['PORT']}/${{{DB_VAR}}}"
    )
    run = run_steps({"type": "sql_query", "op_kwargs": {"connector": "dw", "sql": "SELECT 1"}}, log_level="DEBUG")

    assert run.state == "FAILED"
    step = run.steps.get()
    assert 'database "***" does not exist' in step.error
    assert 'database "***" does not exist' in step.traceback
    assert DB_SECRET not in recorded(run)


def test_a_secret_in_an_http_connectors_url_path_shows_as_the_mask(worker: Process, server: LocalServer) -> None:
    ConnectorFactory(name="hook", kind="http", url=f"{server.base}/api/echo/${{{PATH_VAR}}}")
    run = run_steps({"type": "http", "op_kwargs": {"connector": "hook"}}, log_level="DEBUG")

    assert run.state == "SUCCEEDED", run.steps.get().error
    assert server.requests[-1]["path"] == f"/api/echo/{PATH_SECRET}"  # the secret went to its destination
    lines = list(run.log_lines.values_list("message", flat=True))
    assert any(line.startswith(f"GET {server.base}/api/echo/*** → 200") for line in lines), lines
    assert any(line.startswith("body:") and "/api/echo/***" in line for line in lines)  # the echoed request
    assert PATH_SECRET not in recorded(run)

"""Flower, unchanged, against nomaflow's workers (README, "Flower"): it lists a live worker
through Celery's inspect, and follows a step's task through the events it turns on in the workers."""

from __future__ import annotations

import secrets
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from runs.services import run_trigger
from tests import processes  # its test_env(), imported by name, would be collected as a test
from tests.factories import make_job
from tests.processes import Process, free_port, start_worker, wait_for, wait_terminal

QUEUE = "flower"


@pytest.fixture
def flower() -> Iterator[tuple[str, tuple[str, str]]]:
    """Flower on a free port with basic auth, as the README runs it; yields (URL, credentials)."""
    port = free_port()
    credentials = ("ops", secrets.token_urlsafe(12))
    args = [sys.executable, "-m", "celery", "-A", "nomaflow", "flower", "--address=127.0.0.1", f"--port={port}"]
    process = Process(args, processes.test_env(FLOWER_BASIC_AUTH=":".join(credentials)), "flower")
    try:
        process.wait_for_output("Visit me at")
        yield f"http://127.0.0.1:{port}", credentials
    finally:
        process.stop()


def _get(flower: tuple[str, tuple[str, str]], path: str) -> Any:
    url, credentials = flower
    response = requests.get(url + path, auth=credentials, timeout=10)
    response.raise_for_status()
    return response.json()


def test_flower_lists_the_worker_and_follows_a_steps_task(
    transactional_db: None, flower: tuple[str, tuple[str, str]]
) -> None:
    worker = start_worker(queues=QUEUE, concurrency=1, name="flowered")
    try:
        workers = wait_for(lambda: _get(flower, "/api/workers?refresh=1"), what="Flower to list a worker")
        [name] = [name for name in workers if name.startswith("flowered-")]
        assert QUEUE in [queue["name"] for queue in workers[name]["active_queues"]]
        worker.wait_for_output("Events of group {task} enabled by remote.")  # Flower asked for them

        job = make_job({"callable": "workers.builtins:noop", "queue": QUEUE})
        run, _ = run_trigger(job_id=job.id, triggered_by="cli")
        assert wait_terminal(run).state == "SUCCEEDED"
        step_run = run.steps.get()

        def step_task() -> dict[str, Any] | None:
            tasks = _get(flower, "/api/tasks?taskname=workers.execute_step").values()
            return next((task for task in tasks if task["state"] == "SUCCESS" and task["worker"] == name), None)

        task = wait_for(step_task, what="Flower to see the step's task succeed")
        assert task["uuid"] == step_run.task_id
        assert task["args"] == f"({step_run.pk},)"  # ids only: nothing of the step's parameters
    finally:
        worker.stop()


def test_flower_refuses_the_api_without_its_credentials(flower: tuple[str, tuple[str, str]]) -> None:
    url, _ = flower
    assert requests.get(url + "/api/workers", timeout=10).status_code == 401

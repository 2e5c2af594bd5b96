"""Scraping real processes after known runs: a prefork Celery worker of the test's own (two
pool processes, on a queue of its own) serves the sum of its processes' metrics on its port,
daphne serves the web's on /metrics, the scheduler its own; every count is exact.
(Who may read them is tests/test_metrics.py; /readyz with Redis stopped is test_health.py.)"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest
import requests
from django.contrib.auth.models import User
from prometheus_client.parser import text_string_to_metric_families

from accounts.tokens import issue_token
from runs.models import LogLine, Run, StepRun
from tests.factories import make_job
from tests.processes import Process, free_port, start_daphne, start_scheduler, start_worker, wait_for, wait_terminal

NOOP = {"callable": "workers.builtins:noop"}
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(url: str, **headers: str) -> Samples:
    response = requests.get(url, headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def scraped_once(url: str, name: str, **labels: str) -> Samples:
    """The first scrape of `url` where the sample `name` with `labels` is 1."""

    def once() -> Samples | None:
        samples = scrape(url)
        return samples if value(samples, name, **labels) == 1 else None

    return wait_for(once, what=f"{name} to be 1 at {url}")


def trigger(base: str, job_id: str, headers: dict[str, str]) -> Run:
    response = requests.post(f"{base}/api/v1/jobs/{job_id}/runs/", json={}, headers=headers, timeout=10)
    assert response.status_code == 201, response.text
    return Run.objects.get(pk=response.json()["id"])


def step_lines(runs: Iterable[Run]) -> int:
    """Lines of the runs' steps: every one stored by the worker (run-level lines are not steps')."""
    return LogLine.objects.filter(run__in=list(runs)).exclude(step="").count()


@pytest.fixture
def metrics_worker(transactional_db: None, tmp_path: Path) -> Iterator[tuple[Process, int, str, Path]]:
    queue = f"metrics-{os.getpid()}"
    directory = tmp_path / "prometheus"
    directory.mkdir()
    (directory / "counter_1.db").write_bytes(b"left by an earlier run")
    port = free_port()
    worker = start_worker(
        queues=queue, concurrency=2, name="metrics", NOMAFLOW_METRICS_PORT=str(port),
        PROMETHEUS_MULTIPROC_DIR=str(directory),
    )  # fmt: skip
    yield worker, port, queue, directory
    worker.stop()


def test_counters_and_histogram_counts_are_exact_after_known_runs(
    metrics_worker: tuple[Process, int, str, Path], operator: User
) -> None:
    worker, worker_port, queue, directory = metrics_worker
    assert not (directory / "counter_1.db").exists()  # an earlier run's counts are not added to this one's
    two_steps = make_job({**NOOP, "queue": queue}, {**NOOP, "queue": queue})
    sleeper = make_job({"callable": "workers.builtins:sleep", "seconds": 60, "queue": queue})
    web_port = free_port()
    web = start_daphne(web_port)
    base, headers = f"http://127.0.0.1:{web_port}", {"Authorization": f"Token {issue_token(operator)}"}
    try:
        runs = [wait_terminal(trigger(base, two_steps.id, headers)) for _ in range(3)]
        assert [run.state for run in runs] == ["SUCCEEDED"] * 3

        canceled = trigger(base, sleeper.id, headers)
        wait_for(lambda: StepRun.objects.filter(run=canceled, state="RUNNING").exists(), what="the sleep to start")
        cancel = requests.post(f"{base}/api/v1/runs/{canceled.id}/cancel/", headers=headers, timeout=10)
        assert cancel.status_code == 202
        assert wait_terminal(canceled).state == "CANCELED"

        # A run's end is recorded just after its commit, which the test may see first; the
        # canceled run's is the last. The web's inspect broadcast may miss a busy worker once.
        at_worker = scraped_once(f"http://127.0.0.1:{worker_port}/metrics", "nomaflow_cancel_latency_seconds_count",
                                 job=sleeper.id)  # fmt: skip
        at_web = scraped_once(f"{base}/metrics", "nomaflow_queue_workers", queue=queue)
    finally:
        web.stop()

    job, sleep_job = two_steps.id, sleeper.id
    # The worker: the sum of its two pool processes.
    assert value(at_worker, "nomaflow_runs_started_total", job=job) == 3
    assert value(at_worker, "nomaflow_runs_finished_total", job=job, state="SUCCEEDED") == 3
    assert value(at_worker, "nomaflow_run_duration_seconds_count", job=job, state="SUCCEEDED") == 3
    assert value(at_worker, "nomaflow_steps_finished_total", job=job, type="python", state="SUCCEEDED") == 6
    assert value(at_worker, "nomaflow_step_duration_seconds_count", job=job, type="python", state="SUCCEEDED") == 6
    assert value(at_worker, "nomaflow_step_queued_seconds_count", job=job, queue=queue) == 6
    assert value(at_worker, "nomaflow_step_queued_seconds_count", job=sleep_job, queue=queue) == 1
    assert value(at_worker, "nomaflow_runs_finished_total", job=sleep_job, state="CANCELED") == 1
    assert value(at_worker, "nomaflow_steps_finished_total", job=sleep_job, type="python", state="CANCELED") == 1
    assert value(at_worker, "nomaflow_cancel_latency_seconds_count", job=sleep_job) == 1
    assert 0 < value(at_worker, "nomaflow_cancel_latency_seconds_sum", job=sleep_job) < 30  # type: ignore[operator]
    assert value(at_worker, "nomaflow_log_lines_written_total") == step_lines([*runs, canceled])
    assert value(at_worker, "nomaflow_steps_worker_lost_total", job=job, type="python") is None
    assert value(at_worker, "nomaflow_runs_triggered_total", job=job, trigger="api") is None  # the web's

    # The web: its triggers, and the fleet as Celery tells it.
    assert value(at_web, "nomaflow_runs_triggered_total", job=job, trigger="api") == 3
    assert value(at_web, "nomaflow_runs_triggered_total", job=sleep_job, trigger="api") == 1
    assert value(at_web, "nomaflow_runs_finished_total", job=job, state="SUCCEEDED") is None  # the worker's
    assert value(at_web, "nomaflow_queue_workers", queue=queue) == 1
    assert value(at_web, "nomaflow_queue_depth", queue=queue) == 0
    assert value(at_web, "nomaflow_workers_up") >= 1  # type: ignore[operator]


def test_the_worker_port_refuses_a_wrong_token(metrics_worker: tuple[Process, int, str, Path]) -> None:
    _, port, _, _ = metrics_worker
    response = requests.get(f"http://127.0.0.1:{port}/metrics", headers={"Authorization": "Bearer nope"}, timeout=10)
    assert response.status_code == 401
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert "nomaflow_" not in response.text


def test_the_scheduler_serves_its_leader_gauge(transactional_db: None) -> None:
    port = free_port()
    scheduler = start_scheduler(NOMAFLOW_SCHEDULER_TICK_S="0.2", NOMAFLOW_METRICS_PORT=str(port))
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        wait_for(lambda: value(scrape(url), "nomaflow_scheduler_leader") == 1, what="the scheduler to lead")
    finally:
        scheduler.stop()

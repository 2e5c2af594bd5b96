"""Health checks against real processes: /readyz of a real daphne follows a Redis server of
the test's own going down and up again, and names a database it cannot reach without its
password; `manage.py healthcheck worker|scheduler` exits 0 or 1 on a real worker and a
real scheduler (nomaflow/health.py, workers/management/commands/healthcheck.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import requests

from tests import processes  # its test_env(), imported by name, would be collected as a test
from tests.processes import ROOT, Process, free_port, start_daphne, start_scheduler, wait_for

ALL_OK = {"database": "ok", "redis": "ok", "migrations": "ok"}
# Tests ask for `db` only so that the session creates the test database the processes use;
# they write nothing.


def start_redis(port: int) -> Process:
    """A Redis server of the test's own, with nothing kept on disk."""
    args = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    server = Process(args, dict(os.environ), "redis")
    server.wait_for_output("Ready to accept connections")
    return server


def readyz(base: str) -> tuple[int, dict[str, Any], str]:
    response = requests.get(f"{base}/readyz", timeout=10)
    return response.status_code, response.json(), response.text


def healthcheck(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`manage.py healthcheck …` as a probe runs it: its exit code and its one line."""
    return subprocess.run(
        [sys.executable, "manage.py", "healthcheck", *args],
        cwd=ROOT, env=processes.test_env(**env), capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_readyz_is_503_naming_redis_while_it_is_stopped_and_200_after(db: None) -> None:
    redis_port = free_port()
    redis_server = start_redis(redis_port)
    web_port = free_port()
    web = start_daphne(web_port, REDIS_URL=f"redis://127.0.0.1:{redis_port}/0")
    base = f"http://127.0.0.1:{web_port}"
    try:
        assert readyz(base)[:2] == (200, {"status": "ok", "checks": ALL_OK})

        redis_server.stop()
        status, body, _ = wait_for(lambda: (got := readyz(base))[0] == 503 and got, what="/readyz to answer 503")
        assert body["status"] == "unavailable"
        assert body["checks"]["redis"].startswith("unreachable: ")
        assert body["checks"]["database"] == "ok"
        assert requests.get(f"{base}/livez", timeout=10).status_code == 200  # the process itself is fine

        redis_server = start_redis(redis_port)  # the same port: the web process's URL again
        wait_for(lambda: readyz(base)[0] == 200, what="/readyz to answer 200 again")
    finally:
        web.stop()
        redis_server.stop()


def test_readyz_names_an_unreachable_database_without_its_password(db: None) -> None:
    port = free_port()
    closed = free_port()  # nothing listens there
    web = start_daphne(
        port, DATABASE_URL=f"postgresql://nomaflow:hunter2@127.0.0.1:{closed}/nomaflow", NOMAFLOW_DB_POOL_TIMEOUT_S="1"
    )
    try:
        status, body, text = readyz(f"http://127.0.0.1:{port}")
    finally:
        web.stop()
    assert status == 503
    assert body["checks"]["database"] == "unreachable: OperationalError (PoolTimeout)"  # a pooled web process
    assert body["checks"]["migrations"] == "not checked: no database"
    assert body["checks"]["redis"] == "ok"
    assert "hunter2" not in text and str(closed) not in text


def test_healthcheck_worker_finds_this_hosts_worker(celery_worker_process: Process, db: None) -> None:
    done = healthcheck("worker")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("worker ok: ") and "answered a ping" in done.stdout

    # The session's worker by name, as started: `-n worker-<pid>@%h`.
    done = healthcheck("worker", "--node", f"worker-{os.getpid()}@%h")
    assert done.returncode == 0, done.stdout + done.stderr


def test_healthcheck_worker_fails_for_a_node_that_does_not_answer(celery_worker_process: Process, db: None) -> None:
    done = healthcheck("worker", "--node", "nobody@nowhere", "--timeout", "1")
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "worker unhealthy: no worker nobody@nowhere answered a ping within 1 s (is it running, is the broker up?)"
    )


def test_healthcheck_scheduler_is_ok_while_it_ticks_and_fails_once_its_beat_is_stale(
    transactional_db: None, tmp_path: Path
) -> None:
    heartbeat = {"NOMAFLOW_SCHEDULER_HEARTBEAT_FILE": str(tmp_path / "heartbeat"),
                 "NOMAFLOW_SCHEDULER_TICK_S": "0.2", "NOMAFLOW_SCHEDULER_HEARTBEAT_MAX_AGE_S": "1"}  # fmt: skip
    assert healthcheck("scheduler", **heartbeat).returncode == 1  # not started yet: no beat
    scheduler = start_scheduler(**heartbeat)
    try:
        done = wait_for(lambda: (got := healthcheck("scheduler", **heartbeat)).returncode == 0 and got)
        assert done.stdout.startswith("scheduler ok: last round ")
        assert done.stdout.rstrip().endswith(("as leader", "as follower"))  # a follower is healthy too
    finally:
        scheduler.stop()

    done = wait_for(lambda: (got := healthcheck("scheduler", **heartbeat)).returncode == 1 and got)
    assert "(over NOMAFLOW_SCHEDULER_HEARTBEAT_MAX_AGE_S=1)" in done.stderr

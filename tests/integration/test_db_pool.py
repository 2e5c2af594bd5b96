"""The web process's bounded PostgreSQL connections (settings.py, NOMAFLOW_DB_POOL_*), through
a real daphne: however many requests arrive at once it holds at most the pool's size, and a
request that finds every connection busy waits, then answers 503 in the API's error shape."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest
import requests
from django.conf import settings
from django.contrib.auth.models import User

from accounts.tokens import issue_token
from tests.factories import make_job
from tests.processes import free_port, start_daphne

POOL = 2
APP = "nomaflow-pool-test"  # libpq's PGAPPNAME: tells the web process's sessions apart
QUEUE = "pool-test"  # no worker listens: the runs stay queued


@pytest.fixture
def web(transactional_db: None) -> Iterator[str]:
    port = free_port()
    process = start_daphne(port, NOMAFLOW_DB_POOL_MAX_SIZE=str(POOL), NOMAFLOW_DB_POOL_TIMEOUT_S="1", PGAPPNAME=APP)
    yield f"http://127.0.0.1:{port}"
    process.stop()


@pytest.fixture
def headers(operator: User) -> dict[str, str]:
    return {"Authorization": f"Token {issue_token(operator)}"}


def database() -> psycopg.Connection[Any]:
    db = settings.DATABASES["default"]
    return psycopg.connect(f"postgresql://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}", autocommit=True)


def web_sessions(conn: psycopg.Connection[Any], *, waiting_for_a_lock: bool = False) -> int:
    sql = "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s"
    if waiting_for_a_lock:
        sql += " AND wait_event_type = 'Lock'"
    row = conn.execute(sql, [APP]).fetchone()
    return int(row[0]) if row else 0


def test_many_requests_at_once_share_the_pool(web: str, headers: dict[str, str]) -> None:
    most, sampling = 0, True

    def sample() -> None:
        nonlocal most
        with database() as conn:
            while sampling:
                most = max(most, web_sessions(conn))
                time.sleep(0.01)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    with ThreadPoolExecutor(16) as clients:
        answers = list(
            clients.map(lambda _: requests.get(f"{web}/api/v1/jobs/", headers=headers, timeout=30), range(160))
        )
    sampling = False
    sampler.join(5)

    assert {a.status_code for a in answers} == {200}
    assert 1 <= most <= POOL


def test_a_request_that_finds_every_connection_busy_answers_503(web: str, headers: dict[str, str]) -> None:
    job = make_job({"callable": "workers.builtins:noop", "queue": QUEUE})
    with database() as holder, ThreadPoolExecutor(POOL) as clients:
        holder.execute("BEGIN")
        holder.execute("SELECT 1 FROM jobs_job WHERE id = %s FOR UPDATE", [job.id])  # triggers wait for it
        trigger = f"{web}/api/v1/jobs/{job.id}/runs/"
        triggers = [clients.submit(requests.post, trigger, json={}, headers=headers, timeout=30) for _ in range(POOL)]
        deadline = time.monotonic() + 10
        while web_sessions(holder, waiting_for_a_lock=True) < POOL and time.monotonic() < deadline:
            time.sleep(0.02)

        # Each trigger now holds a pooled connection, waiting for the job's row.
        busy = requests.get(f"{web}/api/v1/jobs/", headers=headers, timeout=30)
        holder.execute("COMMIT")
        triggered = [t.result() for t in triggers]

    assert busy.status_code == 503
    assert busy.headers["Content-Type"] == "application/json"
    assert busy.headers["Retry-After"] == "1"
    assert "NOMAFLOW_DB_POOL_MAX_SIZE=2" in busy.json()["detail"] and busy.json()["errors"] == {}
    assert [t.status_code for t in triggered] == [201] * POOL  # the waiting requests lost nothing
    assert requests.get(f"{web}/api/v1/jobs/", headers=headers, timeout=30).status_code == 200


def test_the_web_entry_point_keeps_its_pool_switch_to_itself() -> None:
    """nomaflow/asgi.py turns the pool on for the web process only: a process started after it
    was imported (a test's worker, a Celery pool child) must not inherit the switch."""
    import nomaflow.asgi  # noqa: F401

    assert "NOMAFLOW_DB_POOL" not in os.environ

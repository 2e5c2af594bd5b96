"""The bare Celery baseline: a minimal app with nomaflow's Celery settings and broker,
served on its own queue (`baseline`) by a worker with the same pool settings.

- `bench.ping` records when it started (for dispatch latency).
- `bench.bare_step` does by hand, with psycopg, the database writes nomaflow's engine
  makes for one step: claim UPDATE, seq allocation + insert of 2 log lines, finish UPDATE;
  the first step of a run also marks the run RUNNING and the last one SUCCEEDED, when the
  caller says which they are (bench/fleet.py: runs of a few steps, where those count).
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime

import psycopg
import redis
from celery import Celery

app = Celery("bench_baseline", broker=os.environ["REDIS_URL"])
app.conf.update(
    # The same choices as nomaflow/settings.py, so only the work inside the task differs.
    task_serializer="json",
    accept_content=["json"],
    task_ignore_result=True,
    task_acks_late=False,
    task_reject_on_worker_lost=False,
    worker_prefetch_multiplier=1,
    task_default_queue="baseline",
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)

_clients: dict[str, object] = {}  # one Redis client and one database connection per pool process


def redis_client() -> redis.Redis:
    if "redis" not in _clients:
        _clients["redis"] = redis.Redis.from_url(os.environ["REDIS_URL"])
    return _clients["redis"]  # type: ignore[return-value]


def _db() -> psycopg.Connection:
    # Persistent, like Django's CONN_MAX_AGE in the nomaflow worker.
    if "db" not in _clients:
        _clients["db"] = psycopg.connect(os.environ["DATABASE_URL"], autocommit=True)
    return _clients["db"]  # type: ignore[return-value]


@app.task(name="bench.ping")
def ping(key: str) -> None:
    """Push this task's start time (epoch seconds) onto the Redis list `key`."""
    started = time.time()
    redis_client().rpush(key, repr(started))


@app.task(name="bench.bare_step")
def bare_step(step_run_id: int, worker: str = "bare", starts_run: bool = False, ends_run: bool = False) -> None:
    """Claim step `step_run_id`, store its start and end log lines, mark it SUCCEEDED; with
    `starts_run` / `ends_run` also move its run QUEUED → RUNNING / RUNNING → SUCCEEDED."""
    db = _db()
    now = datetime.now(UTC)
    row = db.execute(
        "UPDATE runs_steprun SET state = 'RUNNING', started_at = %s, heartbeat_at = %s, worker = %s,"
        " attempts = attempts + 1 WHERE id = %s AND state = 'PENDING' RETURNING run_id, name",
        [now, now, worker, step_run_id],
    ).fetchone()
    if row is None:
        return
    run_id, name = row
    if starts_run:
        db.execute(
            "UPDATE runs_run SET state = 'RUNNING', started_at = %s WHERE id = %s AND state = 'QUEUED'", [now, run_id]
        )
    _store_lines(db, run_id, name, [f"step {name} · type=python", f"step {name} · SUCCEEDED · 0.0 s"])
    db.execute(
        "UPDATE runs_steprun SET state = 'SUCCEEDED', finished_at = %s WHERE id = %s AND state = 'RUNNING'",
        [datetime.now(UTC), step_run_id],
    )
    if ends_run:
        db.execute(
            "UPDATE runs_run SET state = 'SUCCEEDED', finished_at = %s WHERE id = %s AND state = 'RUNNING'",
            [datetime.now(UTC), run_id],
        )


def _store_lines(db: psycopg.Connection, run_id: str, step: str, messages: list[str]) -> None:
    with db.transaction():
        (last_seq,) = db.execute(
            "UPDATE runs_run SET last_seq = last_seq + %s WHERE id = %s RETURNING last_seq", [len(messages), run_id]
        ).fetchone()  # type: ignore[misc]
        first, now = last_seq - len(messages) + 1, datetime.now(UTC)
        with db.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO runs_logline (run_id, seq, ts, level, step, message) VALUES (%s, %s, %s, 'INFO', %s, %s)",
                [(run_id, first + i, now, step, message) for i, message in enumerate(messages)],
            )

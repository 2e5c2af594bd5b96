"""What every benchmark shares: a fresh database and Redis DB, real worker processes,
polling with a deadline, percentiles, the results table and JSON file."""

from __future__ import annotations

import json
import math
import os
import secrets
import statistics
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import django
import psycopg
import redis
from django.core.management import call_command

from tests import processes
from tests.processes import Process

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
PG = "postgresql://postgres@127.0.0.1:5432"
REDIS = "redis://127.0.0.1:6379"


def bench_env(db_name: str, redis_db: int) -> dict[str, str]:
    """The environment shared by this process and every worker it starts."""
    env = dict(os.environ)
    # DEBUG is off (it would keep every query in memory), so the settings want a key.
    env.setdefault("SECRET_KEY", secrets.token_urlsafe(50))
    env.update(
        DATABASE_URL=f"{PG}/{db_name}",
        REDIS_URL=f"{REDIS}/{redis_db}",
        DJANGO_SETTINGS_MODULE="nomaflow.settings",
        PYTHONUNBUFFERED="1",
        PYTHONPATH=str(ROOT),
    )
    return env


def configure(db_name: str, redis_db: int) -> dict[str, str]:
    """Point this process (and, through the returned env, its workers) at the bench
    database and Redis DB, and set Django up. Call before importing any model."""
    env = bench_env(db_name, redis_db)
    os.environ.update(env)
    django.setup()  # settings read DATABASE_URL now, once; nothing connects yet
    return env


def reset(env: dict[str, str]) -> None:
    """Drop and recreate the database, migrate it, flush the Redis DB."""
    db_name = env["DATABASE_URL"].rsplit("/", 1)[1]
    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{db_name}"')
    call_command("migrate", verbosity=0)
    redis.Redis.from_url(env["REDIS_URL"]).flushdb()


def medians(samples: dict[str, list[dict[str, float]]], keys: tuple[str, ...]) -> dict[str, dict[str, float]]:
    """{side: {key: median over that side's samples}}."""
    return {name: {k: statistics.median(s[k] for s in runs) for k in keys} for name, runs in samples.items()}


def wait_for(predicate: Callable[[], Any], timeout: float = 60.0, interval: float = 0.005, what: str = "") -> Any:
    """tests.processes.wait_for, polling faster: a benchmark waits on short things."""
    return processes.wait_for(predicate, timeout, interval, what)


def worker_args(app: str, queue: str, name: str) -> list[str]:
    """One prefork child, no mingle/gossip/heartbeat: identical for nomaflow and the baseline."""
    return [
        sys.executable, "-m", "celery", "-A", app, "worker", "-Q", queue, "-c", "1", "-P", "prefork",
        "-n", f"{name}-{os.getpid()}@%h", "--without-mingle", "--without-gossip", "--without-heartbeat",
        "-l", "info",
    ]  # fmt: skip


@contextmanager
def workers(env: dict[str, str], count: int = 1) -> Iterator[list[Process]]:
    """`count` nomaflow workers (queue `default`) and as many baseline workers (queue
    `baseline`), ready; they are stopped on the way out."""
    with ExitStack() as stack:
        started = []
        for index in range(1, count + 1):
            for app, queue, kind in (("nomaflow", "default", "nomaflow"), ("bench.baseline_app", "baseline", "bare")):
                name = kind if count == 1 else f"{kind}{index}"  # node names must differ
                process = Process(worker_args(app, queue, name), env, name)
                stack.callback(process.stop)
                started.append(process)
        for process in started:
            process.wait_for_output("ready.")
        yield started


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def print_table(headers: list[str], rows: list[list[Any]]) -> None:
    cells = [headers] + [[f"{c:.2f}" if isinstance(c, float) else str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for index, row in enumerate(cells):
        print(
            "  ".join(
                cell.rjust(width) if i else cell.ljust(width)
                for i, (cell, width) in enumerate(zip(row, widths, strict=True))
            )
        )
        if index == 0:
            print("  ".join("-" * width for width in widths))


def write_results(name: str, data: dict[str, Any]) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path


def verdict(ok: bool) -> str:
    """How a benchmark's line says whether it met its target."""
    return "meets" if ok else "MISSES"

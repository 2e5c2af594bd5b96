"""Retention: purge 1,000,000 log lines across 10,000 runs while the API is being read.

Seeds --runs finished runs (one step run each) with --lines log lines in all, finished
100 days ago, plus --recent runs that stay, all with COPY. Then, against a real daphne:

1. idle: two clients (threads, keep-alive) read the API for --idle-s seconds, one
   `GET /api/v1/runs/?page_size=50`, the other `GET /api/v1/runs/<recent>/logs/?after=…&limit=200`
   of a recent run; p50 / p99 of every request.
2. purge: the built-in `housekeeping` job is triggered and runs on a real worker (the
   production path: runs.retention in batches of 500 runs / 10,000 log lines, each its
   own transaction) while the same clients keep reading; p50 / p99 during the purge.
   Purge rate = rows (log lines + step runs + runs) / (step started_at → finished_at).

Target: p99 during the purge ≤ 2 × p99 idle. Also checked: exactly the old runs are gone.

    python bench/retention.py [--runs 10000] [--lines 1000000] [--recent 1000] [--idle-s 15]
"""

from __future__ import annotations

import argparse
import io
import logging
import random
import statistics
import sys
import threading
import time
from contextlib import ExitStack
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as `python bench/retention.py`

from bench import common  # noqa: E402

DB_NAME, REDIS_DB = "nomaflow_bench_retention", 9
ENV = common.configure(DB_NAME, REDIS_DB)  # before the model imports below

import httpx  # noqa: E402
import psycopg  # noqa: E402
from django.contrib.auth.models import User  # noqa: E402
from django.db import connection  # noqa: E402
from django.utils import timezone  # noqa: E402

from accounts.tokens import issue_token  # noqa: E402
from jobs.models import Job, Step  # noqa: E402
from runs.ids import new_run_id  # noqa: E402
from runs.models import LogLine, Run, StepRun  # noqa: E402
from runs.retention import HOUSEKEEPING_JOB_ID  # noqa: E402
from runs.services import run_trigger  # noqa: E402
from tests.processes import Process, free_port, wait_terminal  # noqa: E402

logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per request otherwise

P99_TARGET_FACTOR = 2.0
WARMUP_S = 3.0
RECENT_LINES = 100  # per recent run
MESSAGE = "x" * 72  # with its `line n ` prefix, ~80 characters like bench/logs.py


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--recent", type=int, default=1_000)
    parser.add_argument("--idle-s", type=float, default=15.0)
    args = parser.parse_args()
    common.reset(ENV)
    token = issue_token(User.objects.create_superuser("bench", password="bench"))
    seeded = seed(args.runs, args.lines, args.recent)
    with ExitStack() as stack:
        base = start_processes(stack)
        hammer(base, token, seeded["recent_ids"], stop_after=WARMUP_S)  # imports, connections, caches
        idle = hammer(base, token, seeded["recent_ids"], stop_after=args.idle_s)
        purge, during = purge_while_hammered(base, token, seeded["recent_ids"])
    check(args, seeded)
    report(args, seeded, idle, during, purge)


def start_processes(stack: ExitStack) -> str:
    """A nomaflow worker and daphne, both ready."""
    worker = Process(common.worker_args("nomaflow", "default", "nomaflow"), ENV, "nomaflow")
    stack.callback(worker.stop)
    port = free_port()
    args = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "nomaflow.asgi:application"]
    web = Process(args, ENV, "daphne")
    stack.callback(web.stop)
    web.wait_for_output("Listening on TCP address")
    worker.wait_for_output("ready.")
    return f"http://127.0.0.1:{port}"


def seed(old_runs: int, old_lines: int, recent_runs: int) -> dict[str, Any]:
    """Old runs (past a 90-day retention) first, so their ids sort before the recent ones."""
    job = Job.objects.create(id="bench-retention", name="bench retention")
    noop = {"callable": "workers.builtins:noop"}
    Step.objects.create(job=job, position=1, name="F0001", type="python", op_kwargs=noop)
    now = timezone.now()
    per_run = [old_lines // old_runs + (1 if i < old_lines % old_runs else 0) for i in range(old_runs)]
    started = time.perf_counter()
    old = copy_runs(job.id, now - timedelta(days=100), per_run)
    recent = copy_runs(job.id, now - timedelta(days=1), [RECENT_LINES] * recent_runs)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE runs_run; ANALYZE runs_steprun; ANALYZE runs_logline")
    seconds = time.perf_counter() - started
    print(f"seeded {old_runs:,} old runs / {old_lines:,} lines and {recent_runs:,} recent runs in {seconds:.1f} s")
    return {"old_ids": old, "recent_ids": recent, "seed_s": seconds}


def copy_runs(job_id: str, finished: datetime, lines_per_run: list[int]) -> list[str]:
    """Finished runs with one SUCCEEDED step run each and their log lines, by COPY."""
    ids = [new_run_id() for _ in lines_per_run]
    runs, steps, lines = io.StringIO(), io.StringIO(), io.StringIO()
    for run_id, count in zip(ids, lines_per_run, strict=True):
        ts = finished.isoformat()
        runs.write(f"{run_id}\t{job_id}\tSUCCEEDED\tbench\t{ts}\t{ts}\t{ts}\t{ts}\tINFO\t{{}}\t{count}\t\n")
        steps.write(f"{run_id}\t1\tF0001\tpython\tdefault\t0\t0\tSUCCEEDED\t\t1\t{ts}\t{ts}\t\t\tw\t\n")
        for seq in range(1, count + 1):
            lines.write(f"{run_id}\t{seq}\t{ts}\tINFO\tF0001\tline {seq} {MESSAGE}\n")
    with psycopg.connect(ENV["DATABASE_URL"]) as conn:
        for table, columns, data in (
            (Run, RUN_COLUMNS, runs),
            (StepRun, STEP_COLUMNS, steps),
            (LogLine, LINE_COLUMNS, lines),
        ):
            with conn.cursor().copy(f"COPY {table._meta.db_table} ({', '.join(columns)}) FROM STDIN") as copy:
                copy.write(data.getvalue())
    return ids


RUN_COLUMNS = (
    "id", "job_id", "state", "triggered_by", "queued_at", "dispatched_at", "started_at", "finished_at",
    "log_level", "parameters", "last_seq", "request_hash",
)  # fmt: skip
STEP_COLUMNS = (
    "run_id", "position", "name", "type", "queue", "retries", "retry_delay_s", "state", "reason", "attempts",
    "started_at", "finished_at", "error", "traceback", "worker", "task_id",
)  # fmt: skip
LINE_COLUMNS = ("run_id", "seq", "ts", "level", "step", "message")


class Hammer:
    """Two reading clients in threads; latencies in ms, each with the time it was taken."""

    def __init__(self, base: str, token: str, recent_ids: list[str]) -> None:
        self.base, self.token, self.recent_ids = base, token, recent_ids
        self.samples: list[tuple[float, float]] = []
        self.errors: list[str] = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._loop, args=(kind,), daemon=True) for kind in ("runs", "logs")]

    def _loop(self, kind: str) -> None:
        pick = random.Random(kind)
        with httpx.Client(base_url=self.base, headers={"Authorization": f"Token {self.token}"}, timeout=30) as client:
            while not self.stop.is_set():
                if kind == "runs":
                    url = "/api/v1/runs/?page_size=50"
                else:
                    after = pick.randrange(0, RECENT_LINES - 20)
                    url = f"/api/v1/runs/{pick.choice(self.recent_ids)}/logs/?after={after}&limit=200"
                started = time.perf_counter()
                response = client.get(url)
                elapsed_ms = (time.perf_counter() - started) * 1000
                if response.status_code != 200:
                    self.errors.append(f"{url}: {response.status_code}")
                self.samples.append((time.monotonic(), elapsed_ms))

    def __enter__(self) -> Hammer:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join()
        if self.errors:
            raise RuntimeError(f"{len(self.errors)} API errors, first: {self.errors[0]}")


def hammer(base: str, token: str, recent_ids: list[str], *, stop_after: float) -> list[float]:
    with Hammer(base, token, recent_ids) as clients:
        clients.stop.wait(stop_after)  # the measuring window itself, not synchronisation
    return [ms for _, ms in clients.samples]


def purge_while_hammered(base: str, token: str, recent_ids: list[str]) -> tuple[dict[str, Any], list[float]]:
    """Trigger housekeeping on the worker; keep only the samples taken while its step ran."""
    with Hammer(base, token, recent_ids) as clients:
        run, _ = run_trigger(job_id=HOUSEKEEPING_JOB_ID, triggered_by="bench")
        run = wait_terminal(run, timeout=1800)
    if run.state != "SUCCEEDED":
        raise RuntimeError(f"housekeeping run {run.id} ended {run.state}")
    step = run.steps.get()
    wall_now, mono_now = time.time(), time.monotonic()
    window = [mono_now - (wall_now - t.timestamp()) for t in (step.started_at, step.finished_at)]
    during = [ms for at, ms in clients.samples if window[0] <= at <= window[1]]
    summary = run.log_lines.filter(step=step.name, message__startswith="removed ").values_list("message", flat=True)
    return {"seconds": step.duration_s, "log": list(summary), "run": run.id}, during


def check(args: argparse.Namespace, seeded: dict[str, Any]) -> None:
    old = Run.objects.filter(pk__in=seeded["old_ids"]).count()
    recent = Run.objects.filter(pk__in=seeded["recent_ids"]).count()
    lines = LogLine.objects.filter(run_id__in=seeded["recent_ids"]).count()
    if old or recent != args.recent or lines != args.recent * RECENT_LINES:
        raise RuntimeError(f"purge wrong: {old} old runs left, {recent} recent runs and {lines} of their lines kept")


def stats(samples: list[float]) -> dict[str, float]:
    return {
        "requests": len(samples),
        "p50_ms": statistics.median(samples),
        "p99_ms": common.percentile(samples, 99),
        "max_ms": max(samples),
    }


def report(
    args: argparse.Namespace, seeded: dict[str, Any], idle: list[float], during: list[float], purge: dict[str, Any]
) -> None:
    rows_removed = args.lines + 2 * args.runs  # log lines, step runs, runs
    purge.update(
        rows=rows_removed,
        rows_per_s=rows_removed / purge["seconds"],
        runs_per_s=args.runs / purge["seconds"],
        lines_per_s=args.lines / purge["seconds"],
    )
    api = {"idle": stats(idle), "during_purge": stats(during)}
    ratio = api["during_purge"]["p99_ms"] / api["idle"]["p99_ms"]
    print()
    common.print_table(
        ["API reads", "requests", "p50 ms", "p99 ms", "max ms"],
        [[name, s["requests"], s["p50_ms"], s["p99_ms"], s["max_ms"]] for name, s in api.items()],
    )
    print()
    common.print_table(
        ["purge", "seconds", "rows/s", "runs/s", "log lines/s"],
        [["housekeeping job", purge["seconds"], purge["rows_per_s"], purge["runs_per_s"], purge["lines_per_s"]]],
    )
    verdict = common.verdict(ratio <= P99_TARGET_FACTOR)
    print(f"\np99 during purge / p99 idle = {ratio:.2f} (target ≤ {P99_TARGET_FACTOR:g}: {verdict})")
    print(f"housekeeping log: {purge['log']}")
    path = common.write_results(
        "retention",
        {"args": vars(args), "seed_s": seeded["seed_s"], "api": api, "purge": purge, "p99_ratio": ratio},
    )
    print(f"results: {path}")


if __name__ == "__main__":
    main()

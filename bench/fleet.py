"""Fleet throughput: 500 runs of 3 no-op steps triggered at once, on 1, 2 and 4 workers,
against bare Celery tasks making the same writes on as many workers.

Workers: at each size N the script starts N nomaflow worker processes and N baseline
worker processes, each its own `celery worker -c 1` (prefork, one child; the pool
settings of bench/common.py), not one worker with `-c N`. A fleet grows by adding
workers (a container or a host each, with its own broker connection and consumer, and
its own line on the Workers page), so that is what is measured; `-c N` would measure one
consumer feeding a pool. N nomaflow and N bare workers are up together; each side runs
alone while the other's workers idle on their queue.

nomaflow: 500 `runs.services.run_trigger()` calls back to back from this process, what a
client of the API or CLI gets minus the HTTP hop, on a job of three
`workers.builtins:noop` python steps with room for every run (max_concurrent_runs), while
the workers already execute. Steps/s = steps / (first step `started_at` → last step
`finished_at`); steps/s from the first trigger to the last end is printed too.

Baseline (bench/baseline_app.py): the same 500 runs "triggered" by hand, each one SQL
statement inserting the run, its 3 StepRuns and the audit event (what run_trigger writes),
then a Celery chain of 3 `bench.bare_step` tasks, each making with psycopg the writes
nomaflow makes per step (claim, seq allocation + 2 log lines, finish); the first step also
marks the run RUNNING and the last one SUCCEEDED. Measured the same way. Each side gets a
warm-up round first.

Queued → running, per step: `StepRun.started_at` minus the moment the step's task was
due to be sent: the run's `dispatched_at` for the first step (here the same instant as
`queued_at`: no run waits for a slot), the previous step's `finished_at` for the others
(a chain sends the next task when the step before it returns). It is the wait a user sees
between "this step may start" and "it started"; under a burst of 500 runs it is mostly
time in the queue behind the other runs' steps, so it shrinks as workers are added.

    python bench/fleet.py [--runs 500]

It prints a table, writes bench/results/fleet.json, and leaves nothing running: each
size's workers are stopped (their logs deleted), and at the end the database is dropped
and the Redis DB flushed. After a failure the database and the worker logs are kept.

Target: steps/s(nomaflow) / steps/s(bare) ≥ 0.5 at every size.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as `python bench/fleet.py`

from bench import common  # noqa: E402

DB_NAME, REDIS_DB = "nomaflow_bench_fleet", 8
ENV = common.configure(DB_NAME, REDIS_DB)  # before the model imports below

import psycopg  # noqa: E402
import redis  # noqa: E402
from celery import chain  # noqa: E402
from django.db import connections, transaction  # noqa: E402
from psycopg.types.json import Jsonb  # noqa: E402

from bench.baseline_app import bare_step  # noqa: E402
from jobs.models import Job, Step  # noqa: E402
from runs.ids import new_run_id  # noqa: E402
from runs.job_lock import lock_job  # noqa: E402
from runs.models import Run, StepRun  # noqa: E402
from runs.parameters import build_parameters  # noqa: E402
from runs.services import run_trigger  # noqa: E402
from runs.transitions import RUN  # noqa: E402

TARGET_RATIO = 0.5
SIZES = (1, 2, 4)
STEPS = 3
WARMUP_RUNS = 20
NOMAFLOW_JOB, BARE_JOB = "bench-fleet", "bench-fleet-bare"

BARE_TRIGGER_SQL = """
WITH run AS (
    INSERT INTO runs_run (id, job_id, state, triggered_by, queued_at, dispatched_at, log_level, parameters,
                          last_seq, request_hash)
    VALUES (%(id)s, %(job)s, 'QUEUED', %(by)s, %(now)s, %(now)s, 'INFO', %(parameters)s, 0, '')
    RETURNING id
), audit AS (
    INSERT INTO runs_auditevent (at, actor, action, object_type, object_id, diff)
    VALUES (%(now)s, %(by)s, 'trigger', 'run', %(id)s, %(diff)s)
)
INSERT INTO runs_steprun (run_id, position, name, type, queue, retries, retry_delay_s, state, reason, attempts,
                          error, traceback, worker, task_id)
SELECT run.id, step.position, step.name, 'python', 'default', 0, 0, 'PENDING', '', 0, '', '', '', step.task_id
FROM run, (VALUES (1, 'noop1', %(t1)s), (2, 'noop2', %(t2)s), (3, 'noop3', %(t3)s)) AS step (position, name, task_id)
RETURNING id, position
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=500, help="runs triggered at once at each size")
    args = parser.parse_args()
    common.reset(ENV)
    parameters = create_jobs()
    results = {}
    with psycopg.connect(ENV["DATABASE_URL"], autocommit=True) as bare_db:
        for size in SIZES:
            results[size] = measure_size(size, args.runs, BareTrigger(bare_db, parameters))
    report(results, args.runs)
    clean_up()


def create_jobs() -> dict[str, Any]:
    """Both jobs (the bare one only holds the bare runs); the parameter snapshot a run of them stores."""
    for job_id in (NOMAFLOW_JOB, BARE_JOB):
        job = Job.objects.create(id=job_id, name=job_id, max_concurrent_runs=100_000)
        Step.objects.bulk_create(
            Step(job=job, position=i, name=f"noop{i}", type="python", op_kwargs={"callable": "workers.builtins:noop"})
            for i in range(1, STEPS + 1)
        )
    with transaction.atomic():
        locked = lock_job(BARE_JOB)
    return build_parameters(
        job_id=BARE_JOB, base=locked.base(), overrides={}, step_types={step.name: step.type for step in locked.steps}
    )


class BareTrigger:
    """The baseline's run_trigger: one INSERT statement (run, steps, audit event), then the chain."""

    def __init__(self, db: psycopg.Connection, parameters: dict[str, Any]) -> None:
        self.db, self.parameters = db, Jsonb(parameters)

    def __call__(self, tag: str) -> None:
        values = {
            "id": new_run_id(),
            "job": BARE_JOB,
            "by": tag,
            "now": datetime.now(UTC),
            "diff": Jsonb({"overrides": {}}),
        }
        values |= {"parameters": self.parameters} | {f"t{i}": str(uuid.uuid4()) for i in range(1, STEPS + 1)}
        step_ids = [step_id for step_id, _ in sorted(self.db.execute(BARE_TRIGGER_SQL, values), key=lambda r: r[1])]
        chain(
            *(
                bare_step.si(step_id, starts_run=i == 0, ends_run=i == len(step_ids) - 1).set(queue="baseline")
                for i, step_id in enumerate(step_ids)
            )
        ).apply_async()


def measure_size(size: int, runs: int, bare_trigger: BareTrigger) -> dict[str, dict[str, float]]:
    print(f"{size} worker process(es) a side: starting them, warming up, then {runs} runs each", flush=True)
    load = os.getloadavg()[0]  # before our workers start: what else keeps the cores busy
    with common.workers(ENV, count=size) as processes:
        sides = {"nomaflow": (NOMAFLOW_JOB, nomaflow_trigger), "bare": (BARE_JOB, bare_trigger)}
        for job_id, trigger in sides.values():
            burst(trigger, job_id, f"warmup-{size}", WARMUP_RUNS)
        measured = {name: burst(trigger, job_id, f"fleet-{size}", runs) for name, (job_id, trigger) in sides.items()}
        measured["machine"] = {"load_average_1m_before": load}
    for process in processes:
        Path(process.log.name).unlink()  # kept only when something failed
    return measured


def nomaflow_trigger(tag: str) -> None:
    run_trigger(job_id=NOMAFLOW_JOB, triggered_by=tag)


def burst(trigger: Callable[[str], None], job_id: str, tag: str, runs: int) -> dict[str, float]:
    """Trigger `runs` runs back to back, wait for all of them, measure them from their rows."""
    sent = time.time()
    for _ in range(runs):
        trigger(tag)
    triggered = time.time()
    common.wait_for(
        lambda: not Run.objects.filter(job_id=job_id, state__in=RUN.active).exists(),
        timeout=900, interval=0.1, what=f"the {tag} runs of {job_id} to end",
    )  # fmt: skip
    return summarize(job_id, tag, runs, sent, triggered)


def summarize(job_id: str, tag: str, runs: int, sent: float, triggered: float) -> dict[str, float]:
    steps = list(
        StepRun.objects.filter(run__job_id=job_id, run__triggered_by=tag)
        .order_by("run_id", "position")
        .values_list("run_id", "state", "started_at", "finished_at", "run__dispatched_at")
    )
    failed = [(run_id, state) for run_id, state, *_ in steps if state != "SUCCEEDED"]
    if failed or len(steps) != runs * STEPS:
        raise RuntimeError(f"{tag} on {job_id}: {len(steps)} steps, not succeeded: {failed[:5]}; see the worker logs")
    first_start = min(started for _, _, started, _, _ in steps)
    last_end = max(finished for _, _, _, finished, _ in steps)
    delays_ms = queued_to_running_ms(steps)
    return {
        "runs": runs,
        "steps": len(steps),
        "trigger_s": triggered - sent,
        "busy_s": (last_end - first_start).total_seconds(),
        "steps_per_s": len(steps) / (last_end - first_start).total_seconds(),
        "steps_per_s_end_to_end": len(steps) / (last_end.timestamp() - sent),
        **{f"queued_running_p{p}_ms": common.percentile(delays_ms, p) for p in (50, 90, 99)},
        "queued_running_max_ms": max(delays_ms),
    }


def queued_to_running_ms(steps: list[tuple[Any, ...]]) -> list[float]:
    """Each step's started_at minus when it became due: its run's dispatched_at for the first
    step, the previous step's finished_at for the others (`steps` in run, position order)."""
    delays, previous_run, previous_end = [], None, None
    for run_id, _, started, finished, dispatched in steps:
        due = previous_end if run_id == previous_run else dispatched
        delays.append((started - due).total_seconds() * 1000)
        previous_run, previous_end = run_id, finished
    return delays


def report(results: dict[int, dict[str, dict[str, float]]], runs: int) -> None:
    ratios = {size: r["nomaflow"]["steps_per_s"] / r["bare"]["steps_per_s"] for size, r in results.items()}
    print(f"\nfleet, {runs} runs of {STEPS} no-op steps triggered at once, at each size (workers a side)\n")
    common.print_table(
        ["workers", "nomaflow steps/s", "bare steps/s", "ratio", "target ≥ 0.5",
         "queued→running p50 ms", "p99 ms", "bare p50 ms", "bare p99 ms"],
        [
            [size, r["nomaflow"]["steps_per_s"], r["bare"]["steps_per_s"], ratios[size],
             common.verdict(ratios[size] >= TARGET_RATIO), r["nomaflow"]["queued_running_p50_ms"],
             r["nomaflow"]["queued_running_p99_ms"], r["bare"]["queued_running_p50_ms"],
             r["bare"]["queued_running_p99_ms"]]
            for size, r in results.items()
        ],
    )  # fmt: skip
    print("\nsteps/s over first step start → last step end; queued→running per step (see the docstring)")
    for size, r in results.items():
        n, b = r["nomaflow"], r["bare"]
        print(
            f"{size} worker(s): triggering took {n['trigger_s']:.2f} s (bare {b['trigger_s']:.2f} s); "
            f"steps/s trigger → last end {n['steps_per_s_end_to_end']:.1f} (bare {b['steps_per_s_end_to_end']:.1f}); "
            f"load average before {r['machine']['load_average_1m_before']:.1f} on {os.cpu_count()} cores"
        )
    path = common.write_results(
        "fleet",
        {
            "runs": runs, "steps_per_run": STEPS, "sizes": list(results), "workers": "N × `celery worker -c 1` a side",
            "queued_running": "step started_at − (run dispatched_at for step 1, previous step finished_at after)",
            "results": {str(size): r for size, r in results.items()}, "ratios": {str(s): v for s, v in ratios.items()},
            "target_ratio_min": TARGET_RATIO, "meets": all(v >= TARGET_RATIO for v in ratios.values()),
        },
    )  # fmt: skip
    print(f"results: {path}")


def clean_up() -> None:
    """Leave nothing behind once the figures are out: the database and the Redis DB."""
    connections.close_all()
    with psycopg.connect(f"{common.PG}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
    redis.Redis.from_url(ENV["REDIS_URL"]).flushdb()


if __name__ == "__main__":
    main()

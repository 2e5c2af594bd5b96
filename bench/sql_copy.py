"""sql_copy throughput: 1,000,000 rows Postgres → Postgres, against a raw psql COPY pipe.

nomaflow: a one-step `sql_copy` job (mode overwrite, `SELECT * FROM orders` into the
same table in another database) run by a real worker; timed from the step's
`started_at` to its `finished_at` (connect, describe, COPY, commit), and end to end
(trigger → run finished).

Baseline: `psql -c "COPY orders TO STDOUT" | psql -c "COPY orders FROM STDIN"` between the
same two databases, into the same table with the same indexes (primary key and an
index on customer_id), timed by wall clock around the pipe.

The target is emptied (TRUNCATE, untimed) before every copy. Both sides alternate,
after a warm-up round of each.

    python bench/sql_copy.py [--runs 3] [--rows 1000000]

Target: rows/s(nomaflow, step time) / rows/s(baseline) ≥ 0.8.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as `python bench/sql_copy.py`

from bench import common  # noqa: E402

DB_NAME, REDIS_DB = "nomaflow_bench_sql_copy", 12
SOURCE_DB, TARGET_DB = "nomaflow_bench_copy_src", "nomaflow_bench_copy_dst"
ENV = common.configure(DB_NAME, REDIS_DB)  # before the model imports below

import psycopg  # noqa: E402

from jobs.models import Connector, Job, Step  # noqa: E402
from runs.choices import RunState  # noqa: E402
from runs.models import Run  # noqa: E402
from runs.services import run_trigger  # noqa: E402
from runs.transitions import RUN  # noqa: E402
from tests.processes import Process  # noqa: E402

TARGET_RATIO = 0.8
TABLE = """
CREATE TABLE orders (id bigint PRIMARY KEY, customer_id int NOT NULL, name text, amount numeric(12,2),
                     created timestamptz);
CREATE INDEX orders_customer ON orders (customer_id);
"""
FILL = """
INSERT INTO orders
SELECT g, g % 50000, 'order ' || g || ' for customer ' || (g % 50000), (g % 100000) / 100.0,
       timestamptz '2024-01-01' + g * interval '1 second'
FROM generate_series(1, %s) g
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    common.reset(ENV)
    prepare_databases(args.rows)
    job = create_job()
    worker = Process(common.worker_args("nomaflow", "default", "nomaflow"), ENV, "nomaflow")
    try:
        worker.wait_for_output("ready.")
        measure(job, 1, args.rows)  # warm-up
        samples = measure(job, args.runs, args.rows)
    finally:
        worker.stop()
    report(samples, args.rows)


def prepare_databases(rows: int) -> None:
    with psycopg.connect(f"{common.PG}/postgres", autocommit=True) as conn:
        for name in (SOURCE_DB, TARGET_DB):
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
    for name in (SOURCE_DB, TARGET_DB):
        with psycopg.connect(f"{common.PG}/{name}", autocommit=True) as conn:
            conn.execute(TABLE)
    with psycopg.connect(f"{common.PG}/{SOURCE_DB}", autocommit=True) as conn:
        conn.execute(FILL.replace("%s", str(rows)))
        conn.execute("VACUUM ANALYZE orders")


def create_job() -> Job:
    Connector.objects.create(name="bench-src", kind="postgres", url=f"{common.PG}/{SOURCE_DB}")
    Connector.objects.create(name="bench-dst", kind="postgres", url=f"{common.PG}/{TARGET_DB}")
    job = Job.objects.create(id="bench-sql-copy", name="bench sql_copy")
    op_kwargs = {"source": "bench-src", "target": "bench-dst", "query": "SELECT * FROM orders", "table": "orders",
                 "mode": "overwrite"}  # fmt: skip
    Step.objects.create(job=job, position=1, name="copy", type="sql_copy", op_kwargs=op_kwargs)
    return job


def measure(job: Job, runs: int, rows: int) -> dict[str, list[dict[str, float]]]:
    samples: dict[str, list[dict[str, float]]] = {"nomaflow": [], "psql pipe": []}
    for _ in range(runs):
        samples["nomaflow"].append(nomaflow_copy(job, rows))
        samples["psql pipe"].append(psql_pipe(rows))
    return samples


def empty_target() -> None:
    with psycopg.connect(f"{common.PG}/{TARGET_DB}", autocommit=True) as conn:
        conn.execute("TRUNCATE orders")
        conn.execute("CHECKPOINT")  # neither side pays for the other's dirty pages


def check_target(rows: int) -> None:
    with psycopg.connect(f"{common.PG}/{TARGET_DB}") as conn:
        copied = conn.execute("SELECT count(*) FROM orders").fetchone()[0]
    if copied != rows:
        raise RuntimeError(f"target has {copied} rows, expected {rows}")


def nomaflow_copy(job: Job, rows: int) -> dict[str, float]:
    empty_target()
    sent = time.time()
    run, _ = run_trigger(job_id=job.id, triggered_by="bench")
    state = common.wait_for(
        lambda: Run.objects.filter(pk=run.pk, state__in=RUN.terminal).values_list("state", flat=True).first(),
        timeout=600, interval=0.02, what=f"run {run.pk} to finish",
    )  # fmt: skip
    if state != RunState.SUCCEEDED:
        raise RuntimeError(f"run {run.pk} ended {state}: {run.steps.get().error}")
    run.refresh_from_db()
    step = run.steps.get()
    check_target(rows)
    return {
        "seconds": (step.finished_at - step.started_at).total_seconds(),
        "seconds_end_to_end": run.finished_at.timestamp() - sent,
    }


def psql_pipe(rows: int) -> dict[str, float]:
    empty_target()
    psql = "psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -U postgres"
    pipe = f'{psql} -d {SOURCE_DB} -c "COPY orders TO STDOUT" | {psql} -d {TARGET_DB} -c "COPY orders FROM STDIN"'
    started = time.monotonic()
    subprocess.run(["bash", "-o", "pipefail", "-c", pipe], check=True)
    elapsed = time.monotonic() - started
    check_target(rows)
    return {"seconds": elapsed, "seconds_end_to_end": elapsed}


def report(samples: dict[str, list[dict[str, float]]], rows: int) -> None:
    keys = ("seconds", "seconds_end_to_end")
    median = common.medians(samples, keys)
    ratios = {k: median["psql pipe"][k] / median["nomaflow"][k] for k in keys}  # rows/s ratio: time inverse
    print(f"\nsql_copy, {rows} rows Postgres → Postgres, {len(samples['nomaflow'])} runs each (median)\n")
    table = [[name, m["seconds"], rows / m["seconds"], rows / m["seconds_end_to_end"]] for name, m in median.items()]
    table.append(["ratio nomaflow/pipe", "", ratios["seconds"], ratios["seconds_end_to_end"]])
    common.print_table(["", "seconds (step)", "rows/s (step)", "rows/s (trigger→end)"], table)
    verdict = common.verdict(ratios["seconds"] >= TARGET_RATIO)
    print(f"\nratio rows/s nomaflow/psql pipe = {ratios['seconds']:.2f}  ({verdict} target ≥ {TARGET_RATIO:g})")
    path = common.write_results(
        "sql_copy",
        {"rows": rows, "median": median, "ratios": ratios, "target_ratio_min": TARGET_RATIO, "samples": samples},
    )
    print(f"results: {path}")


if __name__ == "__main__":
    main()

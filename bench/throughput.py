"""Step throughput: a run of 100 no-op python steps, against the same writes by hand.

nomaflow: one run of a job of 100 `workers.builtins:noop` python steps on one worker
process (`-c 1`). Reported two ways: steps/s over first step `started_at` → last step
`finished_at`, and over trigger → run `finished_at`.

Baseline: a Celery chain of 100 `bench.bare_step` tasks (bench/baseline_app.py) on a worker
with the same pool settings, each making by hand with psycopg the database writes nomaflow
makes per step (claim UPDATE, seq allocation + 2 log lines, finish UPDATE) on the same
tables of the same database. Measured the same two ways. Both sides alternate, after a
warm-up round of each.

    python bench/throughput.py [--runs 3] [--steps 100]

Target: steps/s(nomaflow) / steps/s(bare) ≥ 0.5.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as `python bench/throughput.py`

from bench import common  # noqa: E402

DB_NAME, REDIS_DB = "nomaflow_bench_throughput", 14
ENV = common.configure(DB_NAME, REDIS_DB)  # before the model imports below

from celery import chain  # noqa: E402
from django.utils import timezone  # noqa: E402

from bench.baseline_app import bare_step  # noqa: E402
from jobs.models import Job, Step  # noqa: E402
from runs.choices import RunState, StepState  # noqa: E402
from runs.models import Run, StepRun  # noqa: E402
from runs.services import run_trigger  # noqa: E402
from runs.transitions import RUN  # noqa: E402

TARGET_RATIO = 0.5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--steps", type=int, default=100)
    args = parser.parse_args()
    common.reset(ENV)
    job = create_job(args.steps)
    with common.workers(ENV):
        measure(job, 1)  # warm-up
        samples = measure(job, args.runs)
    report(samples, args.steps)


def create_job(steps: int) -> Job:
    job = Job.objects.create(id="bench-throughput", name="bench throughput", max_concurrent_runs=100)
    Step.objects.bulk_create(
        Step(job=job, position=i, name=f"noop{i:03d}", type="python", op_kwargs={"callable": "workers.builtins:noop"})
        for i in range(1, steps + 1)
    )
    return job


def measure(job: Job, runs: int) -> dict[str, list[dict[str, float]]]:
    samples: dict[str, list[dict[str, float]]] = {"nomaflow": [], "bare": []}
    for _ in range(runs):
        samples["nomaflow"].append(nomaflow_run(job))
        samples["bare"].append(bare_run(job))
    return samples


def nomaflow_run(job: Job) -> dict[str, float]:
    sent = time.time()
    run, _ = run_trigger(job_id=job.id, triggered_by="bench")
    state = common.wait_for(
        lambda: Run.objects.filter(pk=run.pk, state__in=RUN.terminal).values_list("state", flat=True).first(),
        timeout=300, interval=0.02, what=f"run {run.pk} to finish",
    )  # fmt: skip
    if state != RunState.SUCCEEDED:
        raise RuntimeError(f"run {run.pk} ended {state}; see its log")
    run.refresh_from_db()
    return rates(run, sent, run.finished_at)


def bare_run(job: Job) -> dict[str, float]:
    """A Run with PENDING StepRuns made directly (nothing dispatches it), then the bare chain."""
    run = Run.objects.create(job=job, state=RunState.RUNNING, triggered_by="bench-bare", dispatched_at=timezone.now())
    step_runs = StepRun.objects.bulk_create(
        StepRun(run=run, position=step.position, name=step.name, type=step.type) for step in job.steps.all()
    )
    sent = time.time()
    chain(*(bare_step.si(sr.pk).set(queue="baseline") for sr in step_runs)).apply_async()
    common.wait_for(
        lambda: not run.steps.exclude(state=StepState.SUCCEEDED).exists(),
        timeout=300, interval=0.02, what=f"bare chain of run {run.pk}",
    )  # fmt: skip
    finished = run.steps.order_by("-finished_at")[0].finished_at
    Run.objects.filter(pk=run.pk).update(state=RunState.SUCCEEDED, finished_at=finished)  # frees its slot
    return rates(run, sent, finished)


def rates(run: Run, sent: float, finished: datetime) -> dict[str, float]:
    steps = list(run.steps.order_by("position").values_list("started_at", "finished_at"))
    busy_s = (steps[-1][1] - steps[0][0]).total_seconds()
    total_s = finished.timestamp() - sent
    return {"steps": len(steps), "steps_per_s": len(steps) / busy_s, "steps_per_s_end_to_end": len(steps) / total_s}


def report(samples: dict[str, list[dict[str, float]]], steps: int) -> None:
    keys = ("steps_per_s", "steps_per_s_end_to_end")
    median = common.medians(samples, keys)
    ratios = {k: median["nomaflow"][k] / median["bare"][k] for k in keys}
    print(f"\nthroughput, {len(samples['nomaflow'])} runs of {steps} no-op steps each (median)\n")
    rows = [[name, m["steps_per_s"], m["steps_per_s_end_to_end"]] for name, m in median.items()]
    rows.append(["ratio nomaflow/bare", ratios["steps_per_s"], ratios["steps_per_s_end_to_end"]])
    common.print_table(["", "steps/s first start→last end", "steps/s trigger→run end"], rows)
    verdict = common.verdict(ratios["steps_per_s"] >= TARGET_RATIO)
    print(f"\nratio (first start → last end) = {ratios['steps_per_s']:.2f}  ({verdict} target ≥ {TARGET_RATIO:g})")
    path = common.write_results(
        "throughput",
        {"steps": steps, "median": median, "ratios": ratios, "target_ratio_min": TARGET_RATIO, "samples": samples},
    )
    print(f"results: {path}")


if __name__ == "__main__":
    main()

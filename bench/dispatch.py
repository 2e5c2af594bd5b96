"""Dispatch latency: trigger → first step RUNNING, against a bare Celery round trip.

nomaflow: the time from just before `run_trigger()` of a one-step `noop` job to the
`StepRun.started_at` the worker writes when it claims the step. Runs are triggered one
at a time and each is awaited to its end, so this is latency, not queueing.

Baselines: `bench.ping.delay()` on a bare Celery app (bench/baseline_app.py) with the same
broker and the same worker pool settings, measured two ways:
- "bare round trip" (the issue's baseline): from just before `.delay()` until the client
  has the task's reply (the task pushes it to a Redis list the client BLPOPs);
- "bare one-way": from just before `.delay()` to the `time.time()` the task records first
  thing, the stricter comparison, printed too.
Both sides are measured interleaved, after a warm-up, on the same machine clock.

    python bench/dispatch.py [--runs 500] [--warmup 20]

Target: p50(nomaflow) / p50(bare round trip) ≤ 2.
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as `python bench/dispatch.py`

from bench import common  # noqa: E402

DB_NAME, REDIS_DB = "nomaflow_bench_dispatch", 13
ENV = common.configure(DB_NAME, REDIS_DB)  # before the model imports below

from bench.baseline_app import ping, redis_client  # noqa: E402
from jobs.models import Job, Step  # noqa: E402
from runs.choices import RunState  # noqa: E402
from runs.models import Run, StepRun  # noqa: E402
from runs.services import run_trigger  # noqa: E402
from runs.transitions import RUN  # noqa: E402

TARGET_RATIO = 2.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--warmup", type=int, default=20)
    args = parser.parse_args()
    common.reset(ENV)
    job_id = create_job()
    with common.workers(ENV):
        measure(job_id, args.warmup)
        samples = measure(job_id, args.runs)
    report(samples, args.runs)


def create_job() -> str:
    job = Job.objects.create(id="bench-dispatch", name="bench dispatch", max_concurrent_runs=100_000)
    Step.objects.create(
        job=job, position=1, name="noop", type="python", op_kwargs={"callable": "workers.builtins:noop"}
    )
    return job.id


def measure(job_id: str, runs: int) -> dict[str, list[float]]:
    """`runs` samples of each, alternating, in milliseconds."""
    samples: dict[str, list[float]] = {"nomaflow": [], "bare round trip": [], "bare one-way": []}
    for _ in range(runs):
        samples["nomaflow"].append(nomaflow_latency(job_id) * 1000)
        one_way, round_trip = bare_latency()
        samples["bare one-way"].append(one_way * 1000)
        samples["bare round trip"].append(round_trip * 1000)
    return samples


def nomaflow_latency(job_id: str) -> float:
    sent = time.time()
    run, _ = run_trigger(job_id=job_id, triggered_by="bench")
    state = common.wait_for(
        lambda: Run.objects.filter(pk=run.pk, state__in=RUN.terminal).values_list("state", flat=True).first(),
        what=f"run {run.pk} to finish",
    )
    if state != RunState.SUCCEEDED:
        raise RuntimeError(f"run {run.pk} ended {state}; see its log")
    return StepRun.objects.get(run=run).started_at.timestamp() - sent


def bare_latency() -> tuple[float, float]:
    """(send → task started, send → reply back at the client)."""
    key = f"ping:{uuid.uuid4()}"
    sent = time.time()
    ping.delay(key)
    reply = redis_client().blpop([key], timeout=60)
    replied = time.time()
    if reply is None:
        raise TimeoutError("bench.ping did not run within 60 s; is the baseline worker up?")
    return float(reply[1]) - sent, replied - sent


def report(samples: dict[str, list[float]], runs: int) -> None:
    summary = {
        name: {"p50_ms": common.percentile(values, 50), "p99_ms": common.percentile(values, 99)}
        for name, values in samples.items()
    }
    ratio = summary["nomaflow"]["p50_ms"] / summary["bare round trip"]["p50_ms"]
    strict = summary["nomaflow"]["p50_ms"] / summary["bare one-way"]["p50_ms"]
    print(f"\ndispatch latency, {runs} runs each (send → task/step started)\n")
    common.print_table(
        ["", "p50 ms", "p99 ms"],
        [[name, s["p50_ms"], s["p99_ms"]] for name, s in summary.items()],
    )
    verdict = common.verdict(ratio <= TARGET_RATIO)
    print(f"\nratio p50(nomaflow)/p50(bare round trip) = {ratio:.2f}  ({verdict} target ≤ {TARGET_RATIO:g})")
    print(f"ratio p50(nomaflow)/p50(bare one-way)    = {strict:.2f}")
    path = common.write_results(
        "dispatch",
        {
            "runs": runs,
            "summary": summary,
            "ratio_p50": ratio,
            "ratio_p50_one_way": strict,
            "target_ratio_max": TARGET_RATIO,
            "samples_ms": samples,
        },  # fmt: skip
    )
    print(f"results: {path}")


if __name__ == "__main__":
    main()

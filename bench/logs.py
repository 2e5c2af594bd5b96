"""Live logs: latency ctx.log.info → websocket client, sustained lines/s, persistence rate.

nomaflow: a real worker runs `workers.builtins:emit_lines`; a websocket client (the
`websockets` package, token auth) reads `/ws/runs/<id>/` through daphne. A line's
latency is its arrival at the client minus its `ts` (taken in ctx.log.info).

1. latency at --rate lines/s (default 1,000): p50/p99 over --lines lines after a warm-up.
   Baseline: the bench PUBLISHes one JSON line (with its send time) at the same rate to
   a Redis channel; bench/relay_app.py under a second daphne relays it to the same client.
   Target: p50(nomaflow) ≤ 2 × p50(baseline) + NOMAFLOW_LOG_FLUSH_INTERVAL_S.
2. sustained: --max-lines lines at full speed (no rate): every seq must arrive exactly
   once, in order; lines/s = lines / (first line's ts → last line's arrival).
   Target: ≥ 10,000 lines/s.
3. persistence: runs.logstore.persist (the worker's code: seq UPDATE … RETURNING + COPY)
   in batches of workers.runtime.MAX_BATCH vs a raw psycopg COPY of the same rows in the
   same batches, one transaction each. Target: ratio ≥ 0.7.

    python bench/logs.py [--rate 1000] [--lines 5000] [--max-lines 200000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import threading
import time
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as `python bench/logs.py`

from bench import common  # noqa: E402

DB_NAME, REDIS_DB = "nomaflow_bench_logs", 11
ENV = common.configure(DB_NAME, REDIS_DB)  # before the model imports below

import psycopg  # noqa: E402
import redis  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.auth.models import User  # noqa: E402
from websockets.asyncio.client import connect  # noqa: E402

from accounts.tokens import issue_token  # noqa: E402
from bench.relay_app import CHANNEL  # noqa: E402
from jobs.models import Job, Step  # noqa: E402
from runs import logstore  # noqa: E402
from runs.models import Run  # noqa: E402
from runs.services import run_trigger  # noqa: E402
from tests.processes import Process, free_port  # noqa: E402
from workers.runtime import MAX_BATCH  # noqa: E402

WARMUP_LINES = 1000
LATENCY_TARGET_FACTOR = 2.0
SUSTAINED_TARGET = 10_000
PERSIST_TARGET_RATIO = 0.7
PERSIST_ROWS = 200_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--lines", type=int, default=5000)
    parser.add_argument("--max-lines", type=int, default=200_000)
    args = parser.parse_args()
    common.reset(ENV)
    token = issue_token(User.objects.create_superuser("bench", password="bench"))
    with ExitStack() as stack:
        web, relay = start_processes(stack)
        nomaflow = nomaflow_latency(web, token, args.rate, args.lines)
        baseline = baseline_latency(relay, args.rate, args.lines)
        sustained = sustained_rate(web, token, args.max_lines)
    persistence = persistence_rates(PERSIST_ROWS)
    report(args, nomaflow, baseline, sustained, persistence)


def start_processes(stack: ExitStack) -> tuple[str, str]:
    """The nomaflow worker, daphne for nomaflow, daphne for the relay baseline."""
    worker = Process(common.worker_args("nomaflow", "default", "nomaflow"), ENV, "nomaflow")
    stack.callback(worker.stop)
    urls = []
    for app in ("nomaflow.asgi:application", "bench.relay_app:application"):
        port = free_port()
        web = Process([sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), app], ENV, "daphne")
        stack.callback(web.stop)
        web.wait_for_output("Listening on TCP address")
        urls.append(f"ws://127.0.0.1:{port}")
    worker.wait_for_output("ready.")
    return urls[0], urls[1]


def emit_job(name: str, count: int, rate: int | None) -> str:
    job = Job.objects.create(id=name, name=name, max_concurrent_runs=100)
    kwargs: dict[str, Any] = {"callable": "workers.builtins:emit_lines", "count": count, "size": 80}
    if rate:
        kwargs["rate"] = rate
    Step.objects.create(job=job, position=1, name="emit", type="python", op_kwargs=kwargs)
    return job.id


async def read_run(web: str, token: str, run_id: str) -> list[tuple[float, dict[str, Any]]]:
    """(arrival time, line) for every line of the run, until the end frame."""
    got: list[tuple[float, dict[str, Any]]] = []
    headers = {"Authorization": f"Token {token}"}
    async with connect(f"{web}/ws/runs/{run_id}/?after=0", additional_headers=headers, max_size=None) as ws:
        async for text in ws:
            arrived = time.time()
            frame = json.loads(text)
            if frame["type"] == "log":
                got.extend((arrived, line) for line in frame["lines"])
            elif frame["type"] == "end":
                return got
    raise RuntimeError(f"run {run_id}: the websocket closed before the end frame")


def run_and_read(web: str, token: str, job_id: str) -> tuple[Run, list[tuple[float, dict[str, Any]]]]:
    run, _ = run_trigger(job_id=job_id, triggered_by="bench")
    got = asyncio.run(read_run(web, token, run.id))
    run.refresh_from_db()
    seqs = [line["seq"] for _, line in got]
    if seqs != list(range(1, run.last_seq + 1)) or run.state != "SUCCEEDED":
        raise RuntimeError(f"run {run.id} ended {run.state}; lines lost, repeated or out of order")
    return run, got


def _ts(line: dict[str, Any]) -> float:
    return datetime.fromisoformat(line["ts"]).timestamp()


def nomaflow_latency(web: str, token: str, rate: int, lines: int) -> list[float]:
    _, got = run_and_read(web, token, emit_job("bench-latency", WARMUP_LINES + lines, rate))
    emitted = [(arrived, line) for arrived, line in got if line["message"].startswith("line ")]
    return [(arrived - _ts(line)) * 1000 for arrived, line in emitted[WARMUP_LINES:]]


def baseline_latency(relay: str, rate: int, lines: int) -> list[float]:
    client = redis.Redis.from_url(ENV["REDIS_URL"])
    total = WARMUP_LINES + lines

    async def read() -> list[float]:
        samples = []
        async with connect(relay, max_size=None) as ws:
            ready.set()
            async for text in ws:
                arrived = time.time()
                message = json.loads(text)
                samples.append((arrived - message["sent"]) * 1000)
                if message["seq"] == total:
                    return samples[WARMUP_LINES:]
        raise RuntimeError("the relay closed early")

    def publish() -> None:
        ready.wait(30)
        common.wait_for(lambda: client.pubsub_numsub(CHANNEL)[0][1] >= 1, what="the relay to subscribe")
        started = time.monotonic()
        for seq in range(1, total + 1):
            delay = started + seq / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)  # pacing the publisher at `rate`, as emit_lines does
            line = {"seq": seq, "sent": time.time(), "message": "x" * 80}
            client.publish(CHANNEL, json.dumps(line))

    ready = threading.Event()
    publisher = threading.Thread(target=publish, daemon=True)
    publisher.start()
    samples = asyncio.run(read())
    publisher.join()
    return samples


def sustained_rate(web: str, token: str, lines: int) -> dict[str, float]:
    run, got = run_and_read(web, token, emit_job("bench-sustained", lines, None))
    first_ts = _ts(got[0][1])
    last_arrival = got[-1][0]
    emitted = [_ts(line) for _, line in got if line["message"].startswith("line ")]
    return {
        "lines": run.last_seq,
        "delivered_lines_per_s": run.last_seq / (last_arrival - first_ts),
        "produced_lines_per_s": len(emitted) / (emitted[-1] - emitted[0]),
        "lag_at_end_ms": (last_arrival - _ts(got[-1][1])) * 1000,
    }


def persistence_rates(rows: int) -> dict[str, float]:
    job = Job.objects.create(id="bench-persist", name="bench persist")
    ours = Run.objects.create(job=job, triggered_by="bench")
    raw = Run.objects.create(job=job, triggered_by="bench")
    entries = [logstore.entry("INFO", f"line {i} " + "x" * 72, "emit") for i in range(rows)]
    started = time.perf_counter()
    for start in range(0, rows, MAX_BATCH):
        logstore.persist(ours.id, entries[start : start + MAX_BATCH])
    nomaflow = rows / (time.perf_counter() - started)
    with psycopg.connect(ENV["DATABASE_URL"], autocommit=True) as conn:
        started = time.perf_counter()
        for start in range(0, rows, MAX_BATCH):
            with (
                conn.transaction(),
                conn.cursor().copy("COPY runs_logline (run_id, seq, ts, level, step, message) FROM STDIN") as copy,
            ):
                for seq, e in enumerate(entries[start : start + MAX_BATCH], start=start + 1):
                    copy.write_row((raw.id, seq, e.ts, e.level, e.step, e.message))
        bare = rows / (time.perf_counter() - started)
    return {"rows": rows, "batch": MAX_BATCH, "nomaflow_rows_per_s": nomaflow, "raw_copy_rows_per_s": bare}


def report(
    args: argparse.Namespace, nomaflow: list[float], baseline: list[float], sustained: dict[str, float],
    persistence: dict[str, float],
) -> None:  # fmt: skip
    flush_ms = settings.NOMAFLOW_LOG_FLUSH_INTERVAL_S * 1000
    latency = {
        name: {"p50_ms": common.percentile(values, 50), "p99_ms": common.percentile(values, 99)}
        for name, values in (("nomaflow", nomaflow), ("bare publish → relay", baseline))
    }
    p50, base_p50 = latency["nomaflow"]["p50_ms"], latency["bare publish → relay"]["p50_ms"]
    latency_limit = LATENCY_TARGET_FACTOR * base_p50 + flush_ms
    persist_ratio = persistence["nomaflow_rows_per_s"] / persistence["raw_copy_rows_per_s"]
    print(f"\nlatency ctx.log.info → websocket client at {args.rate} lines/s, {args.lines} lines each\n")
    common.print_table(["", "p50 ms", "p99 ms"], [[k, v["p50_ms"], v["p99_ms"]] for k, v in latency.items()])
    met = common.verdict(p50 <= latency_limit)
    print(f"\nratio p50(nomaflow)/p50(baseline) = {p50 / base_p50:.2f}; p50 {p50:.1f} ms vs target ≤ 2 × "
          f"{base_p50:.2f} + {flush_ms:g} = {latency_limit:.1f} ms ({met})")  # fmt: skip
    delivered = sustained["delivered_lines_per_s"]
    print(f"\nsustained, one run of {sustained['lines']} lines at full speed, every seq once and in order:")
    print(f"  delivered {delivered:,.0f} lines/s (produced {sustained['produced_lines_per_s']:,.0f}/s, "
          f"lag at end {sustained['lag_at_end_ms']:.0f} ms) — target ≥ {SUSTAINED_TARGET:,} "
          f"({common.verdict(delivered >= SUSTAINED_TARGET)})")  # fmt: skip
    print(f"\npersistence, {persistence['rows']:,} rows in batches of {persistence['batch']}:")
    print(f"  logstore.persist {persistence['nomaflow_rows_per_s']:,.0f} rows/s, raw COPY "
          f"{persistence['raw_copy_rows_per_s']:,.0f} rows/s, ratio {persist_ratio:.2f} — target ≥ "
          f"{PERSIST_TARGET_RATIO} ({common.verdict(persist_ratio >= PERSIST_TARGET_RATIO)})")  # fmt: skip
    path = common.write_results(
        "logs",
        {"rate": args.rate, "latency": latency, "latency_ratio_p50": p50 / base_p50, "latency_limit_ms": latency_limit,
         "sustained": sustained, "persistence": persistence, "persistence_ratio": persist_ratio,
         "samples_ms": {"nomaflow": nomaflow, "baseline": baseline}},
    )  # fmt: skip
    print(f"results: {path}")


if __name__ == "__main__":
    main()

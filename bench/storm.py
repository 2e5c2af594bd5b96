"""API endpoints under a storm of clients, against the same endpoints idle.

The stack is tests/storm's: real daphne (DEBUG off), two Celery workers (-c 2) and the
scheduler, three jobs of short steps. Idle: one client, sequential, each run awaited to
its end before the next request, so nothing else is going on. Storm: `--clients`
clients for `--duration` s, each a weighted mix of trigger, trigger with
Idempotency-Key (30 % resend an earlier key), cancel, replay with edited params, run
reads, log reads (JSON and logs.txt) and websocket follows to `end` (the latency of a
follow is its handshake plus the first frame). Per endpoint: requests/s (idle: one
client's sequential rate, 1 / mean latency; storm: all clients' answers / duration) and
p99, and the ratio p99 storm / p99 idle.

    python bench/storm.py [--clients 8] [--duration 60] [--idle-samples 60] [--think-ms 0]

Target: p99 under the storm ≤ 3 × p99 idle, for every endpoint. With fewer than 100 idle
samples an endpoint's idle p99 is its slowest sample.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as `python bench/storm.py`

from bench import common  # noqa: E402

DB_NAME, REDIS_DB = "nomaflow_bench_storm", 10
os.environ.setdefault("NOMAFLOW_PYTHON_STEP_MODULES", "workers.builtins,tests.steps")  # the record step
ENV = common.configure(DB_NAME, REDIS_DB)  # before the model imports below

from tests.http_server import running_server  # noqa: E402
from tests.storm import StormReport, StormSetup, run_storm, storm_setup  # noqa: E402
from tests.storm.clients import ENDPOINTS, TERMINAL, ApiClient, Stats  # noqa: E402

TARGET_RATIO = 3.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--idle-samples", type=int, default=60)
    parser.add_argument("--think-ms", type=float, default=0.0, help="each storm client's pause between actions")
    args = parser.parse_args()
    common.reset(ENV)
    with tempfile.TemporaryDirectory() as tmp, running_server() as http:
        with storm_setup(Path(tmp), http.base, users=args.clients) as setup:
            idle = measure_idle(setup, args.idle_samples)
            report = run_storm(setup, args.clients, args.duration, think_s=args.think_ms / 1000)
    print_report(idle, report, args)


class Idle:
    """One client, one request at a time, on a quiet stack: each run it starts is awaited
    (by an untimed client) before the next timed request."""

    def __init__(self, setup: StormSetup) -> None:
        self.stats = Stats()
        self.api = ApiClient(setup.stack.url, setup.tokens[0], self.stats)
        self.waiter = ApiClient(setup.stack.url, setup.tokens[0], Stats())

    def ended(self, run: dict[str, Any] | None) -> str:
        if run is None:
            failures = self.stats.server_errors or self.stats.transport_errors
            raise RuntimeError(f"a request failed while idle: {failures}")
        common.wait_for(
            lambda: (self.waiter.run(run["id"]) or {}).get("state") in TERMINAL, 60, 0.02, f"run {run['id']} to end"
        )
        return str(run["id"])

    def sample(self, job_id: str, index: int) -> None:
        run_id = self.ended(self.api.trigger(job_id))
        self.api.run(run_id)
        self.api.logs(run_id)
        self.api.logs_txt(run_id)
        self.api.follow(run_id)
        key = str(uuid.uuid4())
        self.ended(self.api.trigger(job_id, key, endpoint="trigger_idem"))
        if index % 2:  # the storm resends some keys: time both kinds of keyed trigger
            self.api.trigger(job_id, key, endpoint="trigger_idem")
        self.ended(self.api.replay(run_id, tag=f"idle-{index}"))
        victim = self.waiter.trigger(job_id)
        if victim is None:
            raise RuntimeError("a trigger failed while idle")
        if index % 3 == 0:  # a cancel of a finished run: the storm's cancels answer 409 too
            self.ended(victim)
        self.api.cancel(victim["id"])
        self.ended(victim)


def measure_idle(setup: StormSetup, samples: int) -> Stats:
    idle = Idle(setup)
    for index in range(samples):
        idle.sample(setup.job_ids[index % len(setup.job_ids)], index)
    idle.api.close()
    idle.waiter.close()
    return idle.stats


def endpoint_rows(idle: Stats, report: StormReport) -> dict[str, dict[str, float]]:
    storm = report.stats.summary(report.duration_s)
    rows = {}
    for name in ENDPOINTS:
        latencies = idle.endpoints[name].latencies_ms
        idle_p99 = common.percentile(latencies, 99)
        rows[name] = {
            "idle_per_s": 1000 / statistics.mean(latencies), "idle_p99_ms": idle_p99,
            "storm_per_s": storm[name]["per_s"], "storm_p99_ms": storm[name]["p99_ms"],
            "ratio_p99": storm[name]["p99_ms"] / idle_p99,
        }  # fmt: skip
    return rows


def print_report(idle: Stats, report: StormReport, args: argparse.Namespace) -> None:
    rows = endpoint_rows(idle, report)
    print(f"\nendpoints idle (1 client, {args.idle_samples} samples) and under the storm "
          f"({args.clients} clients, {report.duration_s:.0f} s, {args.think_ms:g} ms between actions)\n")  # fmt: skip
    common.print_table(
        ["endpoint", "idle req/s", "idle p99 ms", "storm req/s", "storm p99 ms", "p99 ratio", ""],
        [[name, r["idle_per_s"], r["idle_p99_ms"], r["storm_per_s"], r["storm_p99_ms"], r["ratio_p99"],
          common.verdict(r["ratio_p99"] <= TARGET_RATIO)] for name, r in rows.items()],
    )  # fmt: skip
    figures = report.figures()
    print(f"\ntarget p99 storm / p99 idle ≤ {TARGET_RATIO:g} for every endpoint")
    summary = {
        "requests": f"{figures['requests']} ({figures['requests_per_s']}/s)",
        "5xx": figures["server_errors_5xx"], "transport errors": figures["transport_errors"],
        "most PostgreSQL connections": f"{figures['max_pg_connections']} (bound {figures['pg_connection_bound']})",
        "deadlocks": figures["deadlocks_pg_stat_database"],
        "deadlock lines": figures["deadlock_lines_in_process_output"],
        "not terminal after the drain": figures["not_terminal_after_drain"],
        "duplicate executions": figures["duplicate_step_executions"],
        "CPU s/s": figures["cpu_per_s"],
    }  # fmt: skip
    print("storm: " + ", ".join(f"{name} {value}" for name, value in summary.items()))
    path = common.write_results(
        "storm",
        {
            "clients": args.clients,
            "duration_s": report.duration_s,
            "idle_samples": args.idle_samples,
            "target_ratio_max": TARGET_RATIO,
            "endpoints": rows,
            "figures": figures,
            "idle": idle.summary(0),
            "problems": report.problems(),
        },  # fmt: skip
    )
    print(f"results: {path}")


if __name__ == "__main__":
    main()

"""Every Prometheus metric nomaflow exposes, defined once (README, "Metrics").

Each process counts what happens in it: the web process its triggers and cancels, a worker
its steps and the runs they end, the scheduler its cron fires and reaped steps. Prometheus
adds them up across targets (`sum by (job, state) (rate(nomaflow_runs_finished_total[5m]))`).
Labels are bounded: a job id, a step type, a state, a queue, the kind of trigger; never a
run id or a user name.

The callers record after their transaction commits (runs/measures.py): a transaction that
runs.locking retries must count once. In a Celery worker the pool's processes write to
PROMETHEUS_MULTIPROC_DIR and the main process serves their sum (workers/metrics_server.py),
hence the gauges' `multiprocess_mode`.

This module imports no other app, so every app may record here.
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics
from prometheus_client.core import GaugeMetricFamily

# No `*_created` series beside each counter and histogram: they would double the series a
# scrape returns, and Prometheus' rate() needs none of them.
disable_created_metrics()

# Steps and runs take from a fraction of a second (a no-op) to hours (a nightly copy).
DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 1800, 3600, 7200, 21600)
# Dispatch is milliseconds when workers are free, seconds to minutes when all are busy.
WAIT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800)
# A cancel is a Redis message (sub-second), else a heartbeat (seconds), else a terminated process.
CANCEL_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
# A cron fire is late by a scheduler tick, a leader handover, or downtime.
FIRE_LAG_BUCKETS = (0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900, 3600)

# The only label names a metric may have (tests/test_metrics.py holds every metric to it).
LABELS = frozenset({"job", "type", "state", "queue", "trigger"})
TRIGGER_KINDS = frozenset({"cron", "user", "api", "cli"})

RUNS_TRIGGERED = Counter("nomaflow_runs_triggered", "Runs created, by job and kind of trigger.", ["job", "trigger"])
RUNS_STARTED = Counter("nomaflow_runs_started", "Runs that started: their first step was claimed.", ["job"])
RUNS_FINISHED = Counter("nomaflow_runs_finished", "Runs that ended, by job and final state.", ["job", "state"])
RUN_DURATION = Histogram(
    "nomaflow_run_duration_seconds", "From a run's start to its end, for runs that started.", ["job", "state"],
    buckets=DURATION_BUCKETS,
)  # fmt: skip
STEPS_FINISHED = Counter(
    "nomaflow_steps_finished", "Steps that ran and ended, by job, step type and state.", ["job", "type", "state"]
)
STEP_DURATION = Histogram(
    "nomaflow_step_duration_seconds", "From a step's claim by a worker to its end.", ["job", "type", "state"],
    buckets=DURATION_BUCKETS,
)  # fmt: skip
STEP_QUEUED = Histogram(
    "nomaflow_step_queued_seconds", "From a step's message being sent to its queue to a worker claiming the step.",
    ["job", "queue"], buckets=WAIT_BUCKETS,
)  # fmt: skip
STEPS_WORKER_LOST = Counter(
    "nomaflow_steps_worker_lost", "Steps failed as `worker lost`: their worker stopped heartbeating.", ["job", "type"]
)
CANCEL_LATENCY = Histogram(
    "nomaflow_cancel_latency_seconds", "From a run's cancel being accepted to the run's end.", ["job"],
    buckets=CANCEL_BUCKETS,
)  # fmt: skip
LOG_LINES = Counter("nomaflow_log_lines_written", "Log lines of steps stored, as they ran and with their end.")
SCHEDULER_FIRE_LAG = Histogram(
    "nomaflow_scheduler_fire_lag_seconds", "How late a cron fire was triggered after its scheduled time.", ["job"],
    buckets=FIRE_LAG_BUCKETS,
)  # fmt: skip
# 1 in the scheduler that leads, 0 elsewhere: `sum(nomaflow_scheduler_leader)` is the number of leaders.
SCHEDULER_LEADER = Gauge(
    "nomaflow_scheduler_leader", "1 while this scheduler process holds the leader lock.", multiprocess_mode="max"
)

# The fleet, read at scrape time by the web process (nomaflow/metrics_view.py).
QUEUE_DEPTH = "nomaflow_queue_depth"
QUEUE_WORKERS = "nomaflow_queue_workers"
WORKERS_UP = "nomaflow_workers_up"


def trigger_kind(triggered_by: str) -> str:
    """The bounded label of a run's `triggered_by`: `user:ann` → `user`; anything unknown → `other`."""
    kind = triggered_by.partition(":")[0]
    return kind if kind in TRIGGER_KINDS else "other"


def fleet_families(
    *, workers_up: int, workers_by_queue: Mapping[str, int], depths: Mapping[str, int]
) -> list[GaugeMetricFamily]:
    """The fleet's gauges from what Celery answered: live workers, and per queue the workers
    consuming it and the messages waiting in it (a queue with depth and no worker is stuck)."""
    up = GaugeMetricFamily(WORKERS_UP, "Celery workers that answered the last inspect broadcast.", value=workers_up)
    serving = GaugeMetricFamily(QUEUE_WORKERS, "Live workers consuming from each queue.", labels=["queue"])
    depth = GaugeMetricFamily(QUEUE_DEPTH, "Messages waiting in each queue of the broker.", labels=["queue"])
    for queue in sorted(workers_by_queue.keys() | depths.keys()):
        serving.add_metric([queue], workers_by_queue.get(queue, 0))
        if queue in depths:
            depth.add_metric([queue], depths[queue])
    return [up, serving, depth]

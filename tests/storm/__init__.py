"""A storm of concurrent API and websocket clients against a live nomaflow, and the
figures issue 13 asks for. Used by tests/integration/test_storm.py (which asserts them)
and bench/storm.py (which times each endpoint against the same endpoint idle).

    with running_server() as http, storm_setup(tmp_dir, http.base) as setup:
        report = run_storm(setup, clients=8, duration_s=60)

Figures (report.figures()):
- requests, 5xx (HTTP answers and websocket handshakes), transport errors;
- the most PostgreSQL connections the stack held at once (pg_stat_activity, every
  100 ms) against stack.connection_bound();
- deadlocks: pg_stat_database.deadlocks of the database over the storm, `deadlock
  detected` in each process's output and in the server log (lines of the stack's pids);
- runs not terminal DRAIN_S after the storm;
- duplicate step executions, two ways: a `tests.steps:record` step whose (run, step)
  is in the record file twice (every job has record steps), and a step whose framework
  start line (`step F0001 · type=…`) is twice in one run's stored log.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from django.contrib.auth.models import Group, User
from django.db.models import Count, QuerySet

from accounts.tokens import issue_token
from core.roles import EDITOR, OPERATOR
from runs.models import LogLine

from . import stack as stack_module
from .clients import FOLLOW_TIMEOUT_S, REQUEST_TIMEOUT_S, ApiClient, Stats, StormClient
from .stack import ConnectionFigures, ConnectionSampler, Stack

DRAIN_S = 30.0  # every run must be terminal this long after the storm
START_LINE = r"^step \S+ · type="  # the framework line that opens each step execution


def job_bodies(record_path: Path, http_base: str) -> list[dict[str, Any]]:
    """Three jobs with short steps (API.md's Job shape), each with record steps."""
    record = {"type": "python", "op_kwargs": {"callable": "tests.steps:record", "path": str(record_path)}}
    http = {"type": "http", "op_kwargs": {"connector": "storm-http", "url": f"{http_base}/api/ok"}}
    sleep = {"type": "python", "op_kwargs": {"callable": "workers.builtins:sleep", "seconds": 0.1}}
    lines = {"type": "python", "op_kwargs": {"callable": "workers.builtins:emit_lines", "count": 200, "size": 60}}
    steps = {"storm-python": [record, sleep, record], "storm-http": [http, record], "storm-logs": [lines, record]}
    return [
        {
            "id": job_id,
            "name": job_id,
            "max_concurrent_runs": 4,
            "params": {"tag": "storm"},
            "steps": [{"name": f"F{i:04d}", **step} for i, step in enumerate(job_steps, start=1)],
        }  # fmt: skip
        for job_id, job_steps in steps.items()
    ]


@dataclass
class StormSetup:
    stack: Stack
    tokens: list[str]  # one operator per client slot (the websocket cap is per user)
    job_ids: list[str]
    record_path: Path


def user_token(username: str, role: str) -> str:
    user = User.objects.create_user(username)
    user.groups.add(Group.objects.get_or_create(name=role)[0])
    return issue_token(user)


@contextmanager
def storm_setup(tmp_dir: Path, http_base: str, users: int = 8) -> Iterator[StormSetup]:
    """Users, the live stack, the connector and the three jobs (created through the API)."""
    record_path = tmp_dir / "executions.txt"
    editor = user_token("storm-editor", EDITOR)
    tokens = [user_token(f"storm-{i}", OPERATOR) for i in range(users)]
    stack = Stack().start()
    try:
        job_ids = create_jobs(stack.url, editor, record_path, http_base)
        yield StormSetup(stack, tokens, job_ids, record_path)
    finally:
        stack.stop()


def create_jobs(url: str, token: str, record_path: Path, http_base: str) -> list[str]:
    with httpx.Client(base_url=f"{url}/api/v1/", headers={"Authorization": f"Token {token}"}, timeout=30) as api:
        connector = {"name": "storm-http", "kind": "http", "url": f"{http_base}/api/"}
        api.post("connectors/", json=connector).raise_for_status()
        for body in job_bodies(record_path, http_base):
            api.post("jobs/", json=body).raise_for_status()
    return [body["id"] for body in job_bodies(record_path, http_base)]


@dataclass
class StormReport:
    clients: int
    duration_s: float
    stats: Stats
    connections: ConnectionFigures
    connection_bound: int
    deadlocks_pg_stat: int
    deadlocks_server_log: list[str] | None  # each deadlock's report in the server log
    deadlock_lines: dict[str, int]
    not_terminal: list[str]
    duplicates_record: dict[str, int]
    duplicates_start_line: dict[str, int]
    record_executions: int  # lines in the record file: the duplicate check saw this many executions
    start_lines: int  # step start lines stored: the other check saw this many
    five_hundreds_in_output: dict[str, int] = field(default_factory=dict)
    cpu_per_s: dict[str, float] = field(default_factory=dict)  # CPU seconds per storm second, each process
    ws_failed_runs: list[str] = field(default_factory=list)  # each failed follow, with its run's times
    retried: list[str] = field(default_factory=list)  # runs.locking's lines: which transaction was retried
    errors: list[str] = field(default_factory=list)  # errors and tracebacks the processes logged

    def figures(self) -> dict[str, Any]:
        """The whole-run figures, JSON-ready."""
        stats = self.stats
        return {
            "clients": self.clients, "duration_s": round(self.duration_s, 1),
            "requests": stats.requests, "requests_per_s": round(stats.requests / self.duration_s, 1),
            "server_errors_5xx": stats.server_error_count, "transport_errors": len(stats.transport_errors),
            "max_pg_connections": self.connections.max_total, "pg_connection_bound": self.connection_bound,
            "max_pg_connections_by_process": dict(sorted(self.connections.max_by_process.items())),
            "max_pg_connections_other": self.connections.max_unlabelled,
            "connection_samples": self.connections.samples,
            "deadlocks_pg_stat_database": self.deadlocks_pg_stat,
            "deadlocks_server_log": None if self.deadlocks_server_log is None else len(self.deadlocks_server_log),
            "deadlock_lines_in_process_output": sum(self.deadlock_lines.values()),
            "not_terminal_after_drain": len(self.not_terminal),
            "duplicate_step_executions": len(set(self.duplicates_record) | set(self.duplicates_start_line)),
            "record_step_executions": self.record_executions, "step_start_lines": self.start_lines,
            "ws_outcomes": dict(stats.ws_outcomes), "ws_contract_violations": len(stats.ws_violations),
            "idempotency_mismatches": len(stats.idempotency_mismatches),
            "internal_server_error_lines": sum(self.five_hundreds_in_output.values()),
            "cpu_per_s": self.cpu_per_s, "endpoints": stats.summary(self.duration_s),
        }  # fmt: skip

    def problems(self) -> dict[str, list[str]]:
        """A few examples of each thing that went wrong, for the failure message."""
        stats = self.stats
        return {
            "server_errors": stats.server_errors[:5], "transport_errors": stats.transport_errors[:5],
            "ws_violations": stats.ws_violations[:5], "idempotency": stats.idempotency_mismatches[:5],
            "not_terminal": self.not_terminal[:5], "ws_failures": self.ws_failed_runs[:5],
            "duplicates": [*list(self.duplicates_record)[:5], *list(self.duplicates_start_line)[:5]],
            "deadlock_lines": [f"{name}: {n}" for name, n in self.deadlock_lines.items() if n],
            "deadlocks": (self.deadlocks_server_log or [])[:3], "retried": self.retried[:5],
            "errors": self.errors[:3],
        }  # fmt: skip


def run_storm(setup: StormSetup, clients: int, duration_s: float, seed: int = 13, think_s: float = 0.0) -> StormReport:
    """`clients` StormClients for `duration_s` (each pausing `think_s` between actions; 0:
    back to back), then DRAIN_S for every run to end, then the figures. Connections are
    sampled from before the first request to the end of the drain."""
    stack, db_name = setup.stack, stack_module.database_name()
    sampler = ConnectionSampler(db_name)
    deadlocks_before, log_offset = stack_module.deadlock_counter(db_name), stack_module.server_log_size()
    sampler.start()
    stats = Stats()
    cpu_before, started = stack.cpu_seconds(), time.monotonic()
    storm(setup, stats, clients, duration_s, seed, think_s)
    duration = time.monotonic() - started
    cpu = {name: round((used - cpu_before.get(name, 0)) / duration, 2) for name, used in stack.cpu_seconds().items()}
    not_terminal = drain(stack.url, setup.tokens[0])
    ws_failed_runs = describe_failed_follows(stack.url, setup.tokens[0], stats)
    connections = sampler.finish()
    return StormReport(
        clients=clients, duration_s=duration, stats=stats, connections=connections,
        connection_bound=stack_module.connection_bound(),
        deadlocks_pg_stat=stack_module.deadlock_counter(db_name) - deadlocks_before,
        deadlocks_server_log=stack_module.server_log_deadlocks(log_offset, connections.pids),
        deadlock_lines=stack.output_counts(stack_module.DEADLOCK), not_terminal=not_terminal,
        duplicates_record=stack_module.duplicate_executions(setup.record_path),
        duplicates_start_line=duplicate_start_lines(setup.job_ids),
        record_executions=sum(stack_module.recorded_executions(setup.record_path).values()),
        start_lines=start_lines(setup.job_ids).count(),
        five_hundreds_in_output=stack.output_counts("Internal Server Error"), cpu_per_s=cpu,
        ws_failed_runs=ws_failed_runs, retried=stack.output_lines("; retrying"),
        errors=stack.output_errors(),
    )  # fmt: skip


def storm(setup: StormSetup, stats: Stats, clients: int, duration_s: float, seed: int, think_s: float) -> None:
    stop = threading.Event()
    apis = [ApiClient(setup.stack.url, setup.tokens[i % len(setup.tokens)], stats) for i in range(clients)]
    threads = [StormClient(api, setup.job_ids, seed + i, stop, think_s) for i, api in enumerate(apis)]
    for thread in threads:
        thread.start()
    stop.wait(duration_s)
    stop.set()
    for thread in threads:
        # A client finishes its action in progress: at most one request or follow timeout.
        thread.join(FOLLOW_TIMEOUT_S + 2 * REQUEST_TIMEOUT_S)


def drain(url: str, token: str) -> list[str]:
    """Ids of the runs still QUEUED or RUNNING DRAIN_S after the storm (polled through the API)."""
    api = ApiClient(url, token, Stats())  # its own Stats: checks are not storm traffic
    deadline = time.monotonic() + DRAIN_S
    try:
        while True:
            left = [run["id"] for state in ("QUEUED", "RUNNING") for run in api.runs_in(state)]
            if not left or time.monotonic() > deadline:
                return left  # not wait_for: what is left at the deadline is the figure
            time.sleep(0.2)
    finally:
        api.close()


def start_lines(job_ids: list[str]) -> QuerySet[LogLine]:
    return LogLine.objects.filter(run__job_id__in=job_ids, message__regex=START_LINE)


def describe_failed_follows(url: str, token: str, stats: Stats) -> list[str]:
    """What each follow without `end` saw, beside its run's times: a slow run, or a lost end?"""
    api = ApiClient(url, token, Stats())
    described = []
    for run_id, seen in list(stats.ws_failures.items())[:5]:
        run = api.run(run_id) or {}
        times = ", ".join(f"{key} {run.get(key)}" for key in ("state", "queued_at", "started_at", "finished_at"))
        described.append(f"run {run_id}: {seen}; run {times}")
    api.close()
    return described


def duplicate_start_lines(job_ids: list[str]) -> dict[str, int]:
    """(run, step) pairs whose start line is twice in the run's stored log."""
    pairs = start_lines(job_ids).values("run_id", "step").annotate(n=Count("id")).filter(n__gt=1)
    return {f"{pair['run_id']} {pair['step']}": pair["n"] for pair in pairs}

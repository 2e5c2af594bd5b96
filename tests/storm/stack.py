"""The live nomaflow a storm runs against, and the figures read from outside it.

Real daphne (DEBUG off), two Celery worker processes and the scheduler, on the database
Django is configured with, a Redis key prefix of their own (so another worker of the
same test session never takes the storm's steps) and one `application_name` each, so
pg_stat_activity tells whose PostgreSQL connections are whose.
"""

from __future__ import annotations

import os
import re
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import redis
from django.conf import settings

from tests.processes import Process, free_port, start_daphne, start_scheduler, start_worker, test_env

WORKERS = 2
WORKER_CONCURRENCY = 2
SCHEDULER_CONNECTIONS = 2  # its own loop and the leader lock's connection (issue 13's budget)
LABEL = "storm-"  # application_name prefix of every stack process
SAMPLE_INTERVAL_S = 0.1
# Debian's cluster log (stderr of pg_ctlcluster): read through pg_read_file, by the server.
PG_SERVER_LOG = "/var/log/postgresql/postgresql-15-main.log"
DEADLOCK = "deadlock detected"
TRACEBACK = "Traceback (most recent call last)"


def web_pool_max_size() -> int:
    """The web process's pool bound: NOMAFLOW_DB_POOL_MAX_SIZE as the settings read it."""
    return int(os.environ.get("NOMAFLOW_DB_POOL_MAX_SIZE") or 10)


def connection_bound(workers: int = WORKERS, concurrency: int = WORKER_CONCURRENCY) -> int:
    """The most PostgreSQL connections the stack may hold at once (issue 13):
    - web: its pool, NOMAFLOW_DB_POOL_MAX_SIZE, whatever the number of requests;
    - each worker process: two per pool child (the step's own thread and its DbThread
      for heartbeats and log flushes) plus one for the parent (Celery's Django fixup);
    - the scheduler: SCHEDULER_CONNECTIONS."""
    return web_pool_max_size() + workers * (concurrency * 2 + 1) + SCHEDULER_CONNECTIONS


def admin_dsn() -> str:
    """The `postgres` database of the same server: the sampler's own connection is never
    one of the counted ones."""
    db = settings.DATABASES["default"]
    return f"postgresql://{db['USER']}@{db['HOST']}:{db['PORT']}/postgres"


def database_name() -> str:
    return str(settings.DATABASES["default"]["NAME"])


class Stack:
    """Start with `start()`, always `stop()`."""

    def __init__(self, scheduler: bool = True) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.redis_prefix = f"{settings.REDIS_PREFIX}storm{os.getpid()}:"
        self.with_scheduler = scheduler
        self.processes: list[Process] = []

    def env(self, name: str) -> dict[str, str]:
        url = test_env()["DATABASE_URL"]
        return {
            "DATABASE_URL": f"{url}?application_name={LABEL}{name}",
            "NOMAFLOW_REDIS_PREFIX": self.redis_prefix,
            "DEBUG": "false",
        }

    def start(self) -> Stack:
        pool = str(web_pool_max_size())
        self.processes.append(start_daphne(self.port, NOMAFLOW_DB_POOL_MAX_SIZE=pool, **self.env("web")))
        for index in range(1, WORKERS + 1):
            name = f"worker{index}"
            env = self.env(name)
            self.processes.append(start_worker("default,notify", WORKER_CONCURRENCY, f"{LABEL}{name}", **env))
        if self.with_scheduler:
            self.processes.append(start_scheduler(NOMAFLOW_SCHEDULER_TICK_S="0.2", **self.env("scheduler")))
        return self

    def stop(self) -> None:
        for process in self.processes:
            process.stop()
        client = redis.Redis.from_url(settings.REDIS_URL)
        for key in client.scan_iter(match=f"{self.redis_prefix}*", count=1000):
            client.delete(key)

    def cpu_seconds(self) -> dict[str, float]:
        """CPU time used so far by each process and its children (a worker's pool), Linux only."""
        return {process.name: sum(map(_cpu_seconds, _tree(process.proc.pid))) for process in self.processes}

    def output_counts(self, text: str) -> dict[str, int]:
        """How often `text` appears in each process's output (daphne, workers, scheduler)."""
        return {process.name: process.output().count(text) for process in self.processes}

    def output_errors(self, context: int = 30) -> list[str]:
        """Each logged error or traceback of any process, with the `context` lines after it."""
        excerpts = []
        for process in self.processes:
            lines = process.output().splitlines()
            starts = [i for i, line in enumerate(lines) if TRACEBACK in line or " ERROR " in line]
            excerpts += [f"{process.name}:\n" + "\n".join(lines[max(0, i - 2) : i + context]) for i in starts]
        return excerpts

    def output_lines(self, text: str) -> list[str]:
        """Every line of any process's output holding `text`, named by its process."""
        return [
            f"{process.name}: {line}" for process in self.processes for line in process.output().splitlines()
            if text in line
        ]  # fmt: skip


def _tree(pid: int) -> list[int]:
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []
    return [pid, *(p for child in children for p in _tree(int(child)))]


def _cpu_seconds(pid: int) -> float:
    """utime + stime of a live process (fields 14 and 15 of /proc/<pid>/stat, after the name)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class ConnectionFigures:
    max_total: int = 0  # the most connections held at once by the stack's processes
    max_by_process: Counter[str] = field(default_factory=Counter)  # each one's own maximum
    max_unlabelled: int = 0  # connections to the database from anything else (this test process)
    samples: int = 0
    pids: set[int] = field(default_factory=set)  # every backend pid the stack used


class ConnectionSampler(threading.Thread):
    """Polls pg_stat_activity every SAMPLE_INTERVAL_S from its own connection (to another
    database) and keeps the maxima."""

    QUERY = "SELECT pid, application_name FROM pg_stat_activity WHERE datname = %s"

    def __init__(self, db_name: str) -> None:
        super().__init__(name="storm-connection-sampler", daemon=True)
        self.db_name, self.figures = db_name, ConnectionFigures()
        self.stop_event = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with psycopg.connect(admin_dsn(), autocommit=True) as conn:
                while not self.stop_event.is_set():
                    self.sample(conn.execute(self.QUERY, (self.db_name,)).fetchall())
                    self.stop_event.wait(SAMPLE_INTERVAL_S)
        except BaseException as exc:  # the test reports it: a sampler that died measured nothing
            self.error = exc

    def sample(self, rows: list[tuple[int, str]]) -> None:
        figures = self.figures
        labelled = Counter(name.removeprefix(LABEL) for _, name in rows if name.startswith(LABEL))
        figures.max_total = max(figures.max_total, sum(labelled.values()))
        figures.max_by_process |= labelled  # Counter union: the per-key maximum
        figures.max_unlabelled = max(figures.max_unlabelled, len(rows) - sum(labelled.values()))
        figures.pids.update(pid for pid, name in rows if name.startswith(LABEL))
        figures.samples += 1

    def finish(self) -> ConnectionFigures:
        self.stop_event.set()
        self.join(10)
        if self.error is not None:
            raise RuntimeError(f"the connection sampler failed: {self.error!r}") from self.error
        return self.figures


def scalar(conn: psycopg.Connection, sql: str, params: tuple[object, ...]) -> Any:
    row = conn.execute(sql, params).fetchone()  # type: ignore[arg-type]  # sql is one of ours
    return row[0] if row else None


def deadlock_counter(db_name: str) -> int:
    """pg_stat_database.deadlocks of `db_name` (fresh: the statistics snapshot is cleared)."""
    with psycopg.connect(admin_dsn(), autocommit=True) as conn:
        conn.execute("SELECT pg_stat_clear_snapshot()")
        return int(scalar(conn, "SELECT deadlocks FROM pg_stat_database WHERE datname = %s", (db_name,)) or 0)


def server_log_size() -> int | None:
    """The server log's size now (None when the server cannot read it: not Debian's layout)."""
    try:
        with psycopg.connect(admin_dsn(), autocommit=True) as conn:
            return int(scalar(conn, "SELECT (pg_stat_file(%s)).size", (PG_SERVER_LOG,)))
    except psycopg.Error:
        return None


def server_log_deadlocks(since: int | None, pids: set[int]) -> list[str] | None:
    """What the server logged since offset `since` of each deadlock it detected for one of
    `pids` (the line's `[pid]` prefix: the log is shared with every database on the server):
    the `deadlock detected` line with its DETAIL, CONTEXT and STATEMENT, which name both
    transactions' statements."""
    if since is None:
        return None
    with psycopg.connect(admin_dsn(), autocommit=True) as conn:
        size = int(scalar(conn, "SELECT (pg_stat_file(%s)).size", (PG_SERVER_LOG,)))
        text = str(scalar(conn, "SELECT pg_read_file(%s, %s, %s)", (PG_SERVER_LOG, since, size - since)))
    lines, reports = text.splitlines(), []
    for at, line in enumerate(lines):
        match = re.search(r"\[(\d+)\]", line)
        if DEADLOCK not in line or not match or int(match.group(1)) not in pids:
            continue
        tag = match.group(0)
        report = [line]
        for following in lines[at + 1 : at + 40]:
            if following.startswith((" ", "\t")) or tag in following:
                report.append(following)
        reports.append("\n".join(report))
    return reports


def recorded_executions(record_path: Path) -> Counter[tuple[str, ...]]:
    """How often each (run, step) ran, by `tests.steps:record`'s side effect: each execution
    of a record step appends `run step pid` to one file, from whichever worker process runs it."""
    lines = record_path.read_text().splitlines() if record_path.exists() else []
    return Counter(tuple(line.split()[:2]) for line in lines)


def duplicate_executions(record_path: Path) -> dict[str, int]:
    """(run, step) pairs of record steps that ran more than once (on two lines of the file)."""
    counts = recorded_executions(record_path)
    return {" ".join(pair): n for pair, n in counts.items() if n > 1}

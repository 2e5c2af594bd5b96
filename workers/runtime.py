"""The step runtime: `ctx` and `ctx.log`, as a step type or a python callable sees them."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import partial
from typing import Any

from django.conf import settings
from django.db import InterfaceError, OperationalError, close_old_connections, connection

from core import metrics, secrets
from core.destinations import is_own_database
from core.per_process import PerProcess
from runs import logstore
from runs.choices import LogLevel
from workers.steps.base import ConnectorConfig, StepCanceled

logger = logging.getLogger(__name__)
MAX_BATCH = 5000  # lines per insert when the flusher is behind
HIGH_WATER = 4 * MAX_BATCH  # lines buffered before ctx.log itself stores a batch


def on_live_connection(fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    """Call `fn`, a guarded database write or a read; if it fails on the connection
    (PostgreSQL restarted, an admin ended the session), drop a dead connection and call
    `fn` once more.

    Workers keep their connections from step to step, and a dead one only shows at its
    next use: without this, a worker's first step after a database restart would fail to
    start (its message already taken) and a running step could never record its end. A
    retry is safe when `fn` is one transaction (the failed try rolled back) or guarded
    writes that can run twice; `fn` must not commit a write and then fail on a later one
    it depends on (hence services.step_claim and step_started, retried apart)."""
    try:
        return fn(*args, **kwargs)
    except (OperationalError, InterfaceError) as exc:
        logger.warning("database error in %s (%s); retrying once", getattr(fn, "__name__", fn), exc)
        connection.close_if_unusable_or_obsolete()  # Django reconnects at the next query
        return fn(*args, **kwargs)


class DbThread:
    """The thread for every ORM call a step execution makes from its event loop.

    Django's ORM is synchronous and keeps one connection per thread. One long-lived
    thread per worker process keeps that connection open from step to step (subject to
    CONN_MAX_AGE), instead of paying for a new one every step.
    """

    _shared = PerProcess(lambda: ThreadPoolExecutor(max_workers=1, thread_name_prefix="nomaflow-db"))

    def __init__(self) -> None:
        self._executor: ThreadPoolExecutor = DbThread._shared()
        self._used = False

    async def __call__(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        self._used = True
        work = partial(on_live_connection, fn, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(self._executor, work)

    def call(self, fn: Callable[..., Any], /, *args: Any) -> Any:
        """Run `fn` on the DB thread and block for the result (from the loop or a step's thread)."""
        self._used = True
        return self._executor.submit(on_live_connection, fn, *args).result()

    async def close(self) -> None:
        """Drop the thread's connection if it broke or expired during the step. A step that
        never used the thread (most short steps: their lines go out with the step's end)
        skips the round trip to it, which costs more than a no-op step's work."""
        if self._used:
            await self(close_old_connections)


class StepLogger:
    """`ctx.log`: buffers lines (from the loop or from a step's thread) and flushes them
    every NOMAFLOW_LOG_FLUSH_INTERVAL_S or NOMAFLOW_LOG_FLUSH_LINES lines: persist first,
    then publish (runs.logstore.write).

    Backpressure: once HIGH_WATER lines wait, the logging call itself stores a batch
    before returning, so a producer faster than the database (an async loop that cannot
    await in `ctx.log`, or a thread) is slowed to the database's pace instead of
    growing the buffer without bound."""

    def __init__(
        self, *, run_id: str, step: str, debug: bool, db: DbThread, redact: secrets.Redactor | None = None
    ) -> None:
        self.run_id, self.step, self._debug, self._db = run_id, step, debug, db
        # The step execution's redactor: every secret resolved for the step, hidden in every line.
        self.redact = redact if redact is not None else secrets.Redactor()
        self._lines: list[logstore.Entry] = []
        self._lock = threading.Lock()
        self._flush_lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._closing = False
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._retry_at = 0.0  # after a failed backpressure write, leave it to the flusher a while

    def debug(self, message: Any) -> None:
        if self._debug:
            self._add(LogLevel.DEBUG, message)

    def info(self, message: Any) -> None:
        self._add(LogLevel.INFO, message)

    def warning(self, message: Any) -> None:
        self._add(LogLevel.WARNING, message)

    def error(self, message: Any) -> None:
        self._add(LogLevel.ERROR, message)

    def _add(self, level: str, message: Any) -> None:
        if self.redact:  # no secret resolved (most steps): not even a str() of the message here
            message = self.redact(message if isinstance(message, str) else str(message))
        line = logstore.entry(level, message, self.step)
        with self._lock:
            self._lines.append(line)
            waiting = len(self._lines)
        if waiting == settings.NOMAFLOW_LOG_FLUSH_LINES:  # wake the flusher once per fill
            if threading.get_ident() == self._loop_thread:
                self._wake.set()
            elif not self._loop.is_closed():
                self._loop.call_soon_threadsafe(self._wake.set)
        elif waiting >= HIGH_WATER and not self._closing and time.monotonic() >= self._retry_at:
            try:
                self._db.call(self._write_batch)
            except Exception:  # the flusher retries; the step must not fail for its log
                self._retry_at = time.monotonic() + 1
                logger.exception("log write for run %s failed; the flusher retries", self.run_id)

    async def run_flusher(self) -> None:
        """Flush on a timer or when the buffer fills, until `close()`."""
        while not self._closing:
            try:
                await asyncio.wait_for(self._wake.wait(), settings.NOMAFLOW_LOG_FLUSH_INTERVAL_S)
            except TimeoutError:
                pass
            self._wake.clear()
            if self._closing:
                return  # what is left goes out with the step's end, in one transaction
            try:
                await self.flush()
            except Exception:  # the database hiccuped: keep the lines and retry next tick
                logger.exception("log flush for run %s failed; retrying", self.run_id)

    async def close(self, flusher: asyncio.Task[None]) -> list[logstore.Entry]:
        """Stop the flusher and hand back the lines it has not stored yet, for the caller
        to store with the step's end. The flusher is never canceled: a cancel during a
        write would leave us unsure whether the batch was stored."""
        self._closing = True
        self._wake.set()
        await flusher
        with self._lock:
            leftover, self._lines = self._lines, []
        return leftover

    async def flush(self) -> None:
        async with self._flush_lock:
            while await self._db(self._write_batch):
                pass

    def _write_batch(self) -> bool:
        """Store the oldest MAX_BATCH lines; True if some were stored. Runs on the DB
        thread only, so batches are taken and stored one at a time, in buffer order."""
        with self._lock:
            batch, self._lines = self._lines[:MAX_BATCH], self._lines[MAX_BATCH:]
        if not batch:
            return False
        try:
            logstore.write(self.run_id, batch)
        except Exception:
            with self._lock:
                self._lines[:0] = batch  # not stored: keep them, in order, for the next try
            raise
        metrics.LOG_LINES.inc(len(batch))  # stored and committed (no transaction around the DB thread)
        return True


class LibraryLogs(logging.Handler):
    """Records sent through the standard `logging` module while a step runs, by its code or
    the libraries it calls (a driver's warning, a retry of an HTTP client), land in the
    step's log at their level, as `ctx.log` lines do, redacted the same way.

    A worker process runs one step at a time (Celery's prefork pool), so whichever thread
    a record comes from, it belongs to the process's current step. nomaflow's own records,
    Celery's and Django's stay in the worker's log: they are about the worker, not the step."""

    OWN = frozenset({"celery", "kombu", "amqp", "billiard", "django", "core", "jobs", "runs", "workers", "nomaflow"})

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.step: StepLogger | None = None
        self._format = logging.Formatter()

    def emit(self, record: logging.LogRecord) -> None:
        step = self.step
        if step is None or record.name.partition(".")[0] in self.OWN:
            return
        try:
            message = record.getMessage()
            if record.exc_info:
                message += "\n" + self._format.formatException(record.exc_info)
        except Exception:
            self.handleError(record)
            return
        line = message if record.name == "root" else f"{record.name}: {message}"
        if record.levelno >= logging.ERROR:
            step.error(line)
        elif record.levelno >= logging.WARNING:
            step.warning(line)
        elif record.levelno >= logging.INFO:
            step.info(line)
        else:
            step.debug(line)  # only in a DEBUG run, like ctx.log.debug


_library_logs = LibraryLogs()


@contextmanager
def library_logs_to(log: StepLogger) -> Iterator[None]:
    """Send library log records to `log` while the block runs (see LibraryLogs)."""
    root = logging.getLogger()
    if _library_logs not in root.handlers:  # Celery's logging set-up replaces the root's handlers
        root.addHandler(_library_logs)
    _library_logs.step = log
    try:
        yield
    finally:
        _library_logs.step = None


class StepContext:
    """What a step sees as `ctx`."""

    def __init__(
        self, *, run_id: str, step: str, params: dict[str, Any], op_kwargs: dict[str, Any],
        log: StepLogger, load_connector: Callable[[str], ConnectorConfig], attempt: int = 1,
    ) -> None:  # fmt: skip
        self.run_id, self.step, self.params, self.op_kwargs = run_id, step, params, op_kwargs
        self.log, self.attempt = log, attempt
        self._load_connector = load_connector
        self._canceled = threading.Event()

    def connector(self, name: str) -> ConnectorConfig:
        """The named connector with its `${NAME}` references resolved on this host; its
        secrets, literal or resolved, join the step's redactor before the step sees them."""
        return resolve_env(self._load_connector(name), self.log.redact)

    def check_canceled(self) -> None:
        """Raise StepCanceled if the step was told to stop; call it often in sync loops."""
        if self._canceled.is_set():
            raise StepCanceled(f"step {self.step} was canceled")

    check_cancelled = check_canceled  # the earlier spelling (DESIGN.md), kept for existing steps

    def cancel(self) -> None:
        self._canceled.set()


def resolve_env(connector: ConnectorConfig, redact: secrets.Redactor) -> ConnectorConfig:
    """The connector with `${NAME}` resolved from this worker's environment, by the rule of
    core.secrets (checked here again: a row may predate it, or have been written around the
    API); a postgres url must not reach nomaflow's own database."""
    try:
        url = secrets.resolve(connector.url, os.environ, redact)
        options = secrets.resolve(connector.options, os.environ, redact)
    except ValueError as exc:  # a name that may not be resolved
        raise PermissionError(f'connector "{connector.name}": {exc}') from None
    except LookupError as exc:  # a name not set on this worker
        raise LookupError(f'connector "{connector.name}": {exc}') from None
    for secret in secrets.secret_values(url, options):
        redact.add(secret)
    if connector.kind == "postgres" and is_own_database(url, resolve_names=True):
        raise PermissionError(
            f'connector "{connector.name}": {redact(secrets.mask_url(url))} is nomaflow\'s own database, '
            "which no step may use; point the connector at another database"
        )
    return ConnectorConfig(connector.name, connector.kind, url, options)

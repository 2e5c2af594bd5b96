"""The blocking half of `sql_copy` (see sql_copy.py): readers, writers and the COPY pipe.

It runs in a thread because, at a million rows, an await per row costs more than the
copy itself. Every connection it opens puts a way to interrupt it into `interrupts`,
which the event loop calls on cancel: a server-side cancel for PostgreSQL,
`interrupt()` for SQLite. The blocking calls then fail, and closing the connections
rolls the target back.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import decimal
import json
import re
import select
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import pq, sql

from core import sqlite_guard

from .base import ConnectorConfig, Context, run_in_thread

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")  # table, column and key names
PROGRESS_INTERVAL_S = 1.0
FLUSH_BYTES = 256 * 1024  # COPY data goes to the target in chunks of about this size
WAIT_S = 0.2  # longest blocking wait on a socket before looking at the cancel flag again
Interrupts = list[Callable[[], None]]
Batches = Iterator[list[Any]]
TARGET_COLUMNS = (
    "SELECT attname, atttypid FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped"
)


@dataclass
class CopyPlan:
    """What to copy where, checked and normalised from op_kwargs (sql_copy.plan)."""

    query: str
    parameters: Any
    table: list[str]  # [table] or [schema, table]
    mode: str
    key: list[str]
    columns: list[str] | None
    batch_size: int

    @property
    def table_name(self) -> str:
        return ".".join(self.table)


async def run_interruptible(interrupts: Interrupts, fn: Callable[..., Any], *args: Any) -> Any:
    """Run blocking `fn` in a thread; on cancel, call every function `fn` has put in
    `interrupts` (they make its blocking calls fail), then wait for the thread to end."""
    work = asyncio.ensure_future(run_in_thread(fn, *args))
    try:
        return await asyncio.shield(work)
    except asyncio.CancelledError:
        for interrupt in list(interrupts):
            with contextlib.suppress(Exception):  # already closed: nothing to stop
                interrupt()
        with contextlib.suppress(BaseException):  # its error is the cancel's consequence
            await work
        raise


@dataclass
class Progress:
    """Counts rows, logs `copied N rows · R rows/s` at most every PROGRESS_INTERVAL_S,
    and stops the copy at the step's cancel flag."""

    ctx: Context
    rows: int = 0
    started: float = field(default_factory=time.monotonic)
    next_at: float = field(default_factory=lambda: time.monotonic() + PROGRESS_INTERVAL_S)

    def add(self, rows: int) -> None:
        self.rows += rows
        self.ctx.check_canceled()
        now = time.monotonic()
        if now >= self.next_at:
            self.next_at = now + PROGRESS_INTERVAL_S
            self.ctx.log.info(f"copied {self.rows} rows · {self.rows / (now - self.started):.0f} rows/s")

    def done(self, rows: int, plan: CopyPlan) -> None:
        elapsed = time.monotonic() - self.started
        rate = f"{rows / max(elapsed, 1e-6):.0f} rows/s"
        self.ctx.log.info(f"copied {rows} rows into {plan.table_name} ({plan.mode}) in {elapsed:.1f} s · {rate}")


def copy_rows(
    ctx: Context, plan: CopyPlan, source: ConnectorConfig, target: ConnectorConfig, interrupts: Interrupts
) -> None:
    """Copy in one target transaction; an error or a cancel rolls it back."""
    progress = Progress(ctx)
    with ExitStack() as stack:
        if source.kind == target.kind == "postgres":
            src = _pg_connect(ctx, source, "source", stack, interrupts)
            tgt = _pg_connect(ctx, target, "target", stack, interrupts)
            rows = _pg_to_pg(plan, src, tgt, progress)
        else:
            names, batches = _read_batches(ctx, plan, source, stack, interrupts)
            write = _pg_write if target.kind == "postgres" else _sqlite_write
            rows = write(plan, _columns(plan, names), batches, _target_opener(ctx, target, stack, interrupts), progress)
    progress.done(rows, plan)


def _columns(plan: CopyPlan, names: list[str]) -> list[str]:
    """The target columns: `columns` if given, else the query's own column names."""
    columns = plan.columns or names
    if len(columns) != len(names):
        raise ValueError(f"the query returns {len(names)} columns but columns names {len(columns)}")
    missing = [name for name in plan.key if name not in columns]
    if missing:
        raise ValueError(f'key column "{missing[0]}" is not among the copied columns ({", ".join(columns)})')
    return columns


def _read_batches(
    ctx: Context, plan: CopyPlan, source: ConnectorConfig, stack: ExitStack, interrupts: Interrupts
) -> tuple[list[str], Batches]:
    """The source query's column names and an iterator over its rows, batch by batch."""
    cur: Any
    if source.kind == "postgres":
        conn = _pg_connect(ctx, source, "source", stack, interrupts)
        cur = stack.enter_context(conn.cursor(name="nomaflow_copy"))  # server-side: streams
        cur.execute(plan.query, plan.parameters)
    else:
        lite = sqlite_guard.connect(source, read_only=True, timeout=30, check_same_thread=False)
        stack.callback(lite.close)
        interrupts.append(lite.interrupt)
        cur = lite.execute(plan.query, plan.parameters or ())
    if cur.description is None:
        raise ValueError("the query returns no rows to copy; it must be a SELECT (or return rows)")
    return [column[0] for column in cur.description], iter(lambda: cur.fetchmany(plan.batch_size), [])


def _target_opener(ctx: Context, target: ConnectorConfig, stack: ExitStack, interrupts: Interrupts) -> Any:
    if target.kind == "postgres":
        return lambda: _pg_connect(ctx, target, "target", stack, interrupts)

    def open_sqlite() -> sqlite3.Connection:
        conn = sqlite_guard.connect(target, timeout=30, isolation_level=None, check_same_thread=False)
        stack.callback(conn.close)  # closing with the transaction open rolls it back
        interrupts.append(conn.interrupt)
        ctx.check_canceled()
        return conn

    return open_sqlite


# --- PostgreSQL -----------------------------------------------------------------------


def _pg_connect(
    ctx: Context, connector: ConnectorConfig, role: str, stack: ExitStack, interrupts: Interrupts
) -> psycopg.Connection[Any]:
    conn = psycopg.connect(connector.url, application_name=f"nomaflow {ctx.run_id} {ctx.step} {role}")
    stack.callback(conn.close)  # closing an uncommitted transaction rolls it back
    interrupts.append(lambda: conn.cancel_safe(timeout=2))
    if role == "source":
        conn.read_only = True
    ctx.check_canceled()
    return conn


def _pg_to_pg(plan: CopyPlan, src: psycopg.Connection[Any], tgt: psycopg.Connection[Any], progress: Progress) -> int:
    names, source_types = _pg_describe(src, plan)
    columns = _columns(plan, names)
    binary = source_types == _pg_target_types(tgt, plan, columns)
    progress.ctx.log.info(f"COPY {'binary' if binary else 'text'} of columns {', '.join(columns)}")
    into = _pg_prepare(tgt, plan, columns)
    options = sql.SQL(" (FORMAT BINARY)" if binary else "")
    query = psycopg.ClientCursor(src).mogrify(plan.query, plan.parameters)  # COPY takes no bound parameters
    copy_out = sql.SQL("COPY ({}) TO STDOUT{}").format(sql.SQL(query), options).as_bytes(src)
    copy_in = sql.SQL("COPY {} ({}) FROM STDIN{}").format(into, _identifiers(columns), options)
    with tgt.cursor() as cur, cur.copy(copy_in) as sink:
        rows = _pipe(src.pgconn, copy_out, sink, progress)
    _pg_finish(tgt, plan, columns, progress)
    return rows


def _pg_describe(src: psycopg.Connection[Any], plan: CopyPlan) -> tuple[list[str], list[int]]:
    probe = sql.SQL("SELECT * FROM ({}) AS nomaflow_source LIMIT 0").format(sql.SQL(plan.query))  # type: ignore[arg-type]  # a user's query is not a LiteralString
    with src.cursor() as cur:
        cur.execute(probe, plan.parameters)
        description = cur.description or []
        return [column.name for column in description], [column.type_code for column in description]


def _pg_target_types(tgt: psycopg.Connection[Any], plan: CopyPlan, columns: list[str]) -> list[int]:
    """The target columns' type OIDs; a clear error if the table or a column is missing."""
    try:
        found = dict(tgt.execute(TARGET_COLUMNS, [sql.Identifier(*plan.table).as_string(tgt)]).fetchall())
    except psycopg.errors.UndefinedTable:
        raise LookupError(f'table "{plan.table_name}" does not exist in the target database') from None
    missing = [name for name in columns if name not in found]
    if missing:
        known = ", ".join(found)
        raise LookupError(f'table "{plan.table_name}" has no column "{missing[0]}" (columns: {known})')
    return [found[name] for name in columns]


def _pg_prepare(tgt: psycopg.Connection[Any], plan: CopyPlan, columns: list[str]) -> sql.Composable:
    """Empty the table (overwrite) or make the staging table (merge); return where COPY goes."""
    table = sql.Identifier(*plan.table)
    if plan.mode == "overwrite":
        tgt.execute(sql.SQL("DELETE FROM {}").format(table))
        return table
    if plan.mode == "append":
        return table
    stage = sql.Identifier("nomaflow_stage")
    create = "CREATE TEMPORARY TABLE {} ON COMMIT DROP AS SELECT {} FROM {} WITH NO DATA"
    tgt.execute(sql.SQL(create).format(stage, _identifiers(columns), table))
    return stage


def _pg_finish(tgt: psycopg.Connection[Any], plan: CopyPlan, columns: list[str], progress: Progress) -> None:
    if plan.mode == "merge":
        updates = [name for name in columns if name not in plan.key]
        assignments = sql.SQL(", ").join(sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c)) for c in updates)
        action = sql.SQL("DO UPDATE SET {}").format(assignments) if updates else sql.SQL("DO NOTHING")
        upsert = sql.SQL("INSERT INTO {} ({}) SELECT {} FROM nomaflow_stage ON CONFLICT ({}) {}").format(
            sql.Identifier(*plan.table), _identifiers(columns), _identifiers(columns), _identifiers(plan.key), action
        )
        merged = tgt.execute(upsert).rowcount
        progress.ctx.log.info(f"merge on {', '.join(plan.key)}: {merged} rows inserted or updated")
    tgt.commit()


def _identifiers(names: Iterable[str]) -> sql.Composable:
    return sql.SQL(", ").join(sql.Identifier(name) for name in names)


def _pipe(pgconn: pq.abc.PGconn, statement: bytes, sink: psycopg.Copy, progress: Progress) -> int:
    """Send the source's COPY data to `sink` in chunks of FLUSH_BYTES; return the row count.

    libpq's own calls are used, not psycopg's Copy.read(): one call per row, and
    never blocking (a blocking libpq call holds the GIL, which would freeze the step's
    event loop: heartbeats, log flushes and the cancel watcher)."""
    pgconn.send_query(statement)
    _flush(pgconn, progress)
    _check(_next_result(pgconn, progress), pq.ExecStatus.COPY_OUT)
    buffer, pending = bytearray(), 0
    while True:
        nbytes, data = pgconn.get_copy_data(1)
        if nbytes > 0:
            buffer += data
            pending += 1
            if len(buffer) >= FLUSH_BYTES:
                sink.write(buffer)
                progress.add(pending)
                buffer, pending = bytearray(), 0
        elif nbytes == 0:
            progress.add(pending)
            pending = 0
            _wait(pgconn, progress)
        else:
            break
    if buffer:
        sink.write(buffer)
    result = _check(_next_result(pgconn, progress), pq.ExecStatus.COMMAND_OK)
    while _next_result(pgconn, progress) is not None:
        pass
    return result.command_tuples or 0


def _wait(pgconn: pq.abc.PGconn, progress: Progress) -> None:
    progress.add(0)
    select.select([pgconn.socket], [], [], WAIT_S)  # releases the GIL while it waits
    pgconn.consume_input()


def _flush(pgconn: pq.abc.PGconn, progress: Progress) -> None:
    while pgconn.flush():
        progress.add(0)
        select.select([], [pgconn.socket], [], WAIT_S)


def _next_result(pgconn: pq.abc.PGconn, progress: Progress) -> pq.abc.PGresult | None:
    while pgconn.is_busy():
        _wait(pgconn, progress)
    return pgconn.get_result()


def _check(result: pq.abc.PGresult | None, status: pq.ExecStatus) -> pq.abc.PGresult:
    if result is None:
        raise psycopg.OperationalError("the source connection returned no result for COPY")
    if result.status != status:
        raise psycopg.errors.error_from_result(result, encoding="utf-8")
    return result


def _pg_write(plan: CopyPlan, columns: list[str], batches: Batches, connect: Any, progress: Progress) -> int:
    """Rows from a non-PostgreSQL source into PostgreSQL: text COPY, psycopg adapts the values."""
    tgt = connect()
    _pg_target_types(tgt, plan, columns)
    into = _pg_prepare(tgt, plan, columns)
    rows = 0
    with tgt.cursor() as cur, cur.copy(sql.SQL("COPY {} ({}) FROM STDIN").format(into, _identifiers(columns))) as sink:
        for batch in batches:
            for row in batch:
                sink.write_row(row)
            rows += len(batch)
            progress.add(len(batch))
    _pg_finish(tgt, plan, columns, progress)
    return rows


# --- SQLite ---------------------------------------------------------------------------


def _sqlite_write(plan: CopyPlan, columns: list[str], batches: Batches, connect: Any, progress: Progress) -> int:
    conn = connect()
    table = ".".join(_quote(part) for part in plan.table)
    _sqlite_check_columns(conn, plan, columns)
    conn.execute("BEGIN IMMEDIATE")  # take the write lock now, not halfway through
    if plan.mode == "overwrite":
        conn.execute(f"DELETE FROM {table}")
    insert = _sqlite_insert(table, plan, columns)
    rows = 0
    for batch in batches:
        conn.executemany(insert, [tuple(_sqlite_value(value) for value in row) for row in batch])
        rows += len(batch)
        progress.add(len(batch))
    conn.execute("COMMIT")
    return rows


def _sqlite_check_columns(conn: sqlite3.Connection, plan: CopyPlan, columns: list[str]) -> None:
    schema, name = ([_quote(plan.table[0])] if len(plan.table) == 2 else []), _quote(plan.table[-1])
    pragma = f"PRAGMA {schema[0] + '.' if schema else ''}table_info({name})"
    found = [row[1] for row in conn.execute(pragma)]
    if not found:
        raise LookupError(f'table "{plan.table_name}" does not exist in the target database')
    missing = [column for column in columns if column not in found]
    if missing:
        raise LookupError(f'table "{plan.table_name}" has no column "{missing[0]}" (columns: {", ".join(found)})')


def _sqlite_insert(table: str, plan: CopyPlan, columns: list[str]) -> str:
    names = ", ".join(_quote(name) for name in columns)
    insert = f"INSERT INTO {table} ({names}) VALUES ({', '.join('?' * len(columns))})"
    if plan.mode != "merge":
        return insert
    updates = [f"{_quote(name)} = excluded.{_quote(name)}" for name in columns if name not in plan.key]
    action = f"DO UPDATE SET {', '.join(updates)}" if updates else "DO NOTHING"
    return f"{insert} ON CONFLICT ({', '.join(_quote(name) for name in plan.key)}) {action}"


def _quote(name: str) -> str:
    """Double-quote an SQLite identifier, refusing anything outside the strict pattern
    (column names taken from the source query are checked here too)."""
    if not IDENTIFIER.match(name):
        raise ValueError(f'"{name:.80}" is not a usable SQLite column name; alias it in the query or pass columns')
    return f'"{name}"'


def _sqlite_value(value: Any) -> Any:
    """Values sqlite3 cannot store as they come from PostgreSQL, as text SQLite understands."""
    if isinstance(value, decimal.Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, dict | list):
        return json.dumps(value)
    if isinstance(value, memoryview):
        return bytes(value)
    return value

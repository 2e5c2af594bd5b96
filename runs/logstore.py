"""Persisting log lines: seq allocation, the batched insert, then the publish.

`seq` is allocated with one `UPDATE … SET last_seq = last_seq + n RETURNING last_seq`,
whose row lock also orders concurrent writers to the same run, so lines commit in seq
order. On PostgreSQL a small batch is that UPDATE and its INSERT in one statement, a big
one a COPY; other databases get a batched INSERT.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, NamedTuple

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from . import events
from .choices import RunState
from .models import LogLine, Run
from .serializers import iso
from .transitions import SqlNames

TRUNCATED = " …[truncated]"
_RUN, _LINE = SqlNames(Run), SqlNames(LogLine)
# Every column of a stored line but its id, in the order the rows below are built
# (tests/runs/test_logstore.py fails if LogLine gains one).
LINE_FIELDS = ("run", "seq", "ts", "level", "step", "message")
_LINE_COLUMNS = ", ".join(getattr(_LINE, field) for field in LINE_FIELDS)
_TAKE_SEQS_SQL = (
    f"UPDATE {_RUN.table} SET {_RUN.last_seq} = {_RUN.last_seq} + %s WHERE {_RUN.id} = %s RETURNING {_RUN.last_seq}"
)
ONE_STATEMENT_MAX_LINES = 50  # up to here one INSERT round trip beats COPY's; see _allocate_and_insert
_UNSAFE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


class Entry(NamedTuple):
    ts: datetime
    level: str
    step: str
    message: str


def entry(level: str, message: str, step: str = "") -> Entry:
    return Entry(timezone.now(), level, step, sanitize(message))


def sanitize(message: Any) -> str:
    """Make a message storable and safe to show: no control characters, bounded size."""
    text = message if isinstance(message, str) else str(message)
    text = _UNSAFE.sub("\N{REPLACEMENT CHARACTER}", text.encode("utf-8", "replace").decode("utf-8"))
    limit = settings.NOMAFLOW_LOG_LINE_MAX_BYTES
    data = text.encode("utf-8")
    if len(data) > limit:
        text = data[: limit - len(TRUNCATED.encode())].decode("utf-8", "ignore") + TRUNCATED
    return text


def write(run_id: str, entries: list[Entry]) -> list[dict[str, Any]]:
    """Persist `entries` (in order) and then publish them; returns the stored lines.

    Publishing never raises, so a caller that retries on error never stores twice."""
    lines = persist(run_id, entries)
    events.publish_log(run_id, lines)
    return lines


def persist(run_id: str, entries: list[Entry]) -> list[dict[str, Any]]:
    if not entries:
        return []
    # No savepoint when nested (a step's end): it would cost two round trips, and a
    # failure here fails the caller's whole transaction anyway.
    with transaction.atomic(savepoint=False):
        if connection.vendor == "postgresql" and len(entries) <= ONE_STATEMENT_MAX_LINES:
            first = _allocate_and_insert(run_id, entries)
        else:
            first = _allocate(run_id, len(entries))
            _bulk_insert([(run_id, first + i, e.ts, e.level, e.step, e.message) for i, e in enumerate(entries)])
    return [line_dict(first + i, e.ts, e.level, e.step, e.message) for i, e in enumerate(entries)]


# A stored line as every reader takes it, in this order: the API, logs.txt, the websocket,
# the CLI and the Run page all read `values_list(*READ_FIELDS)` and format it below.
READ_FIELDS = ("seq", "ts", "level", "step", "message")


def line_dict(seq: int, ts: datetime, level: str, step: str, message: str) -> dict[str, Any]:
    """A line as the API and the websocket send it (API.md, LogLine)."""
    return {"seq": seq, "ts": iso(ts), "level": level, "step": step, "message": message}


def clock(ts: datetime) -> str:
    """`HH:MM:SS.mmm` in UTC, the time of a line in text."""
    ts = ts.astimezone(UTC)
    return f"{ts:%H:%M:%S}.{ts.microsecond // 1000:03d}"


def end_line(step_name: str, state: str, duration_s: float) -> str:
    """The framework line that closes a step: `step F0004 · SUCCEEDED · 1.2 s`."""
    return f"step {step_name} · {state} · {duration_s:.1f} s"


def cancel_line(by: str, state: str) -> str:
    """The last line of a run whose cancel was accepted: what the cancel did to the work."""
    if state == RunState.SUCCEEDED:
        return f"cancel by {by} arrived after the last step finished"
    return f"run cancelled by {by}"


def text_line(seq: int, ts: datetime, level: str, step: str, message: str) -> str:
    """`HH:MM:SS.mmm LEVEL [step] message` (logs.txt, `manage.py tail`); run-level lines
    have no `[step]`."""
    where = f" [{step}]" if step else ""
    return f"{clock(ts)} {level}{where} {message}"


def _allocate(run_id: str, count: int) -> int:
    """Take `count` seqs for the run; returns the first."""
    with connection.cursor() as cursor:
        cursor.execute(_TAKE_SEQS_SQL, [count, run_id])
        return int(cursor.fetchone()[0]) - count + 1


def _allocate_and_insert(run_id: str, entries: list[Entry]) -> int:
    """Take the seqs and insert the lines in one statement (PostgreSQL); returns the first seq.

    A step's own lines mostly arrive a few at a time (its start and end lines ride with
    its end), where three round trips (seq UPDATE, then COPY's two) cost more than the
    rows. Batches over ONE_STATEMENT_MAX_LINES go the COPY way."""
    rows = ", ".join(["(%s, %s, %s, %s, %s)"] * len(entries))
    sql = f"""
        WITH taken (last_seq) AS ({_TAKE_SEQS_SQL})
        INSERT INTO {_LINE.table} ({_LINE_COLUMNS})
        SELECT %s, taken.last_seq - %s + line.n, line.ts, line.level, line.step, line.message
        FROM taken, (VALUES {rows}) AS line (n, ts, level, step, message)
        RETURNING {_LINE.seq}
    """
    params: list[Any] = [len(entries), run_id, run_id, len(entries)]
    for n, e in enumerate(entries, start=1):
        params += [n, e.ts, e.level, e.step, e.message]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        seqs = [seq for (seq,) in cursor.fetchall()]
    if not seqs:
        raise LookupError(f"run {run_id} does not exist; its log lines were not stored")
    return min(seqs)


def _bulk_insert(rows: list[tuple[Any, ...]]) -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            copy_sql = f"COPY {_LINE.table} ({_LINE_COLUMNS}) FROM STDIN"
            with cursor.cursor.copy(copy_sql) as copy:
                for row in rows:
                    copy.write_row(row)
    else:
        LogLine.objects.bulk_create(
            [LogLine(run_id=r[0], seq=r[1], ts=r[2], level=r[3], step=r[4], message=r[5]) for r in rows],
            batch_size=500,
        )

"""Persisting log lines: seq allocation, the batched insert, then the publish.

`seq` is allocated with one `UPDATE … SET last_seq = last_seq + n RETURNING last_seq`,
whose row lock also orders concurrent writers to the same run, so lines commit in seq
order. PostgreSQL gets a COPY; other databases a batched INSERT.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, NamedTuple

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from . import events
from .models import LogLine
from .serializers import iso

TRUNCATED = " …[truncated]"
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
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(
                "UPDATE runs_run SET last_seq = last_seq + %s WHERE id = %s RETURNING last_seq",
                [len(entries), run_id],
            )
            last_seq = cursor.fetchone()[0]
        first = last_seq - len(entries) + 1
        rows = [(run_id, first + i, e.ts, e.level, e.step, e.message) for i, e in enumerate(entries)]
        _insert(rows)
    return [line_dict(seq, ts, level, step, message) for _, seq, ts, level, step, message in rows]


def line_dict(seq: int, ts: datetime, level: str, step: str, message: str) -> dict[str, Any]:
    return {"seq": seq, "ts": iso(ts), "level": level, "step": step, "message": message}


def _insert(rows: list[tuple[Any, ...]]) -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            copy_sql = "COPY runs_logline (run_id, seq, ts, level, step, message) FROM STDIN"
            with cursor.cursor.copy(copy_sql) as copy:
                for row in rows:
                    copy.write_row(row)
    else:
        LogLine.objects.bulk_create(
            [LogLine(run_id=r[0], seq=r[1], ts=r[2], level=r[3], step=r[4], message=r[5]) for r in rows],
            batch_size=500,
        )

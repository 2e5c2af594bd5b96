"""Process logs as one JSON object per line (LOG_FORMAT=json, see settings.LOGGING), for log
shippers that index fields instead of parsing text; and the run and step a record belongs to.

The worker engine wraps each step's execution in `log_context(run_id=…, step_run_id=…)`: every
record logged inside it (nomaflow's own, a library's, a step's `logging` calls) carries both
ids. A record may also carry them itself (`logger.info(…, extra={"run_id": …})`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

CONTEXT_FIELDS = ("run_id", "step_run_id")

# Process-wide, not a contextvar: a worker process executes one step at a time (the prefork
# pool; a step that will not stop ends its process), and the step's work runs in threads of
# its own (a sync step's thread, the DB thread) that a contextvar would not follow. Replaced,
# never mutated, so a thread formatting a record reads a whole dict.
_fields: dict[str, Any] = {}


@contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Add `fields` (run_id, step_run_id) to every record this process logs while the block runs."""
    global _fields
    saved = _fields
    _fields = {**saved, **fields}
    try:
        yield
    finally:
        _fields = saved


class JsonFormatter(logging.Formatter):
    """`{"time", "level", "logger", "message"}`, then run_id / step_run_id when known and the
    formatted `exception` (and `stack`) when the record has one."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": _iso(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **_fields,
        }
        for name in CONTEXT_FIELDS:
            if name in record.__dict__:
                entry[name] = record.__dict__[name]
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        # default=str: a record's extra may hold anything; a log line must never raise.
        return json.dumps(entry, ensure_ascii=False, default=str)


def _iso(created: float) -> str:
    """ISO 8601 in UTC with milliseconds and `Z`, as the API writes times."""
    ts = datetime.fromtimestamp(created, UTC)
    return f"{ts:%Y-%m-%dT%H:%M:%S}.{ts.microsecond // 1000:03d}Z"

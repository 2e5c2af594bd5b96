"""Printing a run's log for the CLI (`trigger --follow`, `tail`), by polling the database.

Lines are read with `seq > after`, so following costs one indexed query per poll and
never prints a line twice. A later issue adds a remote mode (websocket / REST) here.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TextIO

from django.conf import settings
from django.utils import timezone

from .choices import TERMINAL_RUN_STATES, RunState
from .models import LogLine, Run
from .selectors import log_lines

POLL_INTERVAL_S = 0.2
BATCH = 1000


def format_line(line: LogLine) -> str:
    """`HH:MM:SS.mmm LEVEL [step] message`; run-level lines have no `[step]`."""
    ts = timezone.localtime(line.ts).strftime("%H:%M:%S.%f")[:-3]
    step = f" [{line.step}]" if line.step else ""
    return f"{ts} {line.level}{step} {line.message}"


def run_url(run: Run) -> str:
    return f"{settings.NOMAFLOW_BASE_URL.rstrip('/')}/nomaflow/runs/{run.id}"


def exit_code(state: str) -> int:
    """The follow commands' rule: 0 for a SUCCEEDED run, 1 for any other end."""
    return 0 if state == RunState.SUCCEEDED else 1


def print_lines(run: Run, out: TextIO, *, after: int = 0) -> int:
    """Print every stored line after `after`; return the last seq printed."""
    for line in _lines_after(run, after):
        out.write(format_line(line) + "\n")
        after = line.seq
    out.flush()
    return after


def follow(run: Run, out: TextIO, *, after: int = 0, interval: float = POLL_INTERVAL_S) -> str:
    """Print lines as they are stored until the run is terminal; return its final state."""
    while True:
        # State first, lines second: lines stored before the run ended are then all read.
        state = Run.objects.values_list("state", flat=True).get(pk=run.pk)
        after = print_lines(run, out, after=after)
        if state in TERMINAL_RUN_STATES:
            # One more look for a closing line written just after the state change
            # (e.g. "run cancelled by …").
            time.sleep(interval)
            print_lines(run, out, after=after)
            return state
        time.sleep(interval)


def follow_and_exit(run: Run, out: TextIO, err: TextIO) -> None:
    """Follow the run to its end, then exit 0 if it SUCCEEDED, 1 otherwise (raises SystemExit)."""
    try:
        state = follow(run, out)
    except KeyboardInterrupt:
        err.write(f"stopped following; the run goes on (python manage.py tail {run.pk} --follow)\n")
        raise SystemExit(130) from None
    out.write(f"run {run.pk} {state}\n")
    out.flush()
    code = exit_code(state)
    if code:
        raise SystemExit(code)


def _lines_after(run: Run, after: int) -> Iterator[LogLine]:
    while True:
        batch = list(log_lines(run_id=run.pk, after=after)[:BATCH])
        yield from batch
        if len(batch) < BATCH:
            return
        after = batch[-1].seq

"""`python manage.py tail`: print a run's log, or follow it to the end."""

from __future__ import annotations

from datetime import datetime, timezone as dt_timezone
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from runs import logstore
from runs.choices import RunState
from runs.follow import format_line
from runs.models import LogLine, Run
from runs.services import run_trigger
from tests.factories import make_job


def tail(*args: str) -> str:
    out = StringIO()
    call_command("tail", *args, stdout=out)
    return out.getvalue()


def finished_run_with_lines(state: RunState, *messages: str) -> Run:
    job = make_job({"callable": "workers.builtins:noop"})
    run, _ = run_trigger(job_id=job.id, triggered_by="cli")
    logstore.persist(run.id, [logstore.entry("INFO", message, "F0001") for message in messages])
    run.finish(state)
    return run


def test_format_line_is_time_level_step_message() -> None:
    ts = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=dt_timezone.utc)
    step_line = LogLine(seq=1, ts=ts, level="INFO", step="F0004", message="hi")
    run_line = LogLine(seq=2, ts=ts, level="ERROR", step="", message="run")
    assert format_line(step_line) == "03:04:05.678 INFO [F0004] hi"
    assert format_line(run_line) == "03:04:05.678 ERROR run"


def test_tail_prints_every_line_in_order(db: None) -> None:
    run = finished_run_with_lines(RunState.FAILED, "one", "two", "three")
    assert [line.rsplit(" ", 1)[1] for line in tail(run.id).splitlines()] == ["one", "two", "three"]


def test_tail_of_unknown_run_says_how_to_get_a_run_id(db: None) -> None:
    with pytest.raises(CommandError, match=r'run "nope" does not exist; .*trigger'):
        tail("nope")


def test_follow_of_a_finished_run_exits_with_its_outcome(db: None) -> None:
    succeeded = finished_run_with_lines(RunState.SUCCEEDED, "done")
    assert tail(succeeded.id, "--follow").splitlines()[-1] == f"run {succeeded.id} SUCCEEDED"
    failed = finished_run_with_lines(RunState.FAILED, "oops")
    with pytest.raises(SystemExit) as exit_info:
        tail(failed.id, "--follow")
    assert exit_info.value.code == 1


def test_follow_prints_lines_as_they_come_until_the_run_ends(worker: object) -> None:
    job = make_job(
        {"callable": "workers.builtins:sleep", "seconds": 0.5},
        {"callable": "workers.builtins:emit_lines", "count": 1500, "size": 20},
    )
    run, _ = run_trigger(job_id=job.id, triggered_by="cli")
    lines = tail(run.id, "--follow").splitlines()
    seqs_printed = len(lines) - 1
    assert seqs_printed == Run.objects.get(pk=run.pk).last_seq  # every line once, batches over 1000 included
    assert "line 1500 " in lines[-3]
    assert lines[-1] == f"run {run.id} SUCCEEDED"

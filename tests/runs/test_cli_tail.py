"""`python manage.py tail`: print a run's log, or follow it to the end."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from io import StringIO

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command

from accounts.tokens import issue_token
from runs import logstore
from runs.choices import RunState
from runs.follow import format_line
from runs.models import LogLine, Run
from runs.services import run_trigger
from tests.factories import JobFactory, make_job
from tests.processes import free_port, start_daphne


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
    ts = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
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


@pytest.fixture
def daphne(transactional_db: None) -> Iterator[str]:
    """daphne on the session's Redis and test database; yields its base URL."""
    port = free_port()
    process = start_daphne(port)
    yield f"http://127.0.0.1:{port}"
    process.stop()


def undispatched_run(*messages: str) -> Run:
    """A finished run with `messages`, never sent to a worker (the session's may be running)."""
    run = Run.objects.create(job=JobFactory(), state=RunState.SUCCEEDED, triggered_by="cli")
    logstore.persist(run.id, [logstore.entry("INFO", message, "F0001") for message in messages])
    return run


def token_of(user: User) -> str:
    return issue_token(user)


def test_remote_follow_prints_every_line_once_and_exits_with_the_outcome(
    worker: object, daphne: str, viewer: User
) -> None:
    job = make_job(
        {"callable": "workers.builtins:sleep", "seconds": 0.5},
        {"callable": "workers.builtins:emit_lines", "count": 3000, "size": 20},
        {"callable": "workers.builtins:fail"},
    )
    run, _ = run_trigger(job_id=job.id, triggered_by="cli")
    with pytest.raises(SystemExit) as exit_info:
        out = StringIO()
        call_command("tail", run.id, "--follow", "--url", daphne, "--token", token_of(viewer), stdout=out)
    assert exit_info.value.code == 1
    lines = out.getvalue().splitlines()
    run.refresh_from_db()
    assert lines[-1] == f"run {run.id} FAILED"
    assert lines[:-1] == [format_line(line) for line in LogLine.objects.filter(run=run).order_by("seq")]


def test_remote_tail_without_follow_prints_the_stored_log(daphne: str, viewer: User) -> None:
    run = undispatched_run("one", "two")
    printed = tail(run.id, "--url", daphne, "--token", token_of(viewer)).splitlines()
    assert [line.rsplit(" ", 1)[1] for line in printed] == ["one", "two"]


def test_remote_follow_with_a_token_that_may_not_see_the_run_says_so(daphne: str, outsider: User) -> None:
    run = undispatched_run("one")
    with pytest.raises(CommandError, match="lacks the viewer role"):
        tail(run.id, "--follow", "--url", daphne, "--token", token_of(outsider))


def test_remote_mode_needs_a_token(db: None) -> None:
    with pytest.raises(CommandError, match="--url needs --token"):
        tail("whatever", "--url", "http://127.0.0.1:1", "--token", "")

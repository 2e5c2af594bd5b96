"""`python manage.py cancel` and `python manage.py replay`."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command

from core.models import AuditEvent
from runs.models import Run
from runs.services import run_trigger
from tests.factories import end_as, make_job
from tests.processes import Process, wait_for, wait_terminal

NOOP = {"callable": "workers.builtins:noop"}
IDLE = {"callable": "workers.builtins:noop", "queue": "idle"}  # no test worker consumes "idle"


def command(name: str, *args: str) -> str:
    out = StringIO()
    call_command(name, *args, stdout=out)
    return out.getvalue()


def queued_run(*steps: dict[str, Any], **job_fields: Any) -> Run:
    job = make_job(*(steps or (IDLE, IDLE)), **job_fields)
    return run_trigger(job_id=job.id, triggered_by="api")[0]


def finished_run(*states: str, **job_fields: Any) -> Run:
    """A run of NOOP steps that ended in `states`, through the guarded transitions."""
    run = queued_run(*[dict(NOOP) for _ in states], **job_fields)
    return end_as(run, *states)


def replays_of(run: Run) -> list[Run]:
    return list(Run.objects.filter(replay_of=run))


# --- cancel ----------------------------------------------------------------------------------


def test_cancel_of_a_queued_run_prints_canceled_by_cli(db: None) -> None:
    run = queued_run()
    output = command("cancel", run.id)
    assert output.strip() == f"run {run.id} CANCELED (canceled by cli)"
    run.refresh_from_db()
    assert (run.state, run.canceled_by) == ("CANCELED", "cli")
    assert AuditEvent.objects.get(action="cancel").actor == "cli"


def test_cancel_with_user_records_the_person(operator: User) -> None:
    run = queued_run()
    command("cancel", run.id, "--user", "otto")
    run.refresh_from_db()
    assert run.canceled_by == "user:otto"
    assert list(run.steps.values_list("reason", flat=True)) == ["canceled by user:otto"] * 2


def test_cancel_with_an_unknown_user_is_an_error_and_changes_nothing(db: None) -> None:
    run = queued_run()
    with pytest.raises(CommandError, match='user "ghost" does not exist'):
        command("cancel", run.id, "--user", "ghost")
    run.refresh_from_db()
    assert (run.state, run.canceled_by) == ("QUEUED", None)


def test_cancel_of_a_running_run_says_it_is_stopping(db: None) -> None:
    run = queued_run()
    run.mark_running()
    run.steps.order_by("position").first().claim(worker="w")
    output = command("cancel", run.id)
    assert f"run {run.id} RUNNING, cancel requested by cli" in output
    assert f"python manage.py tail {run.id} --follow" in output


def test_cancel_of_an_unknown_run_is_an_error(db: None) -> None:
    with pytest.raises(CommandError, match='run "nope" does not exist'):
        command("cancel", "nope")


def test_cancel_of_a_finished_run_is_an_error_and_changes_nothing(db: None) -> None:
    run = finished_run("SUCCEEDED")
    with pytest.raises(CommandError, match=f"run {run.id} already ended SUCCEEDED"):
        command("cancel", run.id)
    run.refresh_from_db()
    assert (run.state, run.canceled_by) == ("SUCCEEDED", None)
    assert not AuditEvent.objects.filter(action="cancel").exists()


# --- replay ----------------------------------------------------------------------------------


def test_replay_prints_the_new_run_and_links_back(db: None) -> None:
    original = finished_run("SUCCEEDED")
    output = command("replay", original.id)
    (replay,) = replays_of(original)
    assert replay.triggered_by == "cli" and replay.parameters == original.parameters
    assert output.strip().startswith(f"run {replay.id} queued (replay of {original.id}): ")
    assert output.strip().endswith(f"/nomaflow/runs/{replay.id}")


def test_replay_flags_become_overrides(db: None) -> None:
    job = make_job(NOOP, {**NOOP, "enabled": False}, NOOP, params={"n": 1, "region": "north"})
    original = run_trigger(job_id=job.id, triggered_by="api")[0]
    original.finish("CANCELED")
    command("replay", original.id, "--param", "n=2", "--param", "region=south",
            "--enable", "F0002", "--disable", "F0003", "--debug")  # fmt: skip
    (replay,) = replays_of(original)
    assert replay.parameters["params"] == {"n": 2, "region": "south"}
    assert [c["enabled"] for c in replay.parameters["steps"].values()] == [True, True, False]
    assert replay.log_level == "DEBUG"


@pytest.mark.parametrize(("flag", "expected"), [("--only-failed", [False, True, False]),
                                                ("--from-failed", [False, True, True])])  # fmt: skip
def test_failed_step_shortcuts(db: None, flag: str, expected: list[bool]) -> None:
    original = finished_run("SUCCEEDED", "FAILED", "PENDING")
    command("replay", original.id, flag)
    (replay,) = replays_of(original)
    assert [c["enabled"] for c in replay.parameters["steps"].values()] == expected


def test_both_shortcuts_at_once_are_refused(db: None) -> None:
    original = finished_run("FAILED")
    with pytest.raises(CommandError, match="not allowed with argument"):
        command("replay", original.id, "--only-failed", "--from-failed")
    assert not replays_of(original)


def test_same_step_enabled_and_disabled_is_an_error(db: None) -> None:
    original = finished_run("SUCCEEDED")
    with pytest.raises(CommandError, match="step F0001 is given to both --disable and --enable"):
        command("replay", original.id, "--disable", "F0001", "--enable", "F0001")


def test_replay_of_an_unknown_run_is_an_error(db: None) -> None:
    with pytest.raises(CommandError, match='run "nope" does not exist'):
        command("replay", "nope")


def test_replay_of_a_run_in_flight_is_an_error_and_creates_nothing(db: None) -> None:
    run = queued_run()
    with pytest.raises(CommandError, match="only a finished run can be replayed"):
        command("replay", run.id)
    assert Run.objects.count() == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--disable", "F0009"], r'unknown step "F0009" \(steps: F0001\)'),
        (["--param", "n=many"], r"params\.n: expected number"),
        (["--only-failed"], "has no failed step to re-run"),
    ],
)
def test_bad_replay_input_is_an_error_and_creates_nothing(db: None, args: list[str], message: str) -> None:
    original = finished_run("SUCCEEDED", params={"n": 1})
    with pytest.raises(CommandError, match=message):
        command("replay", original.id, *args)
    assert not replays_of(original)


def test_replay_follow_prints_the_log_until_the_new_run_succeeds(worker: Process) -> None:
    job = make_job({"callable": "workers.builtins:fail", "message": "boom", "when": "{{ params.fail }}"},
                   params={"fail": True})  # fmt: skip
    original = wait_terminal(run_trigger(job_id=job.id, triggered_by="api")[0])
    assert original.state == "FAILED"

    output = command("replay", original.id, "--param", "fail=false", "--follow")

    (replay,) = replays_of(original)
    assert "step F0001 · SUCCEEDED" in output
    assert output.splitlines()[-1] == f"run {replay.id} SUCCEEDED"


def test_cancel_of_a_running_run_on_a_worker_ends_it(worker: Process) -> None:
    run = queued_run({"callable": "workers.builtins:sleep", "seconds": 60})
    wait_for(lambda: run.steps.filter(state="RUNNING").exists(), what="F0001 running")
    command("cancel", run.id)
    run = wait_terminal(run)
    assert (run.state, run.canceled_by) == ("CANCELED", "cli")

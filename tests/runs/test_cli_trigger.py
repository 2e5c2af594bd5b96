"""`python manage.py trigger`: overrides from the command line, errors, and --follow."""

from __future__ import annotations

import re
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from runs.models import Run
from tests.factories import make_job

LINE = re.compile(r"^\d\d:\d\d:\d\d\.\d{3} (DEBUG|INFO|WARNING|ERROR)( \[[^\]]+\])? .*$")


def trigger(*args: str) -> str:
    out = StringIO()
    call_command("trigger", *args, stdout=out)
    return out.getvalue()


def test_trigger_prints_run_id_and_url(db: None) -> None:
    job = make_job({"callable": "workers.builtins:noop"})
    output = trigger(job.id)
    run = Run.objects.get(job=job)
    assert run.triggered_by == "cli"
    assert f"run {run.id} queued: " in output
    assert output.strip().endswith(f"/nomaflow/runs/{run.id}")


def test_param_values_are_json_when_they_parse_else_text(db: None) -> None:
    job = make_job(
        {"callable": "workers.builtins:noop"},
        params={"count": 1, "flag": False, "region": "north", "code": "x", "tags": []},
    )
    trigger(job.id, "--param", "count=5", "--param", "flag=true", "--param", "region=south",
            "--param", "code=007", "--param", 'tags=["a", "b"]')  # fmt: skip
    params = Run.objects.get(job=job).parameters["params"]
    assert params == {"count": 5, "flag": True, "region": "south", "code": "007", "tags": ["a", "b"]}


def test_disable_and_debug_become_overrides(db: None) -> None:
    job = make_job({"callable": "workers.builtins:noop"}, {"callable": "workers.builtins:noop"})
    trigger(job.id, "--disable", "F0002", "--debug")
    run = Run.objects.get(job=job)
    assert run.log_level == "DEBUG"
    assert run.parameters["steps"]["F0002"]["enabled"] is False
    assert run.steps.get(name="F0002").reason == "skipped: disabled"


def test_unknown_job_names_the_known_jobs_and_the_fix(db: None) -> None:
    make_job({"callable": "workers.builtins:noop"}, id="nightly")
    with pytest.raises(CommandError, match=r'job "nope" does not exist \(known: nightly\).*load_jobs'):
        trigger("nope")


def test_bad_param_type_is_a_command_error_and_creates_no_run(db: None) -> None:
    job = make_job({"callable": "workers.builtins:noop"}, params={"count": 1})
    with pytest.raises(CommandError, match=r"params\.count: expected number"):
        trigger(job.id, "--param", "count=many")
    assert not Run.objects.exists()


def test_unknown_step_to_disable_is_a_command_error(db: None) -> None:
    job = make_job({"callable": "workers.builtins:noop"})
    with pytest.raises(CommandError, match=r'unknown step "F0009" \(steps: F0001\)'):
        trigger(job.id, "--disable", "F0009")


def test_param_without_equals_sign_is_a_command_error(db: None) -> None:
    job = make_job({"callable": "workers.builtins:noop"})
    with pytest.raises(CommandError, match="must look like NAME=VALUE"):
        trigger(job.id, "--param", "region")


def test_follow_prints_the_log_and_returns_on_success(worker: object) -> None:
    job = make_job(
        {"callable": "workers.builtins:echo", "message": "hello {{ params.who }}"},
        {"callable": "workers.builtins:sleep", "seconds": 0.3},
        params={"who": "world"},
    )
    output = trigger(job.id, "--follow")
    run = Run.objects.get(job=job)
    lines = output.splitlines()
    assert all(LINE.match(line) for line in lines[1:-1]), output
    assert any(line.endswith(" INFO [F0001] hello world") for line in lines), output
    assert re.search(r"\[F0002\] step F0002 · SUCCEEDED · \d+\.\d s", output)
    assert lines[-1] == f"run {run.id} SUCCEEDED"


def test_follow_exits_1_when_the_run_fails(worker: object) -> None:
    job = make_job(
        {"callable": "workers.builtins:fail", "message": "boom", "when": "{{ params.fail }}"},
        params={"fail": False},
    )
    out = StringIO()
    with pytest.raises(SystemExit) as exit_info:
        call_command("trigger", job.id, "--param", "fail=true", "--follow", stdout=out)
    assert exit_info.value.code == 1
    assert "ERROR [F0001] RuntimeError: boom" in out.getvalue()
    assert "step F0001 · FAILED" in out.getvalue()
    assert out.getvalue().splitlines()[-1].endswith(" FAILED")

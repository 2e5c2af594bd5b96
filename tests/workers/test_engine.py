"""The step engine end to end: real Celery worker process, real PostgreSQL and Redis."""

from __future__ import annotations

from pathlib import Path

from runs.choices import REASON_DISABLED, REASON_TIMED_OUT, REASON_UPSTREAM_FAILED
from runs.models import Run
from runs.services import run_trigger
from tests.factories import make_job
from tests.processes import Process, wait_terminal

NOOP = {"callable": "workers.builtins:noop"}


def trigger(job_id: str, **overrides: object) -> Run:
    run, created = run_trigger(job_id=job_id, overrides=overrides, triggered_by="cli")
    assert created
    return run


def log_messages(run: Run) -> list[str]:
    return list(run.log_lines.order_by("seq").values_list("message", flat=True))


def test_five_step_job_runs_to_success_with_every_state_and_line(worker: Process) -> None:
    job = make_job(
        {"callable": "workers.builtins:echo", "message": "hello {{ params.who }}"},
        NOOP,
        {"callable": "workers.builtins:sleep", "seconds": 0.2},
        {"callable": "workers.builtins:echo", "message": "careful", "level": "WARNING"},
        NOOP,
        params={"who": "world"},
    )
    run = trigger(job.id)
    assert run.state == "QUEUED" and run.started_at is None

    run = wait_terminal(run)

    assert run.state == "SUCCEEDED"
    assert run.queued_at <= run.started_at <= run.finished_at
    steps = list(run.steps.order_by("position"))
    assert [s.state for s in steps] == ["SUCCEEDED"] * 5
    assert all(s.attempts == 1 and s.worker for s in steps)
    for earlier, later in zip(steps, steps[1:], strict=False):
        assert run.started_at <= earlier.started_at <= earlier.finished_at <= later.started_at
    assert steps[-1].finished_at <= run.finished_at
    assert steps[2].duration_s >= 0.2
    messages = log_messages(run)
    assert messages[:3] == [
        "step F0001 · type=python · callable=workers.builtins:echo",
        "hello world",
        "step F0001 · SUCCEEDED · 0.0 s",
    ]
    assert "step F0003 · type=python · callable=workers.builtins:sleep" in messages
    assert any(m.startswith("step F0003 · SUCCEEDED · 0.") for m in messages)
    assert messages[-1] == "step F0005 · SUCCEEDED · 0.0 s"
    seqs = list(run.log_lines.order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(1, len(seqs) + 1)) and run.last_seq == len(seqs)
    warning = run.log_lines.get(message="careful")
    assert (warning.level, warning.step) == ("WARNING", "F0004")


def test_failing_step_fails_the_run_and_cancels_the_rest(worker: Process) -> None:
    job = make_job(NOOP, {"callable": "workers.builtins:fail", "message": "boom"}, NOOP, NOOP)

    run = wait_terminal(trigger(job.id))

    assert run.state == "FAILED"
    states = list(run.steps.order_by("position").values_list("state", "reason", "attempts"))
    assert states == [
        ("SUCCEEDED", "", 1),
        ("FAILED", "", 1),
        ("CANCELED", REASON_UPSTREAM_FAILED, 0),
        ("CANCELED", REASON_UPSTREAM_FAILED, 0),
    ]
    failed = run.steps.get(name="F0002")
    assert failed.error == "RuntimeError: boom"
    assert "Traceback" in failed.traceback
    messages = log_messages(run)
    assert messages[-2:] == ["RuntimeError: boom", "step F0002 · FAILED · 0.0 s"]
    assert not any("F0003" in m for m in messages)


def test_disabled_steps_are_skipped_and_never_run(worker: Process, tmp_path: Path) -> None:
    record = {"callable": "tests.steps:record", "path": str(tmp_path / "ran.txt")}
    job = make_job(record, dict(record, enabled=False), record)

    run = wait_terminal(trigger(job.id, steps={"F0003": {"enabled": False}}))

    assert run.state == "SUCCEEDED"
    assert list(run.steps.order_by("position").values_list("state", "reason")) == [
        ("SUCCEEDED", ""),
        ("CANCELED", REASON_DISABLED),
        ("CANCELED", REASON_DISABLED),
    ]
    assert [line.split()[1] for line in (tmp_path / "ran.txt").read_text().splitlines()] == ["F0001"]


def test_retries_log_each_retry_and_then_succeed(worker: Process, tmp_path: Path) -> None:
    job = make_job(
        {
            "callable": "tests.steps:flaky",
            "marker": str(tmp_path / "n"),
            "failures": 2,
            "retries": 3,
            "retry_delay_s": 0.1,
        }
    )

    run = wait_terminal(trigger(job.id))

    assert run.state == "SUCCEEDED"
    assert run.steps.get().attempts == 3
    messages = log_messages(run)
    assert "retry 1/3 in 0.1 s: RuntimeError: flaky failure 1" in messages
    assert "retry 2/3 in 0.1 s: RuntimeError: flaky failure 2" in messages
    assert not any(m.startswith("retry 3/3") for m in messages)


def test_retries_exhausted_fail_the_step(worker: Process, tmp_path: Path) -> None:
    job = make_job({"callable": "tests.steps:flaky", "marker": str(tmp_path / "n"), "failures": 5, "retries": 1})

    run = wait_terminal(trigger(job.id))

    step = run.steps.get()
    assert (run.state, step.state, step.attempts, step.error) == (
        "FAILED",
        "FAILED",
        2,
        "RuntimeError: flaky failure 2",
    )
    assert "retry 1/1 in 0 s: RuntimeError: flaky failure 1" in log_messages(run)


def test_timeout_fails_the_step_as_timed_out(worker: Process) -> None:
    job = make_job({"callable": "workers.builtins:sleep", "seconds": 30, "timeout_s": 0.5}, NOOP)

    run = wait_terminal(trigger(job.id))

    first, second = run.steps.order_by("position")
    assert (run.state, first.state, first.reason) == ("FAILED", "FAILED", REASON_TIMED_OUT)
    assert first.error == "timed out after 0.5 s"
    assert 0.5 <= first.duration_s < 30
    assert (second.state, second.reason) == ("CANCELED", REASON_UPSTREAM_FAILED)


def test_step_sees_merged_params_and_rendered_op_kwargs(worker: Process) -> None:
    job = make_job(
        {"callable": "tests.steps:show_params", "label": "{{ params.env }}-{{ params.n }}", "n": "{{ params.n }}"},
        params={"env": "prod", "n": 1, "keep": True},
    )

    run = wait_terminal(trigger(job.id, params={"env": "sandbox", "extra": [1, 2]}))

    assert run.state == "SUCCEEDED"
    assert run.parameters == {
        "params": {"env": "sandbox", "n": 1, "keep": True, "extra": [1, 2]},
        "steps": {"F0001": {"op_kwargs": job.steps.get().op_kwargs, "enabled": True}},
    }
    messages = log_messages(run)
    assert "params=[('env', 'sandbox'), ('extra', [1, 2]), ('keep', True), ('n', 1)]" in messages
    assert "op_kwargs=[('callable', 'tests.steps:show_params'), ('label', 'sandbox-1'), ('n', 1)]" in messages


def test_runs_over_max_concurrent_wait_queued_until_a_slot_frees(worker: Process) -> None:
    job = make_job({"callable": "workers.builtins:sleep", "seconds": 0.5}, max_concurrent_runs=1)

    first, second = trigger(job.id), trigger(job.id)
    second = wait_terminal(second)
    first.refresh_from_db()

    assert first.state == second.state == "SUCCEEDED"
    assert second.started_at >= first.finished_at


def test_debug_lines_are_kept_only_for_debug_runs(worker: Process) -> None:
    job = make_job({"callable": "workers.builtins:echo", "message": "details", "level": "DEBUG"})

    info_run = wait_terminal(trigger(job.id))
    debug_run = wait_terminal(trigger(job.id, log_level="DEBUG"))

    assert "details" not in log_messages(info_run)
    assert debug_run.log_lines.get(message="details").level == "DEBUG"

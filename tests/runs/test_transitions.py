"""runs.transitions: the declared state machine, walked through the guarded methods on
PostgreSQL here and on SQLite in a child pytest. Every move the table allows happens;
every other one is refused and leaves the row as it was."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection

from runs.choices import RunState, StepState
from runs.models import Run, StepRun
from runs.transitions import RUN, STEP
from tests.factories import make_job

pytestmark = pytest.mark.django_db


def run_in(state: str) -> Run:
    job = make_job({"callable": "workers.builtins:noop"})
    return Run.objects.create(job=job, state=state, parameters={}, triggered_by="api")


def step_in(state: str, run_state: str = RunState.RUNNING) -> StepRun:
    run = run_in(run_state)
    return StepRun.objects.create(run=run, position=1, name="F0001", type="python", state=state)


def test_the_database_is_the_one_this_session_was_given() -> None:
    assert connection.vendor == os.environ.get("EXPECT_DATABASE_VENDOR", "postgresql")


def test_terminal_states_are_those_no_move_leaves() -> None:
    assert RUN.terminal == {RunState.SUCCEEDED, RunState.FAILED, RunState.CANCELED}
    assert STEP.terminal == {StepState.SUCCEEDED, StepState.FAILED, StepState.CANCELED}
    with pytest.raises(ValueError, match="no move leads to QUEUED"):
        RUN.sources(RunState.QUEUED)


@pytest.mark.parametrize("target", sorted(set(RunState.values) - {RunState.QUEUED}))
@pytest.mark.parametrize("source", RunState.values)
def test_a_run_moves_only_as_the_table_says(source: str, target: str) -> None:
    run = run_in(source)

    moved = run.mark_running() if target == RunState.RUNNING else run.finish(RunState(target))

    assert moved == RUN.allows(source, target)
    assert Run.objects.get(pk=run.pk).state == (target if moved else source)


@pytest.mark.parametrize("target", sorted(STEP.terminal))
@pytest.mark.parametrize("source", StepState.values)
@pytest.mark.parametrize("method", ["finish", "finish_and_read_run"])
def test_a_step_ends_only_as_the_table_says(method: str, source: str, target: str) -> None:
    step = step_in(source)

    moved = getattr(step, method)(StepState(target), reason="r")

    assert bool(moved) == STEP.allows(source, target)
    assert StepRun.objects.get(pk=step.pk).state == (target if moved else source)


@pytest.mark.parametrize("source", StepState.values)
def test_a_step_is_claimed_only_as_the_table_says(source: str) -> None:
    step = step_in(source)

    assert StepRun(pk=step.pk).claim(worker="w") == STEP.allows(source, StepState.RUNNING)


@pytest.mark.parametrize("run_state", sorted(RUN.terminal))
def test_a_pending_step_of_a_finished_run_is_never_claimed(run_state: str) -> None:
    step = step_in(StepState.PENDING, run_state)

    assert not StepRun(pk=step.pk).claim(worker="w")
    assert StepRun.objects.get(pk=step.pk).state == StepState.PENDING


def test_on_sqlite_the_same_walk_holds(tmp_path: Path) -> None:
    env = dict(os.environ, DATABASE_URL=f"sqlite:///{tmp_path / 'walk.sqlite3'}", EXPECT_DATABASE_VENDOR="sqlite")
    child = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__, "-k", "not on_sqlite"],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip

    assert child.returncode == 0, child.stdout + child.stderr
    assert " passed" in child.stdout and "skipped" not in child.stdout

"""run_replay: a new run from a finished run's snapshot, with overrides and shortcuts."""

from __future__ import annotations

from typing import Any

import pytest

from core.errors import InputError, StateConflict
from core.models import AuditEvent
from runs.models import Run
from runs.services import run_replay, run_trigger
from tests.factories import end_as, make_job

pytestmark = pytest.mark.django_db
NOOP = {"callable": "workers.builtins:noop"}


def finished_run(*states: str, **job_fields: Any) -> Run:
    """A run whose steps ended in `states` (built through the guarded transitions)."""
    job = make_job(*[dict(NOOP) for _ in states], params={"target_connector": "prod", "n": 1}, **job_fields)
    run = run_trigger(job_id=job.id, overrides={"params": {"n": 2}}, triggered_by="api")[0]
    return end_as(run, *states)


def enabled(run: Run) -> list[bool]:
    return [config["enabled"] for config in run.parameters["steps"].values()]


def test_replay_without_changes_copies_the_snapshot_and_links_back() -> None:
    original = finished_run("SUCCEEDED", "SUCCEEDED")
    before = (original.state, original.parameters, original.finished_at)

    replay = run_replay(run_id=original.id, triggered_by="user:otto")

    assert replay.replay_of_id == original.id and replay.state == "QUEUED"
    assert replay.parameters == original.parameters
    assert replay.log_level == original.log_level and replay.triggered_by == "user:otto"
    original.refresh_from_db()
    assert (original.state, original.parameters, original.finished_at) == before
    assert AuditEvent.objects.get(action="replay").diff["replay_of"] == original.id


def test_replay_applies_params_op_kwargs_enabled_and_log_level() -> None:
    original = finished_run("SUCCEEDED", "SUCCEEDED")

    replay = run_replay(
        run_id=original.id,
        overrides={
            "params": {"target_connector": "sandbox"},
            "steps": {
                "F0001": {"enabled": False},
                "F0002": {"op_kwargs": {"callable": "workers.builtins:echo", "message": "hi"}},
            },
            "log_level": "DEBUG",
        },
        triggered_by="api",
    )

    assert replay.parameters["params"] == {"target_connector": "sandbox", "n": 2}
    assert replay.parameters["steps"]["F0002"]["op_kwargs"] == {"callable": "workers.builtins:echo", "message": "hi"}
    assert enabled(replay) == [False, True] and replay.log_level == "DEBUG"
    assert list(replay.steps.values_list("state", flat=True)) == ["CANCELED", "PENDING"]


def test_rerun_only_the_failed_step() -> None:
    original = finished_run("SUCCEEDED", "FAILED", "PENDING")

    replay = run_replay(run_id=original.id, overrides={"rerun": "failed_step"}, triggered_by="api")

    assert enabled(replay) == [False, True, False]


def test_rerun_from_the_failed_step() -> None:
    original = finished_run("SUCCEEDED", "FAILED", "PENDING")

    replay = run_replay(run_id=original.id, overrides={"rerun": "from_failed_step"}, triggered_by="api")

    assert enabled(replay) == [False, True, True]


def test_explicit_step_switches_win_over_the_shortcut() -> None:
    original = finished_run("SUCCEEDED", "FAILED", "PENDING")

    replay = run_replay(
        run_id=original.id,
        overrides={"rerun": "failed_step", "steps": {"F0003": {"enabled": True}}},
        triggered_by="api",
    )

    assert enabled(replay) == [False, True, True]


def test_replay_of_a_run_in_flight_is_a_conflict_and_creates_nothing() -> None:
    job = make_job(NOOP)
    running = run_trigger(job_id=job.id, triggered_by="api")[0]

    with pytest.raises(StateConflict, match="only a finished run can be replayed"):
        run_replay(run_id=running.id, triggered_by="api")
    assert Run.objects.count() == 1


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"steps": {"F0009": {"enabled": True}}}, "steps.F0009"),
        ({"params": {"n": "two"}}, "params.n"),
        ({"steps": {"F0001": {"enabled": 1}}}, "steps.F0001.enabled"),
        ({"rerun": "everything"}, "rerun"),
        ({"rerun": "failed_step"}, "rerun"),  # nothing failed
    ],
)
def test_bad_replay_input_is_refused_and_creates_nothing(overrides: dict[str, Any], field: str) -> None:
    original = finished_run("SUCCEEDED", "SUCCEEDED")

    with pytest.raises(InputError) as refused:
        run_replay(run_id=original.id, overrides=overrides, triggered_by="api")

    assert field in refused.value.errors
    assert Run.objects.count() == 1 and not AuditEvent.objects.filter(action="replay").exists()


def test_replay_uses_the_original_step_definitions_even_after_the_job_changed() -> None:
    original = finished_run("SUCCEEDED", "SUCCEEDED")
    original.job.steps.filter(name="F0002").delete()

    replay = run_replay(run_id=original.id, triggered_by="api")

    assert list(replay.steps.values_list("name", flat=True)) == ["F0001", "F0002"]

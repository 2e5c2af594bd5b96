"""REST API: POST /api/v1/runs/{id}/cancel/ and POST /api/v1/runs/{id}/replay/."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User

from core.models import AuditEvent
from runs.models import Run, StepRun
from runs.services import run_trigger
from tests.conftest import api_client
from tests.factories import end_as, make_job
from tests.processes import Process, wait_for

NOOP = {"callable": "workers.builtins:noop"}
ECHO = {"callable": "workers.builtins:echo", "message": "to {{ params.target }}"}
IDLE = {"callable": "workers.builtins:noop", "queue": "idle"}  # no test worker consumes "idle"
TERMINAL = {"SUCCEEDED", "FAILED", "CANCELED"}


def cancel_url(run: Run | str) -> str:
    return f"/api/v1/runs/{getattr(run, 'id', run)}/cancel/"


def replay_url(run: Run | str) -> str:
    return f"/api/v1/runs/{getattr(run, 'id', run)}/replay/"


def queued_run(*steps: dict[str, Any]) -> Run:
    job = make_job(*(steps or (IDLE, IDLE)), params={"target": "prod", "n": 1})
    return run_trigger(job_id=job.id, triggered_by="api")[0]


def running_run() -> Run:
    run = queued_run()
    run.mark_running()
    run.steps.order_by("position").first().claim(worker="w")
    return run


def finished_run(*states: str) -> Run:
    """A run of NOOP, ECHO, NOOP… whose steps ended in `states`, through the guarded transitions."""
    steps = [dict(ECHO if position == 2 else NOOP) for position in range(1, len(states) + 1)]
    run = queued_run(*steps)
    return end_as(run, *states)


@pytest.fixture
def done(db: None) -> Run:
    return finished_run("SUCCEEDED", "SUCCEEDED")


def assert_no_replay(original: Run) -> None:
    assert Run.objects.exclude(pk=original.pk).count() == 0
    assert not AuditEvent.objects.filter(action="replay").exists()


def enabled(body: dict[str, Any]) -> list[bool]:
    return [config["enabled"] for config in body["parameters"]["steps"].values()]


# --- who may cancel and replay ---------------------------------------------------------------


@pytest.mark.parametrize("url", [cancel_url, replay_url])
def test_anonymous_is_401_and_outsider_is_403(done: Run, outsider: User, url: Any) -> None:
    assert api_client(None).post(url(done), {}, format="json").status_code == 401
    assert api_client(outsider).post(url(done), {}, format="json").status_code == 403
    assert_no_replay(done)


@pytest.mark.parametrize("url", [cancel_url, replay_url])
def test_viewer_is_403_naming_the_operator_role(viewer: User, url: Any) -> None:
    run = queued_run() if url is cancel_url else finished_run("SUCCEEDED")
    response = api_client(viewer).post(url(run), {}, format="json")
    assert response.status_code == 403
    assert "operator" in response.json()["detail"]
    run.refresh_from_db()
    assert run.canceled_by is None and Run.objects.count() == 1


@pytest.mark.parametrize("url", [cancel_url, replay_url])
def test_unknown_run_is_404_naming_it(operator: User, url: Any) -> None:
    response = api_client(operator).post(url("nope"), {}, format="json")
    assert response.status_code == 404
    assert response.json()["detail"] == 'run "nope" does not exist'
    assert not Run.objects.exists()


# --- cancel ------------------------------------------------------------------------------------


def test_cancel_of_a_queued_run_is_202_and_canceled_at_once(operator: User) -> None:
    run = queued_run()
    response = api_client(operator).post(cancel_url(run))
    assert response.status_code == 202, response.json()
    body = response.json()
    assert (body["id"], body["state"], body["canceled_by"]) == (run.id, "CANCELED", "user:otto")
    assert [(s["state"], s["reason"]) for s in body["steps"]] == [("CANCELED", "canceled by user:otto")] * 2
    run.refresh_from_db()
    assert (run.state, run.canceled_by) == ("CANCELED", "user:otto")
    assert AuditEvent.objects.filter(action="cancel", object_id=run.id, actor="user:otto").count() == 1


def test_session_cancel_is_by_the_user_too(operator: User) -> None:
    run = queued_run()
    client = api_client(None)
    client.force_login(operator)
    response = client.post(cancel_url(run))
    assert response.status_code == 202
    assert response.json()["canceled_by"] == "user:otto"


def test_cancel_of_a_running_run_is_accepted_and_a_second_changes_nothing(operator: User, editor: User) -> None:
    run = running_run()
    first = api_client(operator).post(cancel_url(run))
    assert first.status_code == 202
    # Without a worker nobody stops the running step: the run is winding down, still RUNNING.
    assert (first.json()["state"], first.json()["canceled_by"]) == ("RUNNING", "user:otto")
    again = api_client(editor).post(cancel_url(run))
    assert again.status_code == 202
    assert again.json()["canceled_by"] == "user:otto"
    assert AuditEvent.objects.filter(action="cancel").count() == 1


@pytest.mark.parametrize("state", ["SUCCEEDED", "FAILED"])
def test_cancel_of_finished_run_is_409_and_changes_nothing(operator: User, state: str) -> None:
    run = finished_run("SUCCEEDED", "FAILED" if state == "FAILED" else "SUCCEEDED")
    before = (run.state, run.finished_at, run.canceled_by, list(run.steps.values_list("state", "reason")))
    response = api_client(operator).post(cancel_url(run))
    assert response.status_code == 409
    assert (
        response.json()["detail"] == f"run {run.id} already ended {state}; only QUEUED or RUNNING runs can be canceled"
    )
    run.refresh_from_db()
    assert (run.state, run.finished_at, run.canceled_by, list(run.steps.values_list("state", "reason"))) == before
    assert not AuditEvent.objects.filter(action="cancel").exists()


def test_cancel_of_a_canceled_run_is_409(operator: User) -> None:
    run = queued_run()
    assert api_client(operator).post(cancel_url(run)).status_code == 202
    response = api_client(operator).post(cancel_url(run))
    assert response.status_code == 409
    assert "already ended CANCELED" in response.json()["detail"]


# --- replay ------------------------------------------------------------------------------------


def test_operator_replays_with_a_token_as_api(done: Run, operator: User) -> None:
    before = (done.state, done.parameters, done.finished_at)
    response = api_client(operator).post(replay_url(done), {}, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    replay = Run.objects.get(replay_of=done)
    assert (body["id"], body["replay_of"], body["state"]) == (replay.id, done.id, "QUEUED")
    assert (body["triggered_by"], body["actor"], body["job"]) == ("api", "otto", done.job_id)
    assert body["parameters"] == done.parameters
    assert response.headers["Location"] == f"/api/v1/runs/{replay.id}/"
    done.refresh_from_db()
    assert (done.state, done.parameters, done.finished_at) == before


def test_session_replay_is_by_the_user(done: Run, operator: User) -> None:
    client = api_client(None)
    client.force_login(operator)
    response = client.post(replay_url(done), {}, format="json")
    assert response.status_code == 201
    assert response.json()["triggered_by"] == "user:otto"


def test_empty_body_replays_the_snapshot(done: Run, operator: User) -> None:
    response = api_client(operator).post(replay_url(done))
    assert response.status_code == 201
    assert response.json()["parameters"] == done.parameters


def test_replay_overrides_params_enabled_and_log_level(done: Run, operator: User) -> None:
    overrides = {"params": {"target": "sandbox"}, "steps": {"F0001": {"enabled": False}}, "log_level": "DEBUG"}
    response = api_client(operator).post(replay_url(done), overrides, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    # The original run was triggered with the job's defaults; only `target` changes.
    assert body["parameters"]["params"] == {"target": "sandbox", "n": 1}
    assert enabled(body) == [False, True] and body["log_level"] == "DEBUG"
    assert [(s["state"], s["reason"]) for s in body["steps"]] == [("CANCELED", "skipped: disabled"), ("PENDING", "")]


def test_the_run_names_the_step_rerun_starts_from(viewer: User) -> None:
    original = finished_run("SUCCEEDED", "FAILED", "PENDING")
    assert api_client(viewer).get(f"/api/v1/runs/{original.id}/").json()["stopped_step"] == "F0002"


@pytest.mark.parametrize(
    ("rerun", "expected"),
    [("failed_step", [False, True, False]), ("from_failed_step", [False, True, True])],
)
def test_rerun_shortcuts_enable_the_failed_step(operator: User, rerun: str, expected: list[bool]) -> None:
    original = finished_run("SUCCEEDED", "FAILED", "PENDING")
    response = api_client(operator).post(replay_url(original), {"rerun": rerun}, format="json")
    assert response.status_code == 201, response.json()
    assert enabled(response.json()) == expected
    assert AuditEvent.objects.get(action="replay").diff["rerun"] == rerun


def test_replay_of_a_canceled_run_reruns_from_the_step_it_stopped_at(operator: User) -> None:
    run = running_run()
    api_client(operator).post(cancel_url(run))
    step = run.steps.get(state="RUNNING")
    step.finish("CANCELED", reason="canceled by user:otto")
    run.finish("CANCELED")
    response = api_client(operator).post(replay_url(run), {"rerun": "from_failed_step"}, format="json")
    assert response.status_code == 201, response.json()
    assert enabled(response.json()) == [True, True]


def test_operator_cannot_override_op_kwargs(done: Run, operator: User) -> None:
    overrides = {"steps": {"F0002": {"op_kwargs": {"message": "hacked"}}}}
    response = api_client(operator).post(replay_url(done), overrides, format="json")
    assert response.status_code == 403
    assert "op_kwargs" in response.json()["detail"] and "editor" in response.json()["detail"]
    assert_no_replay(done)


def test_editor_can_override_op_kwargs(done: Run, editor: User) -> None:
    overrides = {"steps": {"F0002": {"op_kwargs": {"message": "bye"}}}}
    response = api_client(editor).post(replay_url(done), overrides, format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["parameters"]["steps"]["F0002"]["op_kwargs"] == {**ECHO, "message": "bye"}
    assert response.json()["actor"] == "edna"


@pytest.mark.parametrize("make_run", [queued_run, running_run])
def test_replay_of_a_run_in_flight_is_409_and_creates_nothing(operator: User, make_run: Any) -> None:
    run = make_run()
    response = api_client(operator).post(replay_url(run), {}, format="json")
    assert response.status_code == 409
    assert "only a finished run can be replayed" in response.json()["detail"]
    assert_no_replay(run)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"steps": {"F0009": {"enabled": True}}}, "steps.F0009"),
        ({"params": {"n": "two"}}, "params.n"),
        ({"params": ["n"]}, "params"),
        ({"steps": {"F0001": {"enabled": "no"}}}, "steps.F0001.enabled"),
        ({"steps": {"F0001": False}}, "steps.F0001"),
        ({"log_level": "TRACE"}, "log_level"),
        ({"rerun": "everything"}, "rerun"),
        ({"rerun": "failed_step"}, "rerun"),  # nothing failed in this run
        ({"colour": "blue"}, "colour"),
        ({"steps": {"F0001": {"enabled": False}, "F0002": {"enabled": False}}}, "steps"),
    ],
)
def test_bad_replay_input_is_400_naming_the_field(
    done: Run, operator: User, overrides: dict[str, Any], field: str
) -> None:
    response = api_client(operator).post(replay_url(done), overrides, format="json")
    assert response.status_code == 400
    assert field in response.json()["errors"], response.json()
    assert response.json()["detail"]
    assert_no_replay(done)


def test_bad_op_kwargs_override_by_an_editor_is_400(done: Run, editor: User) -> None:
    overrides = {"steps": {"F0001": {"op_kwargs": {"callable": "subprocess:run"}}}}
    response = api_client(editor).post(replay_url(done), overrides, format="json")
    assert response.status_code == 400
    assert "steps.F0001.op_kwargs.callable" in response.json()["errors"]
    assert_no_replay(done)


@pytest.mark.parametrize("body", ['["params"]', '"go"', "3", "null"])
def test_non_object_body_is_400(done: Run, operator: User, body: str) -> None:
    response = api_client(operator).post(replay_url(done), body, content_type="application/json")
    assert response.status_code == 400
    assert "JSON object" in response.json()["detail"] and "rerun" in response.json()["detail"]
    assert_no_replay(done)


# --- the schema --------------------------------------------------------------------------------


def test_schema_documents_cancel_and_replay(viewer: User) -> None:
    paths = api_client(viewer).get("/api/v1/schema/?format=json").json()["paths"]
    cancel = paths["/api/v1/runs/{id}/cancel/"]["post"]
    replay = paths["/api/v1/runs/{id}/replay/"]["post"]
    assert {"202", "404", "409"} <= set(cancel["responses"]) and "requestBody" not in cancel
    assert {"201", "400", "404", "409"} <= set(replay["responses"])
    body = replay["requestBody"]["content"]["application/json"]["schema"]
    assert body["$ref"].endswith("/ReplayOverridesRequest")  # a request component (COMPONENT_SPLIT_REQUEST)


# --- end to end --------------------------------------------------------------------------------


def test_cancel_stops_a_running_run_on_a_worker(worker: Process, operator: User, viewer: User) -> None:
    job = make_job({"callable": "workers.builtins:sleep", "seconds": 60}, NOOP)
    run = run_trigger(job_id=job.id, triggered_by="api")[0]
    wait_for(lambda: StepRun.objects.filter(run=run, name="F0001", state="RUNNING").exists(), what="F0001 running")

    response = api_client(operator).post(cancel_url(run))
    assert response.status_code == 202, response.json()
    assert response.json()["canceled_by"] == "user:otto"

    reader = api_client(viewer)

    def finished() -> dict[str, Any] | None:
        body = reader.get(f"/api/v1/runs/{run.id}/").json()
        return body if body["state"] in TERMINAL else None

    body = wait_for(finished, timeout=30, what="the run to end")
    assert (body["state"], body["canceled_by"]) == ("CANCELED", "user:otto")
    assert [s["state"] for s in body["steps"]] == ["CANCELED", "CANCELED"]
    last = reader.get(f"/api/v1/runs/{run.id}/logs/").json()["lines"][-1]
    assert last["message"] == "run cancelled by user:otto"

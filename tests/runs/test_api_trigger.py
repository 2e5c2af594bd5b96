"""REST API: POST /api/v1/jobs/{id}/runs/ (trigger a run with overrides)."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User

from core.api.errors import exception_handler
from core.models import AuditEvent
from jobs.models import Job
from runs.models import Run, StepRun
from tests.conftest import api_client
from tests.factories import make_job
from tests.processes import Process, wait_for

NOOP = {"callable": "workers.builtins:noop"}
ECHO = {"callable": "workers.builtins:echo", "message": "hello {{ params.region }}"}


def runs_url(job_id: str = "etl") -> str:
    return f"/api/v1/jobs/{job_id}/runs/"


@pytest.fixture
def job(db: None) -> Any:
    return make_job(NOOP, ECHO, id="etl", params={"region": "north", "rows": 5})


def assert_nothing_created() -> None:
    assert Run.objects.count() == 0
    assert StepRun.objects.count() == 0
    assert AuditEvent.objects.count() == 0


# --- who may trigger ----------------------------------------------------------------------


def test_anonymous_is_401_and_outsider_is_403(job: Any, outsider: User) -> None:
    assert api_client(None).post(runs_url(), {}, format="json").status_code == 401
    response = api_client(outsider).post(runs_url(), {}, format="json")
    assert response.status_code == 403
    assert_nothing_created()


def test_viewer_cannot_trigger(job: Any, viewer: User) -> None:
    response = api_client(viewer).post(runs_url(), {}, format="json")
    assert response.status_code == 403
    assert "operator" in response.json()["detail"]
    assert_nothing_created()


def test_operator_triggers_with_a_token_as_api(job: Any, operator: User) -> None:
    response = api_client(operator).post(runs_url(), {"params": {"region": "south"}}, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    run = Run.objects.get()
    assert body["id"] == run.id
    assert (body["job"], body["state"], body["triggered_by"], body["actor"]) == ("etl", "QUEUED", "api", "otto")
    assert body["parameters"]["params"] == {"region": "south", "rows": 5}
    assert [s["name"] for s in body["steps"]] == ["F0001", "F0002"]
    assert response.headers["Location"] == f"/api/v1/runs/{run.id}/"
    assert "Idempotent-Replayed" not in response.headers
    assert run.actor == operator


def test_session_trigger_is_by_the_user(job: Any, operator: User) -> None:
    client = api_client(None)
    client.force_login(operator)
    response = client.post(runs_url(), {}, format="json")
    assert response.status_code == 201
    assert response.json()["triggered_by"] == "user:otto"


def test_empty_body_triggers_with_the_job_defaults(job: Any, operator: User) -> None:
    response = api_client(operator).post(runs_url())
    assert response.status_code == 201
    assert response.json()["parameters"]["params"] == {"region": "north", "rows": 5}


def test_operator_may_disable_steps_and_choose_debug(job: Any, operator: User) -> None:
    overrides = {"steps": {"F0001": {"enabled": False}}, "log_level": "DEBUG"}
    response = api_client(operator).post(runs_url(), overrides, format="json")
    assert response.status_code == 201
    assert response.json()["log_level"] == "DEBUG"
    assert response.json()["steps"][0]["reason"] == "skipped: disabled"


def test_operator_cannot_override_op_kwargs(job: Any, operator: User) -> None:
    overrides = {"steps": {"F0002": {"op_kwargs": {"message": "hacked"}}}}
    response = api_client(operator).post(runs_url(), overrides, format="json")
    assert response.status_code == 403
    assert "op_kwargs" in response.json()["detail"] and "editor" in response.json()["detail"]
    assert_nothing_created()


def test_editor_can_override_op_kwargs(job: Any, editor: User) -> None:
    overrides = {"steps": {"F0002": {"op_kwargs": {"message": "bye"}}}}
    response = api_client(editor).post(runs_url(), overrides, format="json")
    assert response.status_code == 201
    assert response.json()["parameters"]["steps"]["F0002"]["op_kwargs"] == {**ECHO, "message": "bye"}


# --- idempotency ---------------------------------------------------------------------------


def test_idempotency_key_returns_the_same_run_again(job: Any, operator: User) -> None:
    client = api_client(operator)
    first = client.post(runs_url(), {"params": {"rows": 7}}, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    again = client.post(runs_url(), {"params": {"rows": 7}}, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert Run.objects.count() == 1
    other = client.post(runs_url(), {"params": {"rows": 7}}, format="json", HTTP_IDEMPOTENCY_KEY="k-2")
    assert other.json()["id"] != first.json()["id"]


def test_idempotency_key_reused_with_another_body_is_400(job: Any, operator: User) -> None:
    client = api_client(operator)
    client.post(runs_url(), {"params": {"rows": 7}}, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    response = client.post(runs_url(), {"params": {"rows": 8}}, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert response.status_code == 400
    assert "Idempotency-Key" in response.json()["errors"]
    assert Run.objects.count() == 1


def test_overlong_idempotency_key_is_400(job: Any, operator: User) -> None:
    response = api_client(operator).post(runs_url(), {}, format="json", HTTP_IDEMPOTENCY_KEY="k" * 201)
    assert response.status_code == 400
    assert_nothing_created()


# --- bad input is refused before anything is written --------------------------------------------


def test_unknown_job_is_404(job: Any, operator: User) -> None:
    response = api_client(operator).post(runs_url("nope"), {}, format="json")
    assert response.status_code == 404
    assert response.json()["detail"] == 'job "nope" does not exist'
    assert_nothing_created()


def test_job_deleted_while_triggering_is_404_naming_it() -> None:
    # run_trigger raises Job.DoesNotExist when the job vanished after the view's check.
    response = exception_handler(Job.DoesNotExist(), {"kwargs": {"id": "etl"}})
    assert response is not None and response.status_code == 404
    assert response.data == {"detail": 'job "etl" does not exist', "errors": {}}


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"params": ["region"]}, "params"),
        ({"params": {"rows": "five"}}, "params.rows"),
        ({"steps": {"F0009": {"enabled": False}}}, "steps.F0009"),
        ({"steps": {"F0001": False}}, "steps.F0001"),
        ({"steps": {"F0001": {"enabled": "no"}}}, "steps.F0001.enabled"),
        ({"log_level": "TRACE"}, "log_level"),
        ({"colour": "blue"}, "colour"),
        ({"steps": {"F0001": {"enabled": False}, "F0002": {"enabled": False}}}, "steps"),
    ],
)
def test_bad_overrides_are_400_naming_the_field(
    job: Any, operator: User, overrides: dict[str, Any], field: str
) -> None:
    response = api_client(operator).post(runs_url(), overrides, format="json")
    assert response.status_code == 400
    assert field in response.json()["errors"], response.json()
    assert response.json()["detail"]
    assert_nothing_created()


@pytest.mark.parametrize("body", ['["params"]', '"go"', "3", "null"])
def test_non_object_body_is_400(job: Any, operator: User, body: str) -> None:
    response = api_client(operator).post(runs_url(), body, content_type="application/json")
    assert response.status_code == 400
    assert "JSON object" in response.json()["detail"]
    assert_nothing_created()


def test_op_kwargs_override_outside_the_allowlist_is_400(job: Any, editor: User) -> None:
    overrides = {"steps": {"F0001": {"op_kwargs": {"callable": "subprocess:run"}}}}
    response = api_client(editor).post(runs_url(), overrides, format="json")
    assert response.status_code == 400
    assert "steps.F0001.op_kwargs.callable" in response.json()["errors"]
    assert_nothing_created()


def test_job_without_steps_is_400(operator: User) -> None:
    make_job(id="empty")
    response = api_client(operator).post(runs_url("empty"), {}, format="json")
    assert response.status_code == 400
    assert "no steps" in response.json()["detail"]
    assert_nothing_created()


# --- end to end ---------------------------------------------------------------------------------


def test_triggered_run_completes_on_a_worker(worker: Process, operator: User, viewer: User) -> None:
    make_job(NOOP, ECHO, id="etl", params={"region": "north"})
    response = api_client(operator).post(runs_url(), {"params": {"region": "south"}}, format="json")
    assert response.status_code == 201
    run_url = f"/api/v1/runs/{response.json()['id']}/"
    reader = api_client(viewer)

    def finished() -> dict[str, Any] | None:
        body = reader.get(run_url).json()
        return body if body["state"] in {"SUCCEEDED", "FAILED", "CANCELED"} else None

    body = wait_for(finished, timeout=30, what="the run to finish")
    assert body["state"] == "SUCCEEDED", body
    assert body["step_summary"] == "2 / 2 ✓"
    logs = reader.get(f"{run_url}logs/?step=F0002").json()
    assert "hello south" in [line["message"] for line in logs["lines"]]

"""REST API: /api/v1/jobs/ (definitions with steps, last run, next fire)."""

from __future__ import annotations

import zoneinfo
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User

from core.models import AuditEvent
from jobs.models import Job, Step
from runs.models import Run
from runs.services import run_trigger
from tests.conftest import api_client
from tests.factories import ConnectorFactory, make_job

JOBS = "/api/v1/jobs/"
NOOP = {"callable": "workers.builtins:noop"}
UNKNOWN_DB = {"connector": "dw", "sql": "select 1"}
PASTED_SQL = {"connector": "dw", "sql": "SELECT * FROM sales WHERE region = '{{ params.region }}'"}
PASTED_QUERY = {
    "source": "dw", "target": "dw", "table": "t", "mode": "append", "query": "SELECT {{ params.region }} AS region"
}  # fmt: skip
ECHO_REGION = {"callable": "workers.builtins:echo", "message": "{{ params.region }}"}
JOB_KEYS = {
    "id", "name", "description", "enabled", "schedule", "timezone", "catchup", "max_concurrent_runs",
    "log_level", "params", "steps", "last_run", "next_fire_at",
}  # fmt: skip
STEP_KEYS = {"name", "type", "op_kwargs", "enabled", "retries", "retry_delay_s", "timeout_s", "queue"}


def job_body(**fields: Any) -> dict[str, Any]:
    body = {
        "id": "nightly-sales",
        "name": "Nightly sales",
        "schedule": "30 2 * * *",
        "timezone": "UTC",
        "params": {"region": "north"},
        "steps": [
            {"name": "F0001", "type": "python", "op_kwargs": {**NOOP}},
            {"name": "F0002", "type": "python", "op_kwargs": ECHO_REGION},
        ],
    }  # fmt: skip
    body.update(fields)
    return body


def step(**fields: Any) -> dict[str, Any]:
    return {"name": "F0001", "type": "python", "op_kwargs": NOOP, **fields}


def detail_url(job_id: str) -> str:
    return f"{JOBS}{job_id}/"


# --- who may do what ---------------------------------------------------------------------


def test_anonymous_gets_401_with_error_shape(db: None) -> None:
    response = api_client(None).get(JOBS)
    assert response.status_code == 401
    assert response.json()["errors"] == {}
    assert response.json()["detail"]
    assert response.headers["WWW-Authenticate"].startswith("Token")


def test_outsider_gets_403_naming_the_role(outsider: User) -> None:
    make_job(NOOP, id="etl")
    for response in (api_client(outsider).get(JOBS), api_client(outsider).get(detail_url("etl"))):
        assert response.status_code == 403
        assert "viewer" in response.json()["detail"]


def test_anonymous_and_outsider_cannot_create(outsider: User) -> None:
    assert api_client(None).post(JOBS, job_body(), format="json").status_code == 401
    assert api_client(outsider).post(JOBS, job_body(), format="json").status_code == 403
    assert not Job.objects.exists()


def test_viewer_can_list_and_read_a_job(viewer: User) -> None:
    make_job(NOOP, id="etl")
    listed = api_client(viewer).get(JOBS)
    assert listed.status_code == 200
    assert [job["id"] for job in listed.json()] == ["etl"]
    job = api_client(viewer).get(detail_url("etl")).json()
    assert set(job) == JOB_KEYS
    assert set(job["steps"][0]) == STEP_KEYS


@pytest.mark.parametrize("role", ["viewer", "operator"])
def test_viewer_and_operator_cannot_write_jobs(role: str, request: pytest.FixtureRequest) -> None:
    client = api_client(request.getfixturevalue(role))
    make_job(NOOP, id="etl")
    assert client.post(JOBS, job_body(), format="json").status_code == 403
    assert client.patch(detail_url("etl"), {"name": "x"}, format="json").status_code == 403
    assert client.put(detail_url("etl"), job_body(id="etl"), format="json").status_code == 403
    response = client.delete(detail_url("etl"))
    assert response.status_code == 403
    assert "editor" in response.json()["detail"]
    assert Job.objects.get().name != "x"
    assert not Job.objects.filter(pk="nightly-sales").exists()


def test_superuser_can_write_without_a_group(db: None) -> None:
    admin = User.objects.create_superuser("root", password="pw")
    assert api_client(admin).post(JOBS, job_body(), format="json").status_code == 201


# --- create, read, update, delete --------------------------------------------------------


def test_editor_creates_a_job_with_ordered_steps_and_an_audit_event(editor: User) -> None:
    response = api_client(editor).post(JOBS, job_body(), format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert set(body) == JOB_KEYS
    assert body["last_run"] is None
    assert [s["name"] for s in body["steps"]] == ["F0001", "F0002"]
    assert body["steps"][0] == {
        "name": "F0001", "type": "python", "op_kwargs": NOOP, "enabled": True,
        "retries": 0, "retry_delay_s": 0.0, "timeout_s": None, "queue": "default",
    }  # fmt: skip
    assert list(Step.objects.filter(job_id="nightly-sales").values_list("position", "name")) == [
        (1, "F0001"),
        (2, "F0002"),
    ]
    event = AuditEvent.objects.get(object_type="job")
    assert (event.actor, event.action, event.object_id) == ("user:edna", "create", "nightly-sales")
    assert event.diff["schedule"] == [None, "30 2 * * *"]


def test_put_replaces_the_steps_as_a_whole(editor: User) -> None:
    make_job(NOOP, NOOP, NOOP, id="nightly-sales", params={"region": "north"})
    body = job_body(
        steps=[{"name": "B", "type": "python", "op_kwargs": NOOP}, {"name": "A", "type": "python", "op_kwargs": NOOP}]
    )
    response = api_client(editor).put(detail_url("nightly-sales"), body, format="json")
    assert response.status_code == 200, response.json()
    assert [s["name"] for s in response.json()["steps"]] == ["B", "A"]
    assert list(Step.objects.filter(job_id="nightly-sales").values_list("name", flat=True)) == ["B", "A"]
    assert AuditEvent.objects.get(action="update").diff["steps"][0][0]["name"] == "F0001"


def test_put_takes_the_id_from_the_url(editor: User) -> None:
    make_job(NOOP, id="nightly-sales")
    body = {key: value for key, value in job_body().items() if key != "id"}
    response = api_client(editor).put(detail_url("nightly-sales"), body, format="json")
    assert response.status_code == 200, response.json()
    assert Job.objects.get().name == "Nightly sales"


def test_patch_without_steps_keeps_the_steps(editor: User) -> None:
    make_job(NOOP, NOOP, id="etl")
    response = api_client(editor).patch(detail_url("etl"), {"description": "hello"}, format="json")
    assert response.status_code == 200
    assert response.json()["description"] == "hello"
    assert len(response.json()["steps"]) == 2
    assert AuditEvent.objects.get(action="update").diff == {"description": ["", "hello"]}


def test_patch_with_steps_needs_whole_steps(editor: User) -> None:
    make_job(NOOP, id="etl")
    response = api_client(editor).patch(detail_url("etl"), {"steps": [{"name": "F0001"}]}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"] == {"steps.F0001.type": ["This field is required."]}
    assert Step.objects.get().type == "python"


def test_patch_of_params_rechecks_the_steps_that_use_them(editor: User) -> None:
    make_job({"callable": "workers.builtins:echo", "message": "{{ params.region }}"}, id="etl", params={"region": "n"})
    response = api_client(editor).patch(detail_url("etl"), {"params": {}}, format="json")
    assert response.status_code == 400
    assert "params.region" in response.json()["detail"]
    assert Job.objects.get().params == {"region": "n"}


def test_job_id_cannot_change(editor: User) -> None:
    make_job(NOOP, id="etl")
    response = api_client(editor).patch(detail_url("etl"), {"id": "other"}, format="json")
    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["id"]
    assert list(Job.objects.values_list("id", flat=True)) == ["etl"]


def test_creating_an_existing_id_is_400(editor: User) -> None:
    make_job(NOOP, id="nightly-sales")
    response = api_client(editor).post(JOBS, job_body(), format="json")
    assert response.status_code == 400
    assert "already exists" in response.json()["errors"]["id"][0]
    assert Job.objects.get().name != "Nightly sales"


def test_delete_of_a_job_without_runs(editor: User) -> None:
    make_job(NOOP, id="etl")
    assert api_client(editor).delete(detail_url("etl")).status_code == 204
    assert not Job.objects.exists()
    event = AuditEvent.objects.get()
    assert (event.action, event.object_id) == ("delete", "etl")


def test_delete_of_a_job_with_runs_is_409_and_keeps_it(editor: User) -> None:
    make_job(NOOP, id="etl")
    run_trigger(job_id="etl", triggered_by="cli")
    response = api_client(editor).delete(detail_url("etl"))
    assert response.status_code == 409
    assert "disable" in response.json()["detail"]
    assert Job.objects.filter(pk="etl").exists()


def test_unknown_job_is_404_naming_it(viewer: User) -> None:
    response = api_client(viewer).get(detail_url("nope"))
    assert response.status_code == 404
    assert response.json() == {"detail": 'job "nope" does not exist', "errors": {}}


# --- bad input is 400 and writes nothing ----------------------------------------------------


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"schedule": "every day"}, "schedule"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"params": ["a"]}, "params"),
        ({"catchup": "all"}, "catchup"),
        ({"max_concurrent_runs": 0}, "max_concurrent_runs"),
        ({"id": "not a slug"}, "id"),
        ({"steps": [{"name": "F0001", "type": "shell", "op_kwargs": {}}]}, "steps.F0001.type"),
        ({"steps": [{"name": "F0001", "type": "python", "op_kwargs": {}}]}, "steps.F0001.op_kwargs.callable"),
        ({"steps": [step(op_kwargs={"callable": "os:system"})]}, "steps.F0001.op_kwargs.callable"),
        ({"steps": [{"name": "F0001", "type": "python", "op_kwargs": "noop"}]}, "steps.F0001.op_kwargs"),
        ({"steps": [{"name": "F0001", "type": "python", "op_kwargs": NOOP, "retries": -1}]}, "steps.F0001.retries"),
        ({"steps": [{"name": "A", "type": "python", "op_kwargs": NOOP}] * 2}, "steps.A"),
        ({"steps": [step(type="sql_query", op_kwargs=UNKNOWN_DB)]}, "steps.F0001.op_kwargs.connector"),
        ({"steps": [step(type="sql_query", op_kwargs=PASTED_SQL)]}, "steps.F0001.op_kwargs.sql"),
        ({"steps": [step(type="sql_copy", op_kwargs=PASTED_QUERY)]}, "steps.F0001.op_kwargs.query"),
        ({"steps": [step(op_kwargs={"callable": "workers.housekeeping:purge_expired", "retention_days": 0})]},
         "steps.F0001.op_kwargs.callable"),
        ({"steps": [step(op_kwargs={"callable": "tests.steps:unmarked_helper"})]}, "steps.F0001.op_kwargs.callable"),
        ({"steps": {"F0001": {}}}, "steps"),
    ],
)  # fmt: skip
def test_bad_job_is_400_naming_the_field_and_creates_nothing(editor: User, change: dict[str, Any], field: str) -> None:
    response = api_client(editor).post(JOBS, job_body(**change), format="json")
    assert response.status_code == 400
    body = response.json()
    assert field in body["errors"], body
    assert body["detail"].startswith(f"{field}: ")
    assert Job.objects.count() == 0 and Step.objects.count() == 0 and AuditEvent.objects.count() == 0


def test_a_param_pasted_into_sql_is_400_with_the_fix(editor: User) -> None:
    response = api_client(editor).post(
        JOBS, job_body(steps=[step(type="sql_query", op_kwargs=PASTED_SQL)]), format="json"
    )

    assert response.status_code == 400
    assert response.json()["detail"] == (
        "steps.F0001.op_kwargs.sql: step F0001: sql must not contain {{ params.region }}: it would be pasted into SQL; "
        'bind it instead: "parameters": {"region": "{{ params.region }}"} and write %(region)s (postgres) '
        "or :region (sqlite)"
    )
    assert not Job.objects.exists()


def test_the_housekeeping_job_may_keep_its_purge_step(editor: User) -> None:
    purge = step(name="purge", op_kwargs={"callable": "workers.housekeeping:purge_expired"})

    response = api_client(editor).post(JOBS, job_body(id="housekeeping", steps=[purge]), format="json")

    assert response.status_code == 201, response.json()


def test_unknown_connector_error_lists_the_known_ones(editor: User) -> None:
    ConnectorFactory(name="erp")
    step = {"name": "F0001", "type": "sql_query", "op_kwargs": {"connector": "dw", "sql": "select 1"}}
    response = api_client(editor).post(JOBS, job_body(steps=[step]), format="json")
    assert (
        response.json()["detail"]
        == 'steps.F0001.op_kwargs.connector: step F0001: connector "dw" does not exist (known: erp)'
    )


def test_non_json_body_is_refused(editor: User) -> None:
    response = api_client(editor).post(JOBS, {"id": "x"})  # multipart form
    assert response.status_code == 415
    assert set(response.json()) == {"detail", "errors"}


# --- read-only fields -------------------------------------------------------------------------


def test_last_run_is_the_newest_run_summary(viewer: User) -> None:
    make_job(NOOP, id="etl")
    run_trigger(job_id="etl", triggered_by="cli")
    newest, _ = run_trigger(job_id="etl", triggered_by="cron")
    last_run = api_client(viewer).get(detail_url("etl")).json()["last_run"]
    assert last_run["id"] == newest.id
    assert last_run["triggered_by"] == "cron"
    assert "parameters" not in last_run and "steps" not in last_run


def test_next_fire_at_is_computed_in_the_jobs_timezone(viewer: User) -> None:
    make_job(NOOP, id="paris", schedule="30 2 * * *", timezone="Europe/Paris")
    value = api_client(viewer).get(detail_url("paris")).json()["next_fire_at"]
    assert value.endswith("Z")
    fire = datetime.fromisoformat(value.replace("Z", "+00:00"))
    local = fire.astimezone(zoneinfo.ZoneInfo("Europe/Paris"))
    assert (local.hour, local.minute) == (2, 30)
    assert datetime.now(UTC) < fire <= datetime.now(UTC) + timedelta(hours=25)


def test_next_fire_at_is_null_without_schedule_or_when_disabled(viewer: User) -> None:
    make_job(NOOP, id="manual")
    make_job(NOOP, id="off", schedule="* * * * *", enabled=False)
    jobs = {job["id"]: job for job in api_client(viewer).get(JOBS).json()}
    assert jobs["manual"]["next_fire_at"] is None
    assert jobs["off"]["next_fire_at"] is None


def test_read_only_fields_are_ignored_on_write(editor: User) -> None:
    response = api_client(editor).post(
        JOBS, job_body(last_run={"id": "x"}, next_fire_at="2020-01-01T00:00:00Z"), format="json"
    )
    assert response.status_code == 201
    assert response.json()["last_run"] is None


def test_job_list_query_count_does_not_grow_with_jobs(viewer: User, django_assert_max_num_queries: Any) -> None:
    def add_jobs(first: int) -> None:
        for n in range(first, first + 5):
            make_job(NOOP, NOOP, id=f"job{n}")
            run_trigger(job_id=f"job{n}", triggered_by="cli")

    add_jobs(0)
    client = api_client(viewer)
    client.get(JOBS)  # warm up: token and groups
    with django_assert_max_num_queries(8) as few:
        client.get(JOBS)
    add_jobs(5)
    with django_assert_max_num_queries(len(few.captured_queries)):
        assert len(client.get(JOBS).json()) == 10
    assert Run.objects.count() == 10

"""Hostile bodies: too large, too many keys, too deep, NUL characters, unstorable text and
numbers. Each is a 400 (413 for a body over the limit) naming the field, and nothing is stored."""

from __future__ import annotations

import json
from io import StringIO
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import RequestDataTooBig
from django.core.management import CommandError, call_command
from django.test import Client
from rest_framework.request import Request
from rest_framework.test import APIClient, APIRequestFactory

from core.api.errors import exception_handler
from core.api.pagination import NewestFirst
from core.models import AuditEvent
from jobs.models import Connector, Job, Step
from runs.models import Run
from runs.services import run_trigger
from tests.conftest import api_client
from tests.factories import ConnectorFactory, admin_job_form, end_as, make_job

NOOP = {"callable": "workers.builtins:noop"}
ECHO = {"callable": "workers.builtins:echo", "message": "hello {{ params.region }}"}
RUNS = "/api/v1/jobs/etl/runs/"
JOBS = "/api/v1/jobs/"
CONNECTORS = "/api/v1/connectors/"
MB = 1024 * 1024


@pytest.fixture
def job(db: None) -> Job:
    return make_job(NOOP, ECHO, id="etl", params={"region": "north"})


def nested(levels: int) -> Any:
    """`levels` lists inside one another: [[[…0…]]]."""
    value: Any = 0
    for _ in range(levels):
        value = [value]
    return value


def post_raw(user: User, url: str, text: str, method: str = "post") -> Any:
    return getattr(api_client(user), method)(url, text.encode(), content_type="application/json")


def assert_refused(response: Any, status: int, field: str) -> dict[str, Any]:
    assert response.status_code == status, response.content[:500]
    body = response.json()
    assert body["detail"]
    assert any(key == field or key.startswith(f"{field}.") for key in body["errors"]), body
    return body


def assert_nothing_stored(job: Job | None = None) -> None:
    assert Run.objects.count() == 0
    assert AuditEvent.objects.count() == 0
    if job is not None:
        stored = Job.objects.get(pk=job.pk)
        assert stored.params == job.params
        assert [s.op_kwargs for s in Step.objects.filter(job=job).order_by("position")] == [NOOP, ECHO]


# --- request bodies ----------------------------------------------------------------------------


def test_3_mb_of_params_is_413_naming_the_setting(job: Job, operator: User) -> None:
    response = api_client(operator).post(RUNS, {"params": {"x": "a" * (3 * MB)}}, format="json")
    assert response.status_code == 413
    body = response.json()
    assert "NOMAFLOW_MAX_BODY_BYTES" in body["detail"] and "1048576" in body["detail"]
    assert body["errors"] == {}
    assert_nothing_stored(job)


def test_djangos_own_body_bound_is_a_json_413() -> None:
    # Raised by Django when something reads request.body past DATA_UPLOAD_MAX_MEMORY_SIZE.
    response = exception_handler(RequestDataTooBig("Request body exceeded"), {})
    assert response is not None and response.status_code == 413
    assert "NOMAFLOW_MAX_BODY_BYTES" in response.data["detail"] and response.data["errors"] == {}


def test_a_form_body_is_a_json_415_even_when_large(job: Job, operator: User) -> None:
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(operator)
    client.cookies["csrftoken"] = "c" * 32  # so the CSRF check gets as far as the form
    response = client.post(RUNS, "params=" + "a" * (2 * MB), content_type="application/x-www-form-urlencoded")
    assert response.status_code == 415
    assert "application/x-www-form-urlencoded" in response.json()["detail"]
    assert_nothing_stored(job)


def test_params_over_max_json_bytes_is_400_naming_params(job: Job, operator: User) -> None:
    response = api_client(operator).post(RUNS, {"params": {"x": "a" * 100_000}}, format="json")
    body = assert_refused(response, 400, "params")
    assert "NOMAFLOW_MAX_JSON_BYTES" in body["errors"]["params"][0]
    assert_nothing_stored(job)


def test_200000_keys_are_400_naming_params(job: Job, operator: User, settings: Any) -> None:
    settings.NOMAFLOW_MAX_BODY_BYTES = 8 * MB  # so the key count, not the body size, refuses it
    params = {f"k{i}": 0 for i in range(200_000)}
    response = api_client(operator).post(RUNS, {"params": params}, format="json")
    body = assert_refused(response, 400, "params")
    assert "keys" in body["errors"]["params"][0] and "NOMAFLOW_MAX_JSON_KEYS" in body["detail"]
    assert_nothing_stored(job)


def test_keys_over_the_limit_in_a_small_body_are_400(job: Job, operator: User) -> None:
    params = {"region": "south", "more": [{"k": i} for i in range(1000)]}
    assert_refused(api_client(operator).post(RUNS, {"params": params}, format="json"), 400, "params")
    assert_nothing_stored(job)


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ('{"params": {"x": "a\\u0000b"}}', "params.x"),
        ('{"params": {"a\\u0000b": 1}}', "params"),
        ('{"params": {"x": ["ok", "\\ud800"]}}', "params.x.1"),
        ('{"params": {"x": 1e400}}', "params.x"),
    ],
)
def test_unstorable_text_and_numbers_are_400_naming_the_path(job: Job, operator: User, text: str, field: str) -> None:
    body = assert_refused(post_raw(operator, RUNS, text), 400, field)
    assert field in body["errors"]
    assert_nothing_stored(job)


def test_100000_nested_arrays_are_400_not_a_recursion_error(job: Job, operator: User) -> None:
    text = '{"params": {"x": ' + "[" * 100_000 + "]" * 100_000 + "}}"
    body = assert_refused(post_raw(operator, RUNS, text), 400, "params.x")
    assert "NOMAFLOW_MAX_JSON_DEPTH" in body["detail"]
    assert_nothing_stored(job)


def test_nested_arrays_inside_strings_do_not_count(job: Job, operator: User) -> None:
    text = json.dumps({"params": {"x": "[" * 5000 + '\\"{'}})
    response = post_raw(operator, RUNS, text)
    assert response.status_code == 201, response.json()


def test_deep_but_legal_params_are_stored(job: Job, operator: User) -> None:
    params = {"x": nested(15)}  # params itself is the 16th level
    response = api_client(operator).post(RUNS, {"params": params}, format="json")
    assert response.status_code == 201, response.json()
    assert Run.objects.get().parameters["params"]["x"] == nested(15)


def test_one_level_more_is_400_naming_the_deepest_part(job: Job, operator: User) -> None:
    response = api_client(operator).post(RUNS, {"params": {"x": nested(16)}}, format="json")
    body = assert_refused(response, 400, "params.x")
    assert "more than 16 levels" in body["detail"]
    assert_nothing_stored(job)


def test_body_that_is_not_utf8_is_400(job: Job, operator: User) -> None:
    response = api_client(operator).post(RUNS, b'{"params": {"x": "\xff"}}', content_type="application/json")
    assert response.status_code == 400
    assert "JSON" in response.json()["detail"]
    assert_nothing_stored(job)


# --- trigger and replay overrides ------------------------------------------------------------------


def test_op_kwargs_override_over_the_bound_is_400_naming_the_step(job: Job, editor: User) -> None:
    overrides = {"steps": {"F0002": {"op_kwargs": {"message": "a" * 100_000}}}}
    response = api_client(editor).post(RUNS, overrides, format="json")
    body = assert_refused(response, 400, "steps.F0002.op_kwargs")
    assert "NOMAFLOW_MAX_JSON_BYTES" in body["errors"]["steps.F0002.op_kwargs"][0]
    assert_nothing_stored(job)


def test_op_kwargs_override_with_a_nul_is_400_naming_the_key(job: Job, editor: User) -> None:
    text = '{"steps": {"F0002": {"op_kwargs": {"message": "hi\\u0000"}}}}'
    assert_refused(post_raw(editor, RUNS, text), 400, "steps.F0002.op_kwargs.message")
    assert_nothing_stored(job)


def test_overrides_that_push_the_jobs_params_over_the_bound_are_400(operator: User) -> None:
    job = make_job(NOOP, id="etl", params={"a": "x" * 40_000})
    response = api_client(operator).post(RUNS, {"params": {"b": "y" * 40_000}}, format="json")
    assert_refused(response, 400, "params")
    assert Run.objects.count() == 0 and Job.objects.get(pk=job.pk).params == {"a": "x" * 40_000}


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ('{"params": {"region": "so\\u0000uth"}}', "params.region"),
        ('{"params": {"x": ' + "[" * 100_000 + "]" * 100_000 + "}}", "params.x"),
    ],
    ids=["nul", "100000-nested-arrays"],
)
def test_replay_with_hostile_params_is_400_and_starts_nothing(job: Job, operator: User, text: str, field: str) -> None:
    done, _ = run_trigger(job_id=job.id, triggered_by="cli")
    done = end_as(done, "SUCCEEDED", "SUCCEEDED")
    audited = AuditEvent.objects.count()
    assert_refused(post_raw(operator, f"/api/v1/runs/{done.id}/replay/", text), 400, field)
    assert list(Run.objects.all()) == [done]
    assert AuditEvent.objects.count() == audited


def test_cli_trigger_param_with_a_nul_is_a_clear_error(job: Job) -> None:
    with pytest.raises(CommandError, match=r"params\.region: contains a NUL character"):
        call_command("trigger", "etl", "--param", 'region="so\\u0000uth"', stdout=StringIO())
    assert_nothing_stored(job)


def test_cli_trigger_param_nested_100000_deep_is_a_clear_error(job: Job) -> None:
    deep = "[" * 100_000 + "]" * 100_000
    with pytest.raises(CommandError, match=r"--param region: nests deeper than 16 levels"):
        call_command("trigger", "etl", "--param", f"region={deep}", stdout=StringIO())
    assert_nothing_stored(job)


# --- job and connector definitions ------------------------------------------------------------------


def job_body(**fields: Any) -> dict[str, Any]:
    steps = [
        {"name": "F0001", "type": "python", "op_kwargs": NOOP},
        {"name": "F0002", "type": "python", "op_kwargs": ECHO},
    ]
    return {"id": "etl", "name": "ETL", "params": {"region": "north"}, "steps": steps, **fields}


def with_op_kwargs(op_kwargs: Any) -> dict[str, Any]:
    body = job_body()
    body["steps"][0]["op_kwargs"] = {"callable": "tests.steps:show_params", **op_kwargs}
    return body


HOSTILE_JOBS = [
    (job_body(params={"region": "north", "x": "a\x00"}), "params.x"),
    (job_body(params={"region": "north", "x": "a" * 100_000}), "params"),
    (job_body(params={"region": "north", "x": nested(16)}), "params.x"),
    (with_op_kwargs({"pad": "a" * 100_000}), "steps.F0001.op_kwargs"),
    (with_op_kwargs({"pad": nested(16)}), "steps.F0001.op_kwargs.pad"),
    (with_op_kwargs({"pad\x00": 1}), "steps.0.op_kwargs"),  # the parser's path: by list index
    (with_op_kwargs({"pad": [{"k": i} for i in range(1000)]}), "steps.F0001.op_kwargs"),
]


@pytest.mark.parametrize(("body", "field"), HOSTILE_JOBS)
def test_hostile_job_create_is_400_and_creates_nothing(editor: User, body: dict[str, Any], field: str) -> None:
    response = api_client(editor).post(JOBS, body, format="json")
    assert_refused(response, 400, field)
    assert not Job.objects.exists()
    assert_nothing_stored()


@pytest.mark.parametrize(("body", "field"), HOSTILE_JOBS)
def test_hostile_job_update_is_400_and_changes_nothing(
    job: Job, editor: User, body: dict[str, Any], field: str
) -> None:
    assert_refused(api_client(editor).put(f"{JOBS}etl/", body, format="json"), 400, field)
    assert_nothing_stored(job)


def test_hostile_job_patch_of_params_changes_nothing(job: Job, editor: User) -> None:
    response = post_raw(editor, f"{JOBS}etl/", '{"params": {"region": "\\u0000"}}', method="patch")
    assert_refused(response, 400, "params.region")
    assert_nothing_stored(job)


def test_deep_but_legal_op_kwargs_are_saved(editor: User) -> None:
    # The deepest field of any body: 3 levels in, 16 levels of its own.
    body = with_op_kwargs({"pad": nested(15)})
    response = api_client(editor).post(JOBS, body, format="json")
    assert response.status_code == 201, response.json()
    assert Step.objects.get(name="F0001").op_kwargs["pad"] == nested(15)


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"headers": {"X-Team": "da\x00ta"}}, "options.headers.X-Team"),
        ({"headers": {"X-Pad": "a" * 100_000}}, "options"),
        ({"headers": nested(16)}, "options.headers"),
    ],
)
def test_hostile_connector_options_are_400_and_store_nothing(editor: User, options: Any, field: str) -> None:
    body = {"name": "api", "kind": "http", "url": "https://api.example", "options": options}
    assert_refused(api_client(editor).post(CONNECTORS, body, format="json"), 400, field)
    assert not Connector.objects.exists()
    assert_nothing_stored()


def test_hostile_connector_update_keeps_the_stored_options(editor: User) -> None:
    ConnectorFactory(name="api", kind="http", url="https://api.example", options={"headers": {}})
    body = {"name": "api", "kind": "http", "url": "https://api.example", "options": {"headers": {"a": "\x00"}}}
    assert_refused(api_client(editor).put(f"{CONNECTORS}api/", body, format="json"), 400, "options.headers.a")
    assert Connector.objects.get().options == {"headers": {}}
    assert_nothing_stored()


def test_load_jobs_refuses_a_nul_in_params(tmp_path: Any, db: None) -> None:
    path = tmp_path / "jobs.json"
    path.write_text(json.dumps([job_body(params={"region": "no\x00rth"})]))
    with pytest.raises(CommandError, match=r'job "etl": params\.region: contains a NUL character'):
        call_command("load_jobs", str(path), stdout=StringIO())
    assert not Job.objects.exists()


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_load_jobs_refuses_a_file_nested_100000_deep(tmp_path: Any, db: None, suffix: str) -> None:
    path = tmp_path / f"jobs{suffix}"
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(CommandError, match="nests too deep to read"):
        call_command("load_jobs", str(path), stdout=StringIO())
    assert not Job.objects.exists()


@pytest.mark.parametrize(
    ("field", "text", "message"),
    [
        ("params", '{"x": "a\\u0000b"}', "x: contains a NUL character"),
        ("params", '{"x": "' + "a" * 100_000 + '"}', "NOMAFLOW_MAX_JSON_BYTES"),
        ("steps-0-op_kwargs", '{"x": ' + "[" * 100_000 + "]" * 100_000 + "}", "NOMAFLOW_MAX_JSON_DEPTH"),
    ],
    ids=["nul-in-params", "large-params", "100000-nested-arrays-in-op_kwargs"],
)
def test_admin_json_fields_take_the_same_bounds(db: None, field: str, text: str, message: str) -> None:
    client = Client()
    client.force_login(User.objects.create_superuser("root", password="pw-root"))
    response = client.post("/admin/jobs/job/add/", admin_job_form(**{field: text}))
    assert response.status_code == 200  # the form again, with the error
    assert message in response.content.decode()
    assert not Job.objects.exists()


# --- query bounds, as they were -------------------------------------------------------------------------


def test_page_size_is_capped_at_the_maximum() -> None:
    request = Request(APIRequestFactory().get("/api/v1/runs/", {"page_size": "10000000"}))
    assert NewestFirst().get_page_size(request) == NewestFirst.max_page_size == 500

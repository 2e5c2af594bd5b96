"""The OpenAPI document lists every status each operation can return (core/api/schema.py),
and each listed error is one the API really answers, in the one Error shape."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.urls import include, path
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient

from jobs.models import Connector
from runs.models import Run
from tests.conftest import api_client
from tests.factories import ConnectorFactory, end_as, make_job

# The operations whose service raises StateConflict (each view declares its `conflicts`).
CONFLICTS = {"jobs_destroy", "connectors_destroy", "runs_cancel_create", "runs_replay_create"}
ERROR_REF = "#/components/schemas/Error"
# Query strings that each operation with query parameters refuses (one bad parameter).
BAD_QUERIES = {
    "jobs_runs_list": "state=SLEEPING",
    "runs_list": "state=SLEEPING",
    "runs_logs_retrieve": "limit=0",
    "schedule_list": "start=yesterday&end=2026-11-01",
}


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    generator = SchemaGenerator(patterns=[path("api/v1/", include("runs.api.urls"))])
    return generator.get_schema(request=None, public=True)


def operations(schema: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for url, methods in schema["paths"].items():
        for method, operation in methods.items():
            yield method, url, operation


def errors_of(operation: dict[str, Any]) -> set[int]:
    return {int(code) for code in operation["responses"] if int(code) >= 400}


def test_every_operation_lists_the_errors_its_facts_imply(schema: dict[str, Any]) -> None:
    for method, url, operation in operations(schema):
        body = "requestBody" in operation
        query = {p["name"] for p in operation.get("parameters", []) if p["in"] == "query"}
        expected = {401, 403, 503}  # every API view needs a role; a full pool can answer anything
        expected |= {400} if body or query else set()
        expected |= {404} if "{" in url or "cursor" in query else set()
        expected |= {413, 415} if body else set()
        expected |= {409} if operation["operationId"] in CONFLICTS else set()
        assert errors_of(operation) == expected, (method, url)


def test_every_error_is_the_one_error_component_and_503_says_when_to_retry(schema: dict[str, Any]) -> None:
    for _method, _url, operation in operations(schema):
        for code in errors_of(operation):
            response = operation["responses"][str(code)]
            assert response["content"] == {"application/json": {"schema": {"$ref": ERROR_REF}}}
            assert response["description"]
        assert "Retry-After" in operation["responses"]["503"]["headers"]
    error = schema["components"]["schemas"]["Error"]
    assert set(error["required"]) == {"detail", "errors"}


def test_conflicts_name_operations_that_exist(schema: dict[str, Any]) -> None:
    ids = {operation["operationId"] for _m, _u, operation in operations(schema)}
    assert set(CONFLICTS) <= ids
    assert set(BAD_QUERIES) == {
        op["operationId"]
        for _m, _u, op in operations(schema)
        if any(p["in"] == "query" for p in op.get("parameters", []))
    }


def test_request_components_leave_out_read_only_fields(schema: dict[str, Any]) -> None:
    components = schema["components"]["schemas"]
    job_request = components["JobRequest"]
    assert not {"last_run", "next_fire_at"} & set(job_request["properties"])
    assert set(job_request["required"]) == {"id", "name"}
    assert {"last_run", "next_fire_at"} <= set(components["Job"]["required"])
    trigger = schema["paths"]["/api/v1/jobs/{id}/runs/"]["post"]["requestBody"]["content"]["application/json"]
    assert trigger["schema"] == {"$ref": "#/components/schemas/OverridesRequest"}
    # Free-form JSON is an object, so a client types it as a mapping.
    assert components["Job"]["properties"]["params"]["type"] == "object"
    assert components["Run"]["properties"]["parameters"]["allOf"] == [{"$ref": "#/components/schemas/RunParameters"}]


# --- each listed error, answered for real ---------------------------------------------


@pytest.fixture
def objects(db: None) -> dict[str, str]:
    """An object for each kind of path parameter: a job (with a queued run), a run, a connector."""
    job = make_job({"callable": "workers.builtins:noop"})
    client = api_client(User.objects.create_superuser("root-o"))
    run_id = client.post(f"/api/v1/jobs/{job.id}/runs/", {}, format="json").json()["id"]
    return {"jobs": job.id, "runs": run_id, "connectors": ConnectorFactory().name}


def concrete(url: str, objects: dict[str, str], missing: bool = False) -> str:
    if "{" not in url:
        return url
    kind = url.split("/")[3]  # /api/v1/<kind>/{id}/…
    value = "nosuch0thing" if missing else objects[kind]
    return url.replace("{id}", value).replace("{name}", value)


def call(client: APIClient, method: str, url: str, body: Any = None, **extra: Any) -> Any:
    if body is None:
        return getattr(client, method)(url, **extra)
    return getattr(client, method)(url, body, **extra)


def assert_error(response: Any, code: int, where: str) -> None:
    assert response.status_code == code, (where, response.status_code, response.content[:300])
    assert response["Content-Type"] == "application/json", where
    assert set(response.json()) == {"detail", "errors"}, where


@pytest.mark.django_db
def test_anonymous_is_401_and_outsider_is_403_everywhere(
    schema: dict[str, Any], objects: dict[str, str], outsider: User
) -> None:
    for method, url, _operation in operations(schema):
        target = concrete(url, objects)
        assert_error(call(api_client(None), method, target), 401, f"{method} {url}")
        assert_error(call(api_client(outsider), method, target), 403, f"{method} {url}")


def test_unknown_ids_and_cursors_are_404(schema: dict[str, Any], objects: dict[str, str], editor: User) -> None:
    client = api_client(editor)
    for method, url, operation in operations(schema):
        if "{" in url:
            assert_error(call(client, method, concrete(url, objects, missing=True), {}, format="json"), 404, url)
        elif 404 in errors_of(operation):
            assert_error(call(client, method, f"{url}?cursor=not-a-cursor"), 404, url)
    nul_cursor = "cD0AeA=="  # p=<NUL>x: decodes, but PostgreSQL cannot compare with it
    assert_error(client.get(f"/api/v1/runs/?cursor={nul_cursor}"), 404, "cursor holding NUL")


def test_bodies_are_checked_for_shape_size_and_media_type(
    schema: dict[str, Any], objects: dict[str, str], editor: User, settings: Any
) -> None:
    settings.NOMAFLOW_MAX_BODY_BYTES = 1000
    client = api_client(editor)
    for method, url, operation in operations(schema):
        if "requestBody" not in operation:
            continue
        target, where = concrete(url, objects), f"{method} {url}"
        assert_error(call(client, method, target, [], format="json"), 400, where)
        assert_error(call(client, method, target, {"x": "y" * 2000}, format="json"), 413, where)
        assert_error(call(client, method, target, "id=x", content_type="text/plain"), 415, where)


def test_bad_query_parameters_are_400(schema: dict[str, Any], objects: dict[str, str], viewer: User) -> None:
    client = api_client(viewer)
    for method, url, operation in operations(schema):
        if operation["operationId"] in BAD_QUERIES:
            target = f"{concrete(url, objects)}?{BAD_QUERIES[operation['operationId']]}"
            assert_error(call(client, method, target), 400, target)


def test_each_listed_conflict_is_answered(objects: dict[str, str], editor: User) -> None:
    client = api_client(editor)
    run = Run.objects.get(pk=objects["runs"])
    make_job({"type": "sql_query", "connector": objects["connectors"], "sql": "select 1"}, id="uses-conn")
    assert_error(client.delete(f"/api/v1/jobs/{objects['jobs']}/"), 409, "job with runs")
    assert_error(client.delete(f"/api/v1/connectors/{objects['connectors']}/"), 409, "connector in use")
    assert_error(client.post(f"/api/v1/runs/{run.id}/replay/", {}, format="json"), 409, "replay in flight")
    end_as(run, "SUCCEEDED")
    assert_error(client.post(f"/api/v1/runs/{run.id}/cancel/"), 409, "cancel of a finished run")
    assert Connector.objects.filter(name=objects["connectors"]).exists()

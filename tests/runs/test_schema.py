"""The OpenAPI schema (/api/v1/schema/) and the interactive docs (/api/v1/docs/), both for
viewers and above only."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.test import Client
from django.urls import include, path
from drf_spectacular.drainage import GENERATOR_STATS
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.validation import validate_schema

from tests.conftest import api_client


def test_schema_is_served_and_lists_the_endpoints(viewer: User) -> None:
    response = api_client(viewer).get("/api/v1/schema/?format=json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    for expected in (
        "/api/v1/jobs/", "/api/v1/jobs/{id}/", "/api/v1/jobs/{id}/runs/", "/api/v1/connectors/",
        "/api/v1/connectors/{name}/", "/api/v1/runs/", "/api/v1/runs/{id}/", "/api/v1/runs/{id}/logs/",
        "/api/v1/runs/{id}/logs.txt",
    ):  # fmt: skip
        assert expected in paths
    trigger = paths["/api/v1/jobs/{id}/runs/"]["post"]
    assert "201" in trigger["responses"]
    assert "Idempotency-Key" in [p["name"] for p in trigger["parameters"]]
    log_params = {p["name"] for p in paths["/api/v1/runs/{id}/logs/"]["get"]["parameters"]}
    assert {"after", "step", "level", "limit"} <= log_params


def test_schema_needs_the_viewer_role(outsider: User) -> None:
    anonymous = api_client(None).get("/api/v1/schema/")  # YAML by default, but an error is JSON
    assert anonymous.status_code == 401
    assert anonymous["Content-Type"] == "application/json" and "Authorization: Token" in anonymous.json()["detail"]
    forbidden = api_client(outsider).get("/api/v1/schema/?format=json")
    assert forbidden.status_code == 403 and "viewer role" in forbidden.json()["detail"]


def test_docs_page_is_served(viewer: User) -> None:
    client = Client()
    client.force_login(viewer)
    response = client.get("/api/v1/docs/")
    assert response.status_code == 200
    assert b"swagger" in response.content.lower()
    # Swagger UI's start-up code is a script file of its own (no inline script under the CSP).
    script = client.get("/api/v1/docs/?script=")
    assert script.status_code == 200 and script["Content-Type"].startswith("application/javascript")
    assert b"SwaggerUIBundle(" in script.content and b"SwaggerUIBundle(" not in response.content


def test_docs_page_needs_the_viewer_role(outsider: User) -> None:
    anonymous = Client().get("/api/v1/docs/")
    assert (anonymous.status_code, anonymous["Location"]) == (302, "/nomaflow/login/?next=/api/v1/docs/")
    client = Client()
    client.force_login(outsider)
    assert client.get("/api/v1/docs/").status_code == 403
    assert client.get("/api/v1/docs/?script=").status_code == 403


def test_api_schema_generates_valid_without_warnings() -> None:
    GENERATOR_STATS.reset()
    generator = SchemaGenerator(patterns=[path("api/v1/", include("runs.api.urls"))])
    with GENERATOR_STATS.silence():
        schema = generator.get_schema(request=None, public=True)
    validate_schema(schema)
    # No warning at all (enum name collisions included: ENUM_NAME_OVERRIDES in settings names
    # them), so `check --deploy`, which reports each one, stays clean.
    assert not GENERATOR_STATS._warn_cache
    assert not GENERATOR_STATS._error_cache

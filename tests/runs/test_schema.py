"""The OpenAPI schema (/api/v1/schema/) and the interactive docs (/api/v1/docs/)."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.test import Client
from django.urls import include, path
from drf_spectacular.drainage import GENERATOR_STATS
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.validation import validate_schema

# Run and StepRun both have a `state` enum; naming them needs ENUM_NAME_OVERRIDES in settings.
KNOWN_WARNINGS = ("enum naming encountered a non-optimally resolvable collision",)


def test_schema_is_served_and_lists_the_endpoints(db: None) -> None:
    response = Client().get("/api/v1/schema/?format=json")
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


def test_docs_page_is_served(db: None) -> None:
    User.objects.create_user("vera")
    response = Client().get("/api/v1/docs/")
    assert response.status_code == 200
    assert b"swagger" in response.content.lower()


def test_api_schema_generates_valid_without_warnings() -> None:
    GENERATOR_STATS.reset()
    generator = SchemaGenerator(patterns=[path("api/v1/", include("runs.api.urls"))])
    with GENERATOR_STATS.silence():
        schema = generator.get_schema(request=None, public=True)
    validate_schema(schema)
    warnings = [w for w in GENERATOR_STATS._warn_cache if not any(k in w for k in KNOWN_WARNINGS)]
    assert not warnings
    assert not GENERATOR_STATS._error_cache

"""What schemathesis found (tests/integration/test_schemathesis.py), each pinned by a small test."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from runs.models import Run
from tests.conftest import api_client
from tests.factories import make_job


def schedule(client: APIClient, **query: str) -> tuple[int, dict]:
    response = client.get("/api/v1/schedule/", query)
    return response.status_code, response.json()


@pytest.fixture
def viewer_client(viewer: User) -> APIClient:
    make_job({"callable": "workers.builtins:noop"}, schedule="*/5 * * * *")
    return api_client(viewer)


def test_schedule_takes_offsets_postgresql_would_refuse(viewer_client: APIClient) -> None:
    # -16:50 is a valid ISO offset, but PostgreSQL refuses offsets past ±15:59 (it was a 500).
    code, body = schedule(viewer_client, start="2030-09-05T09:48:19Z", end="2030-09-05T10:57:16-16:50")
    assert code == 200
    assert body[0]["at"] == "2030-09-05T09:50:00Z" and body[-1]["at"] == "2030-09-06T03:45:00Z"


@pytest.mark.parametrize(
    ("start", "end", "field"),
    [
        ("0001-01-01T00:00:00+01:00", "0001-01-02", "start"),  # before UTC's first instant in Python: a 500
        ("9999-12-30", "9999-12-31", "start"),  # the cron arithmetic would pass the year 9999: a 500
        ("8999-12-30", "9000-01-01", "end"),
    ],
)
def test_schedule_refuses_times_near_the_ends_of_the_calendar(
    viewer_client: APIClient, start: str, end: str, field: str
) -> None:
    code, body = schedule(viewer_client, start=start, end=end)
    assert code == 400 and body["errors"] == {field: ["between 1970 and 8999"]}, body
    assert "1970 to 8999" in body["detail"]


def test_schedule_refuses_a_job_id_with_nul(viewer_client: APIClient) -> None:
    code, body = schedule(viewer_client, start="2026-11-01", end="2026-11-02", job="a\x00b")
    assert code == 400 and body["errors"] == {"job": ["contains NUL"]}


def test_options_of_the_text_log_is_405_in_json(viewer: User, run: Run) -> None:
    # It was a 500: the plain-text renderer cannot render OPTIONS' description of the view.
    response = api_client(viewer).options(f"/api/v1/runs/{run.id}/logs.txt")
    assert response.status_code == 405 and response["Content-Type"] == "application/json"
    assert set(response.json()) == {"detail", "errors"}


def test_a_cursor_holding_nul_is_404_like_any_bad_cursor(viewer: User) -> None:
    client = api_client(viewer)
    # "p=<NUL>x", base64: it decodes, but PostgreSQL cannot compare an id with it (it was a 500).
    for url in ("/api/v1/runs/?cursor=cD0AeA==", "/api/v1/runs/?cursor=garbage"):
        response = client.get(url)
        assert response.status_code == 404 and "cursor" in response.json()["detail"].lower(), url

"""REST API: run history (/runs/, /jobs/{id}/runs/) and run detail (/runs/{id}/)."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User

from jobs.models import Job
from runs.choices import RunState
from runs.models import Run
from runs.services import run_trigger
from tests.conftest import api_client
from tests.factories import make_job

NOOP = {"callable": "workers.builtins:noop"}
SUMMARY_KEYS = {
    "id", "job", "state", "triggered_by", "actor", "queued_at", "started_at", "finished_at", "duration_s",
    "log_level", "replay_of", "canceled_by", "scheduled_for", "step_summary", "url",
}  # fmt: skip


def trigger(job_id: str, triggered_by: str = "cli", **fields: Any) -> Run:
    run, _ = run_trigger(job_id=job_id, triggered_by=triggered_by, **fields)
    return run


@pytest.fixture
def runs(db: None) -> list[Run]:
    """Two jobs, five runs, oldest first."""
    make_job(NOOP, NOOP, id="etl")
    make_job(NOOP, id="report")
    made = [trigger("etl"), trigger("report", "cron"), trigger("etl", "api"), trigger("report"), trigger("etl", "cron")]
    Run.objects.filter(pk=made[0].pk).update(state=RunState.SUCCEEDED)
    return made


def ids(response: Any) -> list[str]:
    assert response.status_code == 200, response.json()
    return [run["id"] for run in response.json()["results"]]


# --- who may do what ---------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/v1/runs/", "/api/v1/jobs/etl/runs/", "RUN"])
def test_anonymous_is_401_and_outsider_is_403(path: str, outsider: User, runs: list[Run]) -> None:
    path = f"/api/v1/runs/{runs[0].id}/" if path == "RUN" else path
    assert api_client(None).get(path).status_code == 401
    response = api_client(outsider).get(path)
    assert response.status_code == 403
    assert "viewer" in response.json()["detail"]


@pytest.mark.parametrize("role", ["viewer", "operator", "editor"])
def test_every_role_can_read_runs(role: str, request: pytest.FixtureRequest, runs: list[Run]) -> None:
    client = api_client(request.getfixturevalue(role))
    assert client.get("/api/v1/runs/").status_code == 200
    assert client.get("/api/v1/jobs/etl/runs/").status_code == 200
    assert client.get(f"/api/v1/runs/{runs[0].id}/").status_code == 200


def test_runs_are_read_only(editor: User, runs: list[Run]) -> None:
    client = api_client(editor)
    assert client.post("/api/v1/runs/", {}, format="json").status_code == 405
    assert client.delete(f"/api/v1/runs/{runs[0].id}/").status_code == 405
    assert Run.objects.count() == 5


# --- lists -----------------------------------------------------------------------------------


def test_all_runs_newest_first_as_summaries(viewer: User, runs: list[Run]) -> None:
    response = api_client(viewer).get("/api/v1/runs/")
    assert ids(response) == [run.id for run in reversed(runs)]
    page = response.json()
    assert set(page) == {"next", "previous", "results"}
    first = page["results"][0]
    assert set(first) == SUMMARY_KEYS
    assert (first["job"], first["state"], first["triggered_by"]) == ("etl", "QUEUED", "cron")
    assert first["step_summary"] == "0 / 2"
    assert first["url"] == f"/nomaflow/runs/{first['id']}"
    assert first["queued_at"].endswith("Z")


def test_cursor_pages_walk_through_every_run(viewer: User, runs: list[Run]) -> None:
    client = api_client(viewer)
    response = client.get("/api/v1/runs/?page_size=2")
    seen = ids(response)
    assert response.json()["previous"] is None
    while response.json()["next"]:
        response = client.get(response.json()["next"])
        seen += ids(response)
    assert seen == [run.id for run in reversed(runs)]


def test_runs_filtered_by_job_and_state(viewer: User, runs: list[Run]) -> None:
    client = api_client(viewer)
    assert ids(client.get("/api/v1/runs/?job=report")) == [runs[3].id, runs[1].id]
    assert ids(client.get("/api/v1/runs/?state=SUCCEEDED")) == [runs[0].id]
    assert ids(client.get("/api/v1/runs/?job=etl&state=QUEUED")) == [runs[4].id, runs[2].id]
    assert ids(client.get("/api/v1/runs/?job=nope")) == []


def test_job_runs_filtered_by_state_and_triggered_by(viewer: User, runs: list[Run]) -> None:
    client = api_client(viewer)
    assert ids(client.get("/api/v1/jobs/etl/runs/")) == [runs[4].id, runs[2].id, runs[0].id]
    assert ids(client.get("/api/v1/jobs/etl/runs/?triggered_by=cron")) == [runs[4].id]
    assert ids(client.get("/api/v1/jobs/etl/runs/?state=SUCCEEDED")) == [runs[0].id]


@pytest.mark.parametrize("path", ["/api/v1/runs/?state=DONE", "/api/v1/jobs/etl/runs/?state=done"])
def test_unknown_state_filter_is_400_naming_state(viewer: User, runs: list[Run], path: str) -> None:
    response = api_client(viewer).get(path)
    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["state"]


def test_runs_of_an_unknown_job_is_404(viewer: User) -> None:
    response = api_client(viewer).get("/api/v1/jobs/nope/runs/")
    assert response.status_code == 404
    assert response.json()["detail"] == 'job "nope" does not exist'


def test_run_list_query_count_does_not_grow_with_the_page(
    viewer: User, runs: list[Run], django_assert_max_num_queries: Any
) -> None:
    client = api_client(viewer)
    client.get("/api/v1/runs/")
    with django_assert_max_num_queries(6) as few:
        client.get("/api/v1/runs/")
    for _ in range(10):
        trigger("etl")
    with django_assert_max_num_queries(len(few.captured_queries)):
        assert len(ids(client.get("/api/v1/runs/"))) == 15


# --- detail ----------------------------------------------------------------------------------


def test_run_detail_has_parameters_and_steps(viewer: User, editor: User) -> None:
    make_job(NOOP, {"callable": "workers.builtins:echo", "message": "hi"}, id="etl", params={"region": "north"})
    run = trigger(
        "etl",
        "user:edna",
        actor=editor,
        overrides={"params": {"region": "south"}, "steps": {"F0001": {"enabled": False}}},
    )
    body = api_client(viewer).get(f"/api/v1/runs/{run.id}/").json()
    assert set(body) == SUMMARY_KEYS | {"parameters", "steps", "stopped_step"}
    assert body["stopped_step"] is None  # a disabled step is skipped, not where the run stopped
    assert body["actor"] == "edna"
    assert body["parameters"] == {
        "params": {"region": "south"},
        "steps": {
            "F0001": {"op_kwargs": NOOP, "enabled": False},
            "F0002": {"op_kwargs": {"callable": "workers.builtins:echo", "message": "hi"}, "enabled": True},
        },
    }
    assert [(s["name"], s["position"], s["state"], s["reason"]) for s in body["steps"]] == [
        ("F0001", 1, "CANCELED", "skipped: disabled"),
        ("F0002", 2, "PENDING", ""),
    ]
    assert set(body["steps"][0]) == {
        "name", "type", "position", "state", "reason", "attempts", "started_at", "finished_at", "duration_s", "error",
        "queue", "worker",
    }  # fmt: skip
    assert (body["steps"][1]["queue"], body["steps"][1]["worker"]) == ("default", "")  # not claimed yet


def test_unknown_run_is_404(viewer: User) -> None:
    response = api_client(viewer).get("/api/v1/runs/01jzzzzzzzzzzzzzzzzzzzzzzz/")
    assert response.status_code == 404
    assert response.json() == {"detail": 'run "01jzzzzzzzzzzzzzzzzzzzzzzz" does not exist', "errors": {}}
    assert Job.objects.count() == 0

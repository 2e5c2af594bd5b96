"""REST API: /api/v1/runs/{id}/logs/ (pages of lines) and /api/v1/runs/{id}/logs.txt (plain text)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.contrib.auth.models import User
from django.test import AsyncClient

from accounts.tokens import issue_token
from runs import logstore
from runs.api import logs as logs_view
from runs.models import Run
from runs.services import run_trigger
from tests.conftest import api_client
from tests.factories import make_job

NOOP = {"callable": "workers.builtins:noop"}
T0 = datetime(2026, 3, 1, 13, 4, 5, 678_000, tzinfo=UTC)


@pytest.fixture
def run(db: None) -> Run:
    """A run with 10 lines: run-level INFO, then F0001 DEBUG/INFO/WARNING/ERROR, twice, then run-level WARNING."""
    make_job(NOOP, NOOP, id="etl")
    run, _ = run_trigger(job_id="etl", triggered_by="cli")
    entries = [logstore.Entry(T0, "INFO", "", "run queued")]
    for _ in range(2):
        entries += [
            logstore.Entry(T0, level, "F0001", f"{level.lower()} line")
            for level in ("DEBUG", "INFO", "WARNING", "ERROR")
        ]
    entries.append(logstore.Entry(T0, "WARNING", "", "run done"))
    logstore.persist(run.id, entries)
    run.refresh_from_db()
    return run


def logs(user: User | None, run: Run, query: str = "") -> Any:
    return api_client(user).get(f"/api/v1/runs/{run.id}/logs/{query}")


def seqs(response: Any) -> list[int]:
    assert response.status_code == 200, response.json()
    return [line["seq"] for line in response.json()["lines"]]


# --- who may read --------------------------------------------------------------------------


def test_anonymous_is_401_and_outsider_is_403(run: Run, outsider: User) -> None:
    for path in (f"/api/v1/runs/{run.id}/logs/", f"/api/v1/runs/{run.id}/logs.txt"):
        assert api_client(None).get(path).status_code == 401
        response = api_client(outsider).get(path)
        assert response.status_code == 403
        assert "viewer" in response.content.decode()


@pytest.mark.parametrize("role", ["viewer", "operator", "editor"])
def test_every_role_can_read_logs(role: str, request: pytest.FixtureRequest, run: Run) -> None:
    user = request.getfixturevalue(role)
    assert logs(user, run).status_code == 200
    assert api_client(user).get(f"/api/v1/runs/{run.id}/logs.txt").status_code == 200


# --- /logs/ ------------------------------------------------------------------------------------


def test_all_lines_in_seq_order(viewer: User, run: Run) -> None:
    response = logs(viewer, run)
    assert seqs(response) == list(range(1, 11))
    body = response.json()
    assert (body["last_seq"], body["more"]) == (10, False)
    assert body["lines"][1] == {
        "seq": 2,
        "ts": "2026-03-01T13:04:05.678000Z",
        "level": "DEBUG",
        "step": "F0001",
        "message": "debug line",
    }


def test_after_and_limit_page_through_the_log(viewer: User, run: Run) -> None:
    first = logs(viewer, run, "?limit=4")
    assert seqs(first) == [1, 2, 3, 4]
    assert (first.json()["last_seq"], first.json()["more"]) == (4, True)
    second = logs(viewer, run, "?after=4&limit=4")
    assert seqs(second) == [5, 6, 7, 8]
    third = logs(viewer, run, "?after=8&limit=4")
    assert seqs(third) == [9, 10]
    assert (third.json()["last_seq"], third.json()["more"]) == (10, False)
    assert seqs(logs(viewer, run, "?after=10")) == []
    assert logs(viewer, run, "?after=10").json()["last_seq"] == 10


def test_level_means_that_level_and_above(viewer: User, run: Run) -> None:
    response = logs(viewer, run, "?level=WARNING")
    assert [line["level"] for line in response.json()["lines"]] == ["WARNING", "ERROR", "WARNING", "ERROR", "WARNING"]
    assert seqs(logs(viewer, run, "?level=ERROR")) == [5, 9]
    assert len(seqs(logs(viewer, run, "?level=DEBUG"))) == 10


def test_step_filter_and_last_seq_skips_what_did_not_match(viewer: User, run: Run) -> None:
    response = logs(viewer, run, "?step=F0001&level=ERROR")
    assert seqs(response) == [5, 9]
    # Everything up to the run's last line was looked at: the next poll starts there.
    assert (response.json()["last_seq"], response.json()["more"]) == (10, False)
    paged = logs(viewer, run, "?step=F0001&limit=3")
    assert seqs(paged) == [2, 3, 4]
    assert (paged.json()["last_seq"], paged.json()["more"]) == (4, True)


def test_before_gives_the_tail_and_pages_backwards(viewer: User, run: Run) -> None:
    tail = logs(viewer, run, "?before=11&limit=4")
    assert seqs(tail) == [7, 8, 9, 10]
    assert (tail.json()["last_seq"], tail.json()["more"]) == (10, True)
    earlier = logs(viewer, run, "?before=7&limit=4")
    assert seqs(earlier) == [3, 4, 5, 6]
    first = logs(viewer, run, "?before=3&limit=4")
    assert seqs(first) == [1, 2]
    assert (first.json()["last_seq"], first.json()["more"]) == (2, False)
    # A `before` beyond the log is the log's tail.
    assert seqs(logs(viewer, run, "?before=1000&limit=2")) == [9, 10]


def test_before_with_filters_is_the_tail_of_the_matching_lines(viewer: User, run: Run) -> None:
    response = logs(viewer, run, "?before=11&step=F0001&level=WARNING&limit=3")
    assert seqs(response) == [5, 8, 9]
    assert response.json()["more"] is True
    assert seqs(logs(viewer, run, "?before=5&step=F0001&level=WARNING")) == [4]
    assert seqs(logs(viewer, run, "?before=6&after=4&level=ERROR")) == [5]


def test_empty_query_values_mean_not_given(viewer: User, run: Run) -> None:
    assert len(seqs(logs(viewer, run, "?after=&step=&level=&limit="))) == 10


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("?after=-1", "after"),
        ("?after=abc", "after"),
        ("?limit=0", "limit"),
        ("?limit=10001", "limit"),
        ("?limit=10000000", "limit"),
        ("?level=LOUD", "level"),
        ("?before=0", "before"),
    ],
)
def test_bad_query_values_are_400_naming_the_field(viewer: User, run: Run, query: str, field: str) -> None:
    response = logs(viewer, run, query)
    assert response.status_code == 400
    assert list(response.json()["errors"]) == [field]
    assert response.json()["detail"].startswith(f"{field}: ")


def test_limit_up_to_10000_is_accepted(viewer: User, run: Run) -> None:
    assert logs(viewer, run, "?limit=10000").status_code == 200


def test_logs_of_an_unknown_run_are_404(viewer: User) -> None:
    response = api_client(viewer).get("/api/v1/runs/nope/logs/")
    assert response.status_code == 404
    assert response.json()["detail"] == 'run "nope" does not exist'


# --- /logs.txt -----------------------------------------------------------------------------------


def test_text_log_has_one_line_per_log_line_in_utc(viewer: User, run: Run) -> None:
    response = api_client(viewer).get(f"/api/v1/runs/{run.id}/logs.txt")
    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    lines = b"".join(response.streaming_content).decode().splitlines()
    assert len(lines) == 10
    assert lines[0] == "13:04:05.678 INFO run queued"
    assert lines[4] == "13:04:05.678 ERROR [F0001] error line"


def test_text_log_is_read_in_chunks_in_order(viewer: User, run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logs_view, "TEXT_CHUNK", 3)
    response = api_client(viewer).get(f"/api/v1/runs/{run.id}/logs.txt")
    chunks = list(response.streaming_content)
    assert len(chunks) == 4
    assert b"".join(chunks).decode().splitlines()[-1] == "13:04:05.678 WARNING run done"


def test_text_log_streams_asynchronously_under_asgi(viewer: User, run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logs_view, "TEXT_CHUNK", 4)
    token = issue_token(viewer)

    async def fetch() -> tuple[int, list[bytes]]:
        response = await AsyncClient().get(
            f"/api/v1/runs/{run.id}/logs.txt", headers={"Authorization": f"Token {token}"}
        )
        assert response.is_async  # what daphne streams chunk by chunk, without reading it all first
        return response.status_code, [chunk async for chunk in response.streaming_content]

    status, chunks = async_to_sync(fetch)()
    assert status == 200
    assert len(chunks) == 3
    assert len(b"".join(chunks).decode().splitlines()) == 10


def test_text_log_of_a_run_without_lines_is_empty(viewer: User) -> None:
    make_job(NOOP, id="quiet")
    run, _ = run_trigger(job_id="quiet", triggered_by="cli")
    response = api_client(viewer).get(f"/api/v1/runs/{run.id}/logs.txt")
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == b""


def test_text_log_of_an_unknown_run_is_404_in_json_like_every_api_error(viewer: User) -> None:
    response = api_client(viewer).get("/api/v1/runs/nope/logs.txt")
    assert response.status_code == 404
    assert response.json()["detail"] == 'run "nope" does not exist'

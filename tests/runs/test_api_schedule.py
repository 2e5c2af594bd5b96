"""REST API: /schedule/ — past cron fires with their runs, future fires computed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from runs.models import Run
from runs.services import run_trigger
from tests.conftest import api_client
from tests.factories import make_job

NOOP = {"callable": "workers.builtins:noop"}
URL = "/api/v1/schedule/"


def iso(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat().replace("+00:00", "Z")


def get(user: User | None, **params: str) -> Any:
    return api_client(user).get(URL, params)


def hour_floor(ts: datetime) -> datetime:
    return ts.replace(minute=0, second=0, microsecond=0)


@pytest.fixture
def hourly(db: None) -> datetime:
    """An hourly job with a cron run for the last hour; returns that hour."""
    make_job(NOOP, id="hourly", schedule="0 * * * *")
    last = hour_floor(timezone.now())
    run_trigger(job_id="hourly", triggered_by="cron", scheduled_for=last)
    return last


def test_anonymous_is_401_and_outsider_is_403(outsider: User, hourly: datetime) -> None:
    params = {"start": iso(hourly), "end": iso(hourly + timedelta(days=1))}
    assert get(None, **params).status_code == 401
    response = get(outsider, **params)
    assert response.status_code == 403
    assert "viewer" in response.json()["detail"]


def test_past_fires_come_with_their_run_and_future_fires_are_computed(viewer: User, hourly: datetime) -> None:
    response = get(viewer, start=iso(hourly - timedelta(hours=2)), end=iso(hourly + timedelta(hours=3)))

    assert response.status_code == 200, response.json()
    body = response.json()
    assert [(e["job"], e["at"]) for e in body] == [("hourly", iso(hourly + timedelta(hours=h))) for h in range(3)]
    run = Run.objects.get(job_id="hourly")
    assert body[0]["run"]["id"] == run.id
    assert body[0]["run"]["scheduled_for"] == iso(hourly)
    assert body[0]["run"]["triggered_by"] == "cron"
    assert body[1]["run"] is None and body[2]["run"] is None


def test_fires_of_several_jobs_are_in_time_order_and_job_filters(viewer: User) -> None:
    make_job(NOOP, id="b-half", schedule="30 * * * *")
    make_job(NOOP, id="a-hour", schedule="0 * * * *")
    make_job(NOOP, id="manual")
    make_job(NOOP, id="off", schedule="* * * * *", enabled=False)
    start = hour_floor(timezone.now()) + timedelta(hours=1)
    params = {"start": iso(start), "end": iso(start + timedelta(hours=1, minutes=1))}

    body = get(viewer, **params).json()
    only_half = get(viewer, job="b-half", **params).json()

    assert [(e["job"], e["at"]) for e in body] == [
        ("a-hour", iso(start)),
        ("b-half", iso(start + timedelta(minutes=30))),
        ("a-hour", iso(start + timedelta(hours=1))),
    ]
    assert [e["job"] for e in only_half] == ["b-half"]


def test_past_fires_are_in_time_order_whatever_the_order_runs_were_made(viewer: User) -> None:
    make_job(NOOP, id="a-job", schedule="0 * * * *")
    make_job(NOOP, id="b-job", schedule="0 * * * *", enabled=False)  # history of a job now disabled stays
    base = hour_floor(timezone.now()) - timedelta(hours=5)
    for job_id, hours in (("a-job", 3), ("b-job", 1), ("a-job", 1), ("b-job", 2)):
        run_trigger(job_id=job_id, triggered_by="cron", scheduled_for=base + timedelta(hours=hours))

    body = get(viewer, start=iso(base), end=iso(base + timedelta(hours=4))).json()

    assert [(e["job"], e["at"], e["run"]["job"]) for e in body] == [
        ("a-job", iso(base + timedelta(hours=1)), "a-job"),
        ("b-job", iso(base + timedelta(hours=1)), "b-job"),
        ("b-job", iso(base + timedelta(hours=2)), "b-job"),
        ("a-job", iso(base + timedelta(hours=3)), "a-job"),
    ]


def test_future_fires_follow_the_job_timezone(viewer: User) -> None:
    make_job(NOOP, id="paris", schedule="30 2 * * *", timezone="Europe/Paris")
    start = datetime(timezone.now().year + 1, 7, 1, tzinfo=UTC)

    body = get(viewer, start=f"{start:%Y-%m-%d}", end=iso(start + timedelta(days=2))).json()

    assert [e["at"] for e in body] == [iso(start + timedelta(minutes=30)), iso(start + timedelta(days=1, minutes=30))]


def test_start_is_inclusive_and_end_exclusive(viewer: User) -> None:
    make_job(NOOP, id="hourly", schedule="0 * * * *")
    start = hour_floor(timezone.now()) + timedelta(hours=2)

    body = get(viewer, start=iso(start), end=iso(start + timedelta(hours=1))).json()

    assert [e["at"] for e in body] == [iso(start)]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"end": "2026-11-02T00:00:00Z"}, "start"),
        ({"start": "2026-11-01T00:00:00Z"}, "end"),
        ({"start": "yesterday", "end": "2026-11-02T00:00:00Z"}, "start"),
        ({"start": "2026-11-01T00:00:00Z", "end": "2026-13-01"}, "end"),
        ({"start": "2026-11-02T00:00:00Z", "end": "2026-11-01T00:00:00Z"}, "end"),
        ({"start": "2026-11-01", "end": "2027-01-03"}, "end"),
        ({"start": "2026-11-01", "end": "9999-12-31T00:00:00Z"}, "end"),
    ],
)
def test_bad_or_missing_range_is_400_naming_the_field(viewer: User, params: dict[str, str], field: str) -> None:
    response = get(viewer, **params)

    assert response.status_code == 400
    body = response.json()
    assert list(body["errors"]) == [field]
    assert field in body["detail"]


def test_a_range_with_too_many_fires_is_400_asking_for_less(viewer: User) -> None:
    make_job(NOOP, id="minutely", schedule="* * * * *")
    start = timezone.now() + timedelta(days=1)

    response = get(viewer, start=iso(start), end=iso(start + timedelta(days=5)))

    assert response.status_code == 400
    assert "shorter period" in response.json()["detail"]

"""`/schedule/`: the cron fires of a period, past ones with their runs, future ones computed."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.errors import InputError
from core.permissions import IsViewer

from .. import selectors
from ..serializers import RunSummarySerializer, iso

MAX_RANGE = timedelta(days=62)  # a month view with its leading and trailing weeks fits easily
# The years a schedule can be asked for: cron arithmetic stays far from the ends of Python's
# calendar (years 1 and 9999), even for a job that fires only on 29 February.
EARLIEST, LATEST = datetime(1970, 1, 1, tzinfo=UTC), datetime(9000, 1, 1, tzinfo=UTC)
MAX_FIRES = 5000  # a minutely job fills this in 3.5 days: ask for less rather than send megabytes


class ScheduleEntrySerializer(serializers.Serializer):
    """One fire (documentation only: the view shapes it by hand)."""

    job = serializers.CharField(help_text="job id")
    at = serializers.DateTimeField(help_text="the fire time, UTC")
    run = RunSummarySerializer(allow_null=True, help_text="the run of a past fire; null for a future one")


_TIME_HELP = "ISO 8601 timestamp (2026-11-01T00:00:00Z) or date (2026-11-01, midnight UTC); no offset means UTC"


class ScheduleView(APIView):
    """Cron fires with start ≤ at < end, by time: past fires with their cron runs, future fires
    of enabled jobs computed from their schedule in their timezone (viewer role)."""

    permission_classes = [IsViewer]

    @extend_schema(
        parameters=[
            OpenApiParameter("start", OpenApiTypes.DATETIME, required=True, description=_TIME_HELP),
            OpenApiParameter(
                "end",
                OpenApiTypes.DATETIME,
                required=True,
                description=f"{_TIME_HELP}; at most {MAX_RANGE.days} days after start",
            ),
            OpenApiParameter("job", OpenApiTypes.STR, description="only this job's fires"),
        ],
        responses={200: ScheduleEntrySerializer(many=True)},
    )
    def get(self, request: Request) -> Response:
        start, end = _time(request, "start"), _time(request, "end")
        if end <= start:
            raise InputError("end must be after start; swap them or widen the range", {"end": ["not after start"]})
        if end - start > MAX_RANGE:
            raise InputError(
                f"end is more than {MAX_RANGE.days} days after start; ask for a shorter period (e.g. one month)",
                {"end": [f"at most {MAX_RANGE.days} days after start"]},
            )
        job_id = _job_id(request)
        entries = selectors.schedule_entries(start=start, end=end, now=timezone.now(), job_id=job_id, limit=MAX_FIRES)
        if len(entries) > MAX_FIRES:
            raise InputError(
                f"more than {MAX_FIRES} fires fall between start and end; ask for a shorter period or one job (job=)",
                {"end": [f"more than {MAX_FIRES} fires before this time"]},
            )
        return Response([_entry(e) for e in entries])


def _entry(entry: selectors.ScheduleEntry) -> dict[str, Any]:
    run = RunSummarySerializer(entry.run).data if entry.run is not None else None
    return {"job": entry.job_id, "at": iso(entry.at), "run": run}


def _job_id(request: Request) -> str | None:
    job_id = request.query_params.get("job") or None
    if job_id is not None and "\x00" in job_id:  # PostgreSQL cannot compare text with NUL in it
        raise InputError(
            "job: a job id has no NUL character; give the id as GET /api/v1/jobs/ lists it", {"job": ["contains NUL"]}
        )
    return job_id


def _time(request: Request, field: str) -> datetime:
    """`start` or `end` as an aware datetime; a bad or missing value is a 400 naming the field."""
    raw = request.query_params.get(field, "").strip()
    if not raw:
        raise InputError(
            f"{field} is required: give an ISO 8601 time such as 2026-11-01T00:00:00Z", {field: ["required"]}
        )
    try:
        value = parse_datetime(raw.replace(" ", "+"))  # an unescaped "+01:00" arrives as " 01:00"
        day: date | None = None if value else parse_date(raw)
    except ValueError:
        value, day = None, None
    if day is not None:
        value = datetime.combine(day, time(), tzinfo=UTC)
    if value is None:
        raise InputError(
            f'{field}: "{raw}" is not a time; use ISO 8601 such as 2026-11-01T00:00:00Z or 2026-11-01',
            {field: ["not an ISO 8601 time"]},
        )
    return _utc(value if timezone.is_aware(value) else value.replace(tzinfo=UTC), field, raw)


def _utc(value: datetime, field: str, raw: str) -> datetime:
    """`value` in UTC (PostgreSQL refuses offsets past ±15:59 that Python accepts), within YEARS."""
    try:
        utc = value.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+01:00: before the first UTC time Python has
        utc = None
    if utc is None or not EARLIEST <= utc < LATEST:
        raise InputError(
            f'{field}: "{raw}" is outside the years the schedule covers ({EARLIEST.year} to {LATEST.year - 1}, UTC)',
            {field: [f"between {EARLIEST.year} and {LATEST.year - 1}"]},
        )
    return utc

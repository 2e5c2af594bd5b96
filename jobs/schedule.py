"""Cron arithmetic for jobs: when a job fires, in its own timezone."""

from __future__ import annotations

import zoneinfo
from collections.abc import Iterator
from datetime import UTC, datetime

from croniter import croniter

from .models import Job


def next_fire(job: Job, after: datetime) -> datetime | None:
    """The first fire strictly after `after`, in UTC; None for unscheduled jobs."""
    if not job.schedule:
        return None
    return next(fires_between(job, after, None), None)


def fires_between(job: Job, after: datetime, until: datetime | None) -> Iterator[datetime]:
    """Fire times in (after, until], in UTC, computed in the job's timezone (DST-aware)."""
    if not job.schedule:
        return
    local_start = after.astimezone(zoneinfo.ZoneInfo(job.timezone))
    for fire in croniter(job.schedule, local_start).all_next(datetime):
        fire_utc = fire.astimezone(UTC)
        if until is not None and fire_utc > until:
            return
        yield fire_utc

"""Cron arithmetic for jobs: when a job fires, in its own timezone.

The cron expression is matched against the wall clock of the job's timezone, and each
matching wall-clock time becomes a UTC instant. Two days a year that mapping is not
one-to-one, and this is the rule (the one Vixie cron and cronie follow):

- **Spring forward** (a wall-clock time that does not exist, e.g. 02:30 on 2026-03-29 in
  Europe/Berlin): the fire happens once, shifted by the gap, at the instant the clock would
  read had it not jumped (02:30 CET = 01:30 UTC = 03:30 CEST). A fire that lands on an
  instant already fired (`0 * * * *`: 02:00 becomes 03:00, which fires anyway) is not fired
  twice, so an hourly job fires every real hour.
- **Fall back** (a wall-clock time that happens twice, e.g. 02:30 on 2026-10-25): a job
  whose hour field is `*` (hourly, every N minutes) fires at both instants, i.e. every
  real hour or N minutes; any other job (a daily `30 2 * * *`) fires once, at the first.

croniter is only asked for naive wall-clock times: its own timezone arithmetic gets both
transitions wrong (croniter 6 skips the repeated hour and moves the next day's fire).
"""

from __future__ import annotations

import heapq
import zoneinfo
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, tzinfo

from croniter import croniter

from .models import Job

# Wider than any UTC offset change (at most 2 h, "double summer time"): within this
# distance of an instant with no transition, wall-clock order is instant order.
_NEAR = timedelta(hours=3)


def next_fire(job: Job, after: datetime) -> datetime | None:
    """The first fire strictly after `after`, in UTC; None for unscheduled jobs."""
    if not job.schedule:
        return None
    return next(fires_between(job, after, None), None)


def fires_between(job: Job, after: datetime, until: datetime | None) -> Iterator[datetime]:
    """Fire times in (after, until], in UTC and increasing, computed in the job's timezone
    by the DST rule above. `until=None` never ends."""
    if not job.schedule:
        return
    tz = zoneinfo.ZoneInfo(job.timezone)
    every_hour = job.schedule.split()[1] == "*"
    last = after
    pending: list[datetime] = []  # instants not yet safe to yield: a later wall time may map earlier
    for wall in croniter(job.schedule, _wall_start(after, tz)).all_next(datetime):
        for instant in _instants(wall, tz, every_hour):
            if instant > last and instant not in pending:
                heapq.heappush(pending, instant)
        horizon = _earliest_later_instant(wall, tz)
        while pending and (pending[0] <= horizon):
            instant = heapq.heappop(pending)
            if until is not None and instant > until:
                return
            last = instant
            yield instant
        if until is not None and horizon > until and not pending:
            return


def _instants(wall: datetime, tz: tzinfo, every_hour: bool) -> list[datetime]:
    """The UTC instants at which the naive wall-clock time `wall` fires, by the DST rule."""
    first = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
    second = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)
    if first < second:  # the time happens twice (fall back)
        return [first, second] if every_hour else [first]
    # Ordinary time, or one that does not exist (spring forward): fold=0 reads it with the
    # offset from before the jump, which is the instant shifted by the gap.
    return [first]


def _earliest_later_instant(wall: datetime, tz: tzinfo) -> datetime:
    """A lower bound for the instant of any wall-clock time after `wall`."""
    instant = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
    if _offset(instant - _NEAR, tz) == _offset(instant + _NEAR, tz):
        return instant  # no transition near: later wall times are later instants
    return min(instant, wall.replace(tzinfo=tz, fold=1).astimezone(UTC)) - _NEAR


def _wall_start(after: datetime, tz: tzinfo) -> datetime:
    """The naive wall-clock time to search from: `after` on the job's clock, moved back by
    a DST change near it (after a fall back the repeated times lie behind it, and so do
    the shifted times of the gap after a spring forward)."""
    smallest = min(_offset(after + delta, tz) for delta in (-_NEAR, timedelta(0), _NEAR))
    return after.astimezone(UTC).replace(tzinfo=None) + smallest


def _offset(instant: datetime, tz: tzinfo) -> timedelta:
    return instant.astimezone(tz).utcoffset() or timedelta(0)

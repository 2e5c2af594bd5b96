"""Cron fires across DST changes (jobs/schedule.py): the exact UTC instants.

Europe/Berlin: on 2026-03-29 the clock jumps from 02:00 CET to 03:00 CEST (01:00 UTC);
on 2026-10-25 it falls back from 03:00 CEST to 02:00 CET (01:00 UTC), so 02:00–02:59
happens twice.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from jobs.models import Job
from jobs.schedule import fires_between, next_fire


def utc(day: int, hour: int, minute: int = 0, month: int = 3) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


def fires(schedule: str, after: datetime, until: datetime, tz: str = "Europe/Berlin") -> list[datetime]:
    return list(fires_between(Job(id="dst", schedule=schedule, timezone=tz), after, until))


# --- spring forward: 2026-03-29, 02:00 CET → 03:00 CEST ------------------------------------


def test_a_daily_fire_in_the_skipped_hour_fires_once_shifted_by_the_gap() -> None:
    # 02:30 does not exist on the 29th: it fires at 03:30 CEST (01:30 UTC), once.
    assert fires("30 2 * * *", utc(27, 12), utc(30, 12)) == [utc(28, 1, 30), utc(29, 1, 30), utc(30, 0, 30)]


def test_an_hourly_job_fires_every_real_hour_through_spring_forward() -> None:
    got = fires("0 * * * *", utc(28, 22), utc(29, 4))
    # 01:00 CET, then 03:00 CEST (the skipped 02:00 would shift onto it: not twice), …
    assert got == [utc(28, 23), utc(29, 0), utc(29, 1), utc(29, 2), utc(29, 3), utc(29, 4)]


def test_a_daily_fire_just_after_the_gap_keeps_its_wall_clock_time() -> None:
    assert fires("30 1 * * *", utc(28, 12), utc(30, 12)) == [utc(29, 0, 30), utc(29, 23, 30)]
    assert fires("0 3 * * *", utc(28, 12), utc(30, 12)) == [utc(29, 1), utc(30, 1)]


# --- fall back: 2026-10-25, 03:00 CEST → 02:00 CET --------------------------------------------


def test_a_daily_fire_in_the_repeated_hour_fires_once_at_the_first_pass() -> None:
    got = fires("30 2 * * *", utc(23, 12, month=10), utc(26, 12, month=10))
    assert got == [utc(24, 0, 30, 10), utc(25, 0, 30, 10), utc(26, 1, 30, 10)]


def test_an_hourly_job_fires_every_real_hour_through_fall_back() -> None:
    got = fires("0 * * * *", utc(24, 22, month=10), utc(25, 4, month=10))
    # 01:00 CEST, 02:00 CEST, 02:00 CET, 03:00 CET, …
    assert got == [utc(24, 23, month=10), *[utc(25, h, month=10) for h in range(5)]]


def test_a_minutely_job_fires_every_real_minute_through_fall_back() -> None:
    got = fires("*/15 * * * *", utc(24, 23, 50, month=10), utc(25, 2, 10, month=10))
    start = utc(25, 0, month=10)
    assert got == [start + timedelta(minutes=15 * i) for i in range(9)]


def test_a_fire_after_the_repeated_hour_keeps_its_wall_clock_time() -> None:
    assert fires("0 3 * * *", utc(24, 12, month=10), utc(26, 12, month=10)) == [
        utc(25, 2, month=10),
        utc(26, 2, month=10),
    ]


# --- resuming anywhere gives the same fires ---------------------------------------------------


@pytest.mark.parametrize("schedule", ["30 2 * * *", "0 * * * *", "*/20 * * * *", "45 1,2,3 * * *"])
@pytest.mark.parametrize("day", [utc(28, 12), utc(24, 12, month=10)])
def test_fires_are_the_same_when_asked_for_in_small_pieces(schedule: str, day: datetime) -> None:
    """The scheduler asks tick by tick, from any point: even from inside a DST change."""
    whole = fires(schedule, day, day + timedelta(days=2))
    pieces: list[datetime] = []
    for start in (day + timedelta(minutes=7 * i) for i in range(2 * 24 * 60 // 7 + 1)):
        pieces += fires(schedule, start, min(start + timedelta(minutes=7), day + timedelta(days=2)))
    assert pieces == whole


def test_next_fire_from_inside_the_repeated_hour() -> None:
    job = Job(id="dst", schedule="0 * * * *", timezone="Europe/Berlin")
    # 00:30 UTC is 02:30 CEST, first pass: the next real hour is 02:00 CET (01:00 UTC).
    assert next_fire(job, utc(25, 0, 30, month=10)) == utc(25, 1, month=10)


def test_other_zones_and_utc_are_plain() -> None:
    # New York springs forward 2026-03-08 02:00 EST → 03:00 EDT (07:00 UTC).
    assert fires("30 2 * * *", utc(7, 12), utc(9, 12), tz="America/New_York") == [utc(8, 7, 30), utc(9, 6, 30)]
    assert fires("30 2 * * *", utc(28, 12), utc(30, 12), tz="UTC") == [utc(29, 2, 30), utc(30, 2, 30)]

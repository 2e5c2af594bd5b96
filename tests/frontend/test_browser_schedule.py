"""The Schedule page in a browser: past fires coloured by their run's state and linking to
it, future fires grey, the job filter, and times in the browser's timezone across a DST day."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from django.contrib.auth.models import User
from django.utils import timezone
from playwright.sync_api import expect

from runs.services import run_trigger
from tests.factories import make_job
from tests.processes import wait_terminal

from .browser import shot
from .conftest import SignIn


def _paris(day: date, hour: int, minute: int) -> str:
    """HH:MM in Paris of a UTC time on `day` (what the browser should show)."""
    at = datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)
    return at.astimezone(ZoneInfo("Europe/Paris")).strftime("%H:%M")


def _cron_run(job_id: str, at: datetime, boom: bool = False) -> str:
    run, _ = run_trigger(job_id=job_id, triggered_by="cron", scheduled_for=at, overrides={"params": {"boom": boom}})
    return wait_terminal(run).id


def test_chips_link_to_their_runs_in_local_time_across_dst(live_url: str, signed_in: SignIn, viewer: User) -> None:
    make_job(
        {"callable": "workers.builtins:fail", "when": "{{ params.boom }}"},
        id="nightly", params={"boom": False}, schedule="30 1 * * *",
    )  # fmt: skip
    make_job({"callable": "workers.builtins:noop"}, id="noon", schedule="0 12 * * *")
    # Europe/Paris moves from UTC+1 to UTC+2 at 01:00 UTC on Sunday 29 March 2026.
    before_midnight = _cron_run("nightly", datetime(2026, 3, 28, 23, 30, tzinfo=UTC))  # 00:30 CET on the 29th
    after_switch = _cron_run("nightly", datetime(2026, 3, 29, 1, 30, tzinfo=UTC))  # 03:30 CEST on the 29th
    failed = _cron_run("nightly", datetime(2026, 3, 27, 1, 30, tzinfo=UTC), boom=True)  # 02:30 CET on the 27th

    page = signed_in(viewer, timezone_id="Europe/Paris")
    page.goto(f"{live_url}/nomaflow/schedule/?view=week&date=2026-03-29")
    sunday = page.locator('[data-day="2026-03-29"] .chip')
    expect(sunday).to_have_count(2)
    expect(sunday.nth(0)).to_have_text("00:30nightly")
    expect(sunday.nth(1)).to_have_text("03:30nightly")
    assert sunday.nth(0).get_attribute("href") == f"/nomaflow/runs/{before_midnight}"
    assert sunday.nth(1).get_attribute("href") == f"/nomaflow/runs/{after_switch}"
    expect(sunday.nth(0)).to_have_class("chip chip-succeeded")
    friday = page.locator('[data-day="2026-03-27"] .chip')
    expect(friday).to_have_text(["02:30nightly"])
    expect(friday.first).to_have_class("chip chip-failed")
    expect(page.locator("#cal-tz")).to_have_text("times in Europe/Paris")
    shot(page, "schedule-week-dst")
    friday.first.click()
    page.wait_for_url(f"{live_url}/nomaflow/runs/{failed}")

    # Next month: only future fires, grey and not links; the job filter keeps one job's.
    today = timezone.localdate()
    first = date(today.year + today.month // 12, today.month % 12 + 1, 1)
    page.goto(f"{live_url}/nomaflow/schedule/?view=month&date={first.isoformat()}")
    chips = page.locator(f'[data-day="{first.isoformat()}"] .chip')
    expect(chips).to_have_text(
        ["02:30nightly", "13:00noon"] if first.month in (1, 2, 3, 11, 12) else ["03:30nightly", "14:00noon"]
    )
    expect(chips.first).to_have_class("chip chip-future")
    assert page.locator("a.chip").count() == 0
    shot(page, "schedule-month")
    page.select_option("#cal-job", "noon")
    expect(page.locator(".calendar .chip", has_text="nightly")).to_have_count(0)
    expect(page.locator(f'[data-day="{first.isoformat()}"] .chip')).to_have_text(
        ["13:00noon"] if first.month in (1, 2, 3, 11, 12) else ["14:00noon"]
    )
    assert "job=noon" in page.url

"""Sign-in, the 403 and 404 pages, the runs lists and the troubleshooting page in a
browser, against the live server and a real worker."""

from __future__ import annotations

import re
from collections.abc import Callable
from zoneinfo import ZoneInfo

from django.contrib.auth.models import User
from playwright.sync_api import BrowserContext, expect

from runs.models import Run
from runs.services import run_trigger
from tests.factories import make_job
from tests.processes import wait_terminal

from .browser import shot
from .conftest import SignIn


def test_login_then_403_for_an_outsider_and_404_pages(
    live_url: str, new_context: Callable[..., BrowserContext], viewer: User, outsider: User
) -> None:
    page = new_context().new_page()
    page.goto(f"{live_url}/nomaflow/runs/")
    page.wait_for_url(f"{live_url}/nomaflow/login/?next=/nomaflow/runs/")
    expect(page.locator("#id_username")).to_be_focused()
    page.fill("#id_username", "vera")
    page.fill("#id_password", "wrong")
    page.click("button[type=submit]")
    expect(page.locator(".form-error")).to_be_visible()
    shot(page, "login-error")
    page.fill("#id_password", "pw-vera")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_url}/nomaflow/runs/")

    response = page.goto(f"{live_url}/nomaflow/jobs/no-such-job/runs/")
    assert response is not None and response.status == 404
    expect(page.locator("h1")).to_have_text("Not found")
    shot(page, "not-found")

    page.click("text=Log out")
    page.wait_for_url(f"{live_url}/nomaflow/login/")
    shot(page, "login")
    page.fill("#id_username", "oscar")
    page.fill("#id_password", "pw-oscar")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_url}/nomaflow/")
    expect(page.locator("h1")).to_have_text("Not allowed")
    expect(page.locator(".error-page")).to_contain_text("viewer role")
    assert page.locator(".mainnav").count() == 0
    shot(page, "forbidden")


def test_runs_list_filters_pages_and_charts(live_url: str, signed_in: SignIn, viewer: User) -> None:
    job = make_job(
        {"callable": "workers.builtins:fail", "when": "{{ params.boom }}"},
        {"callable": "workers.builtins:sleep", "seconds": "{{ params.pause }}"},
        id="nightly", name="Nightly sales", params={"boom": False, "pause": 0.1}, schedule="30 2 * * *",
    )  # fmt: skip
    runs = [
        run_trigger(job_id=job.id, triggered_by="cron")[0],
        run_trigger(job_id=job.id, triggered_by="user:otto", overrides={"params": {"boom": True}})[0],
        run_trigger(job_id=job.id, triggered_by="api", overrides={"params": {"pause": 0.4}})[0],
    ]
    for run in runs:
        wait_terminal(run)
    newest_first = [run.id for run in reversed(runs)]

    page = signed_in(viewer)
    page.click("text=Nightly sales")  # the job's name opens its runs list
    page.wait_for_url(f"{live_url}/nomaflow/jobs/nightly/runs/")
    rows = page.locator("#runs-table tbody tr")
    expect(rows).to_have_count(3)
    assert rows.evaluate_all("rows => rows.map(r => r.dataset.runId)") == newest_first
    expect(rows.nth(1)).to_contain_text("0 / 2 — failed at F0001")
    expect(rows.nth(0)).to_contain_text("2 / 2 ✓")
    assert runs[2].started_at is not None
    started = runs[2].started_at.astimezone(ZoneInfo("Europe/Paris"))  # the browser's timezone
    expect(rows.nth(0).locator("time")).to_have_text(started.strftime("%Y-%m-%d %H:%M:%S"))
    expect(rows.nth(0).locator("time")).to_have_attribute("title", re.compile(r" UTC$"))  # UTC on hover
    expect(page.locator(".chart rect.bar")).to_have_count(3)
    shot(page, "job-runs")

    page.select_option("#f-state", "FAILED")  # applies at once
    page.wait_for_url(re.compile(r"/nomaflow/jobs/nightly/runs/\?state=FAILED"))
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-run-id", runs[1].id)
    page.select_option("#f-state", "")
    page.select_option("#f-trigger", "cron")
    page.wait_for_url(re.compile(r"trigger=cron"))
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-run-id", runs[0].id)

    page.goto(f"{live_url}/nomaflow/runs/?page_size=2")
    expect(rows).to_have_count(2)
    seen = rows.evaluate_all("rows => rows.map(r => r.dataset.runId)")
    page.click("a[rel=next]")
    expect(rows).to_have_count(1)
    seen += rows.evaluate_all("rows => rows.map(r => r.dataset.runId)")
    assert seen == newest_first
    shot(page, "runs-page-2")
    page.click("a[rel=prev]")
    expect(rows).to_have_count(2)
    expect(page.locator("#runs-table thead")).to_contain_text("Job")
    shot(page, "runs")
    assert Run.objects.count() == 3


def test_troubleshoot_page(live_url: str, signed_in: SignIn, viewer: User) -> None:
    page = signed_in(viewer)
    page.click(".mainnav >> text=Troubleshoot")
    page.wait_for_url(f"{live_url}/nomaflow/docs/troubleshoot/")
    expect(page.locator("h1")).to_have_text("Troubleshoot")
    expect(page.locator(".mainnav a[aria-current=page]")).to_have_text("Troubleshoot")
    shot(page, "troubleshoot")
    shot(page, "troubleshoot-top", full_page=False)

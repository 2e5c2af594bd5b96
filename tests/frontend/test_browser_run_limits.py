"""The Run detail page at its limits, in a browser: a 200,000-line run opens on its tail and
pages backwards through the log API; beyond the per-user socket cap the page says so."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import User
from playwright.sync_api import expect
from websockets.asyncio.client import ClientConnection, connect

from accounts.tokens import issue_token
from runs import logstore
from runs.links import run_path
from runs.models import Run, StepRun
from tests.factories import make_job

from .browser import shot, stop_run, trigger_run
from .conftest import SignIn

NOOP = {"callable": "workers.builtins:noop"}
T0 = datetime(2026, 3, 1, 13, 4, 5, 678_000, tzinfo=UTC)  # 14:04:05.678 in the browser (Europe/Paris)

LINES = 200_000


def _run_with_lines(count: int) -> Run:
    """A finished run of one step with `count` lines, written straight through the log store."""
    job = make_job(NOOP, id="bulky")
    finished = T0 + timedelta(minutes=5)
    run = Run.objects.create(
        job=job, triggered_by="cron", state="SUCCEEDED", started_at=T0, finished_at=finished,
        parameters={"params": {}, "steps": {"F0001": {"op_kwargs": NOOP, "enabled": True}}},
    )  # fmt: skip
    StepRun.objects.create(
        run=run, position=1, name="F0001", type="python", state="SUCCEEDED", attempts=1,
        started_at=T0, finished_at=finished,
    )  # fmt: skip
    for start in range(0, count, 50_000):
        entries = [
            logstore.Entry(T0, "WARNING" if n % 1000 == 500 else "INFO", "F0001", f"line {n} " + "x" * 60)
            for n in range(start + 1, min(count, start + 50_000) + 1)
        ]
        logstore.persist(run.id, entries)
    run.refresh_from_db()
    assert run.last_seq == count
    return run


def test_a_200000_line_run_opens_on_its_tail_and_pages_backwards(
    live_url: str, signed_in: SignIn, viewer: User
) -> None:
    run = _run_with_lines(LINES)
    page = signed_in(viewer)
    page.goto(f"{live_url}{run_path(run.id)}")
    lines = page.locator("#log-lines .ll")
    expect(lines).to_have_count(2000)
    last = lines.last
    expect(last).to_be_in_viewport()
    expect(last).to_contain_text(f"14:04:05.678 INFO line {LINES} x")
    assert lines.first.get_attribute("data-seq") == str(LINES - 1999)
    expect(page.locator("a[download]")).to_have_attribute("href", f"/api/v1/runs/{run.id}/logs.txt")
    shot(page, "run-detail-200k")

    # Up to the top, then earlier pages: the view stays on the line that was on top.
    page.hover(".log-scroll")
    page.mouse.wheel(0, -10_000_000)
    earlier = page.locator('[data-action="earlier"]')
    expect(earlier).to_be_in_viewport()
    for pages in range(2, 6):
        earlier.click()
        expect(lines).to_have_count(2000 * pages)
        assert lines.first.get_attribute("data-seq") == str(LINES - 2000 * pages + 1)
        assert page.eval_on_selector(".log-scroll", "s => s.scrollTop") > 0
        page.mouse.wheel(0, -10_000_000)
    # Beyond 10,000 lines in the page the newest ones go; "jump to latest" brings the tail back.
    earlier.click()
    expect(lines.first).to_have_attribute("data-seq", str(LINES - 12_000 + 1))
    expect(lines).to_have_count(10_000)
    jump = page.locator('[data-action="jump"]')
    expect(jump).to_be_visible()
    shot(page, "run-detail-200k-earlier")
    jump.click()
    expect(lines).to_have_count(2000)
    expect(lines.last).to_contain_text(f"line {LINES} x")
    expect(lines.last).to_be_in_viewport()

    # The level chip asks the server: the WARNING lines of the whole log, its tail first.
    page.click('[data-action="level"]')
    expect(lines).to_have_count(LINES // 1000)
    expect(lines.last).to_contain_text(f"WARNING line {LINES - 500} x")
    expect(earlier).to_be_hidden()


# --- the socket cap ---


@contextmanager
def held_sockets(live_url: str, user: User, run: Run, count: int) -> Iterator[None]:
    """`count` live-log sockets of `user` kept open (by another client of theirs) meanwhile."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    url = f"{live_url.replace('http', 'ws', 1)}/ws/runs/{run.id}/"
    headers = {"Authorization": f"Token {issue_token(user)}"}

    sockets: list[ClientConnection] = []

    async def open_all() -> None:
        sockets.extend([await connect(url, additional_headers=headers) for _ in range(count)])

    async def close_all() -> None:
        await asyncio.gather(*(socket.close() for socket in sockets))

    asyncio.run_coroutine_threadsafe(open_all(), loop).result(30)
    try:
        yield
    finally:
        asyncio.run_coroutine_threadsafe(close_all(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


def test_beyond_the_socket_cap_the_page_says_so_instead_of_reconnecting(
    live_url: str, signed_in: SignIn, viewer: User
) -> None:
    make_job({"callable": "workers.builtins:sleep", "seconds": 60}, id="crowded")
    page = signed_in(viewer)
    run = trigger_run("crowded")
    try:
        with held_sockets(live_url, viewer, run, settings.NOMAFLOW_WS_MAX_PER_USER):
            page.goto(f"{live_url}{run_path(run.id)}")
            expect(page.locator(".live")).to_have_attribute("data-live", "refused")
            expect(page.locator(".live-text")).to_contain_text("too many live logs open")
    finally:
        stop_run(run)

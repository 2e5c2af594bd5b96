"""Routing on the Run detail page, in a browser against a live daphne and real workers: each
step shows its queue and the worker that claimed it, and a step whose queue no live worker
serves says so instead of sitting silently queued, until a worker for it comes."""

from __future__ import annotations

import re

from django.contrib.auth.models import User
from playwright.sync_api import Locator, Page, expect

from tests.factories import make_job
from tests.processes import start_worker, wait_terminal

from .browser import shot, stop_run, trigger_run
from .conftest import SignIn

NOOP = {"callable": "workers.builtins:noop"}
# The session's worker is named worker-<pid>@<host>; the StepRun records its pool process.
SESSION_WORKER = re.compile(r"^worker-\d+@.+:\d+$")


def _step(page: Page, name: str) -> Locator:
    return page.locator(f'.tl-step[data-step="{name}"]')


def test_each_step_shows_its_queue_and_the_worker_that_ran_it(live_url: str, signed_in: SignIn, viewer: User) -> None:
    make_job(NOOP, NOOP, id="routed")
    run = wait_terminal(trigger_run("routed"))
    page = signed_in(viewer)
    page.goto(f"{live_url}/nomaflow/runs/{run.id}")

    for name in ("F0001", "F0002"):
        step = _step(page, name)
        expect(step.locator(".tl-where")).to_be_visible()
        expect(step.locator(".tl-queue")).to_have_text("default")
        expect(step.locator(".tl-worker")).to_have_text(SESSION_WORKER)
        expect(step.locator(".tl-waiting")).to_be_hidden()
    assert run.steps.get(name="F0001").worker == _step(page, "F0001").locator(".tl-worker").text_content()
    shot(page, "run-detail-routing-workers")


def test_a_step_no_live_worker_serves_says_it_waits_until_a_worker_comes(
    live_url: str, signed_in: SignIn, viewer: User
) -> None:
    make_job({**NOOP, "queue": "gpu"}, id="needs-gpu")
    run = trigger_run("needs-gpu")
    page = signed_in(viewer)
    page.goto(f"{live_url}/nomaflow/runs/{run.id}")
    step = _step(page, "F0001")
    expect(step.locator(".tl-queue")).to_have_text("gpu")
    expect(step.locator(".tl-on")).to_be_hidden()  # claimed by nobody yet

    waiting = step.locator(".tl-waiting")
    expect(waiting).to_be_visible()
    expect(waiting).to_have_text("waiting for a worker on gpu")
    shot(page, "run-detail-routing-waiting")

    gpu = start_worker(queues="gpu", concurrency=1, name="gpu")
    try:
        expect(page.locator(".run-state .badge")).to_have_text("SUCCEEDED")
        expect(waiting).to_be_hidden()
        expect(step.locator(".tl-worker")).to_have_text(re.compile(r"^gpu-\d+@.+:\d+$"))
    finally:
        stop_run(run)
        gpu.stop()


def test_a_step_waiting_on_a_served_queue_never_says_it_waits(live_url: str, signed_in: SignIn, viewer: User) -> None:
    make_job({"callable": "workers.builtins:sleep", "seconds": 30}, id="one-at-a-time", max_concurrent_runs=1)
    first = trigger_run("one-at-a-time")
    second = trigger_run("one-at-a-time")  # QUEUED for the slot, its step PENDING on `default`
    page = signed_in(viewer)
    try:
        with page.expect_response(lambda response: response.url.endswith("/api/v1/workers/")) as asked:
            page.goto(f"{live_url}/nomaflow/runs/{second.id}")
        assert asked.value.ok
        expect(page.locator(".run-state .badge")).to_have_text("QUEUED")
        expect(_step(page, "F0001").locator(".tl-waiting")).to_be_hidden()
    finally:
        stop_run(second)
        stop_run(first)

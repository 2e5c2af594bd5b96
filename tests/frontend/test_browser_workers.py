"""The Workers page in a browser, against a live daphne and a worker of this module's own (on
a queue no other test uses): the worker with the step it runs and a link to its run, an
editor draining it from its queue and giving it back, what each role is offered, and a drain
refused because someone else drained the queue first."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import BrowserContext, Locator, Page, expect

from runs.choices import StepState
from runs.models import StepRun
from tests.factories import make_job
from tests.processes import Process, start_worker, wait_for
from workers import fleet
from workers.fleet import Worker

from .browser import shot, stop_run, trigger_run
from .conftest import SignIn

QUEUE = "fleet-ui"


@pytest.fixture(scope="module")
def ui_process(django_db_setup: None, django_db_blocker: object, clean_redis: None) -> Iterator[Process]:
    process = start_worker(queues=QUEUE, concurrency=1, name="fleetui")
    yield process
    process.stop()


@pytest.fixture
def ui_worker(ui_process: Process, live_url: str) -> Iterator[Worker]:
    """This module's worker as it answers, consuming its queue before and after the test."""
    worker = wait_for(lambda: _find(fleet.live_workers(0.3)), 20, what="the page's worker to answer")
    yield worker
    fleet.start_consuming(worker.hostname, QUEUE)  # a failed test must not leave it drained


def _find(workers: list[Worker]) -> Worker | None:
    return next((w for w in workers if w.hostname.startswith("fleetui-")), None)


def _open(page: Page, live_url: str, worker: Worker, wanted: str = "") -> Locator:
    """The worker's row, once the page shows it (and `wanted` in it). The page shows the fleet
    as daphne last asked it, up to a few seconds ago: a worker just started may not be there yet."""
    row = page.locator(f'#workers-table tr[data-worker="{worker.hostname}"]')

    def shown() -> bool:
        page.goto(f"{live_url}/nomaflow/workers/")
        return bool(row.count() and (not wanted or row.locator(wanted).count()))

    wait_for(shown, 20, interval=0.5, what=f"the Workers page to show {worker.hostname} {wanted}")
    return row


def _consuming(worker: Worker) -> tuple[str, ...] | None:
    found = next((w for w in fleet.live_workers(0.3) if w.hostname == worker.hostname), None)
    return found.queues if found else None


def test_an_editor_drains_the_worker_and_gives_it_back(
    live_url: str, signed_in: SignIn, editor: User, ui_worker: Worker
) -> None:
    make_job({"callable": "workers.builtins:sleep", "seconds": 30, "queue": QUEUE}, id="on-ui")
    run = trigger_run("on-ui")
    wait_for(lambda: StepRun.objects.filter(run=run, state=StepState.RUNNING).exists(), 20, what="the step")
    try:
        page = signed_in(editor)
        row = _open(page, live_url, ui_worker, wanted=".worker-step a")
        expect(page.locator('.mainnav a[aria-current="page"]')).to_have_text("Workers")
        expect(row.locator("td").nth(2)).to_have_text(str(ui_worker.pid))
        expect(row.locator("td").nth(4)).to_have_text("1")
        expect(row.locator("td").nth(5)).to_contain_text("celery 5.")
        step_link = row.locator(".worker-step a")
        expect(step_link).to_have_text(run.id)
        expect(row.locator(".worker-step")).to_contain_text(f"F0001 (python, queue {QUEUE})")
        expect(page.locator(f'#queues-table tr[data-queue="{QUEUE}"] td').nth(2)).to_have_text("1")
        shot(page, "workers")

        row.locator(f'button[data-action="drain"][data-queue="{QUEUE}"]').click()
        drained = row.locator(f'.worker-queue.is-drained[data-queue="{QUEUE}"]')
        expect(drained).to_contain_text(f"{QUEUE} · drained")
        expect(row.locator('button[data-action="drain"]')).to_have_count(0)
        assert _consuming(ui_worker) == ()
        expect(page.locator(f'#queues-table tr[data-queue="{QUEUE}"] td').nth(2)).to_have_text("0")
        shot(page, "workers-drained")

        drained.locator('button[data-action="give-back"]').click()
        expect(row.locator(f'.worker-queue[data-consuming="true"][data-queue="{QUEUE}"]')).to_be_visible()
        expect(row.locator('button[data-action="give-back"]')).to_have_count(0)
        assert _consuming(ui_worker) == (QUEUE,)

        step_link.click()
        page.wait_for_url(f"{live_url}/nomaflow/runs/{run.id}")
    finally:
        stop_run(run)


def test_viewers_and_operators_see_the_fleet_without_drain_or_give_back(
    live_url: str, signed_in: SignIn, viewer: User, operator: User, ui_worker: Worker
) -> None:
    for user in (viewer, operator):
        page = signed_in(user)
        row = _open(page, live_url, ui_worker)
        expect(row.locator(f'.worker-queue[data-queue="{QUEUE}"] .tag')).to_have_text(QUEUE)
        expect(page.locator("button[data-action]")).to_have_count(0)


def test_outsiders_are_refused_and_anonymous_users_sent_to_log_in(
    live_url: str, signed_in: SignIn, outsider: User, new_context: Callable[..., BrowserContext], ui_worker: Worker
) -> None:
    page = signed_in(outsider)
    response = page.goto(f"{live_url}/nomaflow/workers/")
    assert response is not None and response.status == 403
    expect(page.locator("#workers-table")).to_have_count(0)
    anonymous = new_context().new_page()
    anonymous.goto(f"{live_url}/nomaflow/workers/")
    assert anonymous.url == f"{live_url}/nomaflow/login/?next=/nomaflow/workers/"


def test_a_drain_someone_else_did_first_shows_why_it_was_refused(
    live_url: str, signed_in: SignIn, editor: User, ui_worker: Worker
) -> None:
    page = signed_in(editor)
    row = _open(page, live_url, ui_worker)
    assert fleet.stop_consuming(ui_worker.hostname, QUEUE)  # another editor, from another page
    wait_for(lambda: _consuming(ui_worker) == (), 10, what="the worker to stop consuming")
    row.locator(f'button[data-action="drain"][data-queue="{QUEUE}"]').click()
    expect(page.locator("#workers-error")).to_contain_text(f'does not consume from queue "{QUEUE}"')
    expect(row.locator('button[data-action="drain"]')).to_be_enabled()

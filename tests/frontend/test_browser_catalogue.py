"""The jobs catalogue in a browser: the Run-with-parameters modal against a live server
and a real worker, its client-side and server-side errors, and what a viewer is offered."""

from __future__ import annotations

from django.contrib.auth.models import User
from playwright.sync_api import Page, expect

from runs.models import Run
from tests.conftest import api_client
from tests.factories import make_job
from tests.processes import wait_for, wait_terminal

from .browser import shot
from .conftest import SignIn


def _open_modal(page: Page, job_id: str) -> Page:
    page.click(f'[data-run-job="{job_id}"]')
    expect(page.locator("dialog.params-modal")).to_be_visible()
    return page


def test_trigger_from_the_modal_with_a_param_and_a_disabled_step(
    live_url: str, signed_in: SignIn, operator: User
) -> None:
    make_job(
        {"callable": "workers.builtins:echo", "message": "{{ params.greeting }}"},
        {"callable": "workers.builtins:noop"},
        id="greeter", name="Greeter", params={"greeting": "hello", "repeat": 1}, schedule="30 2 * * *",
    )  # fmt: skip
    page = signed_in(operator)
    shot(page, "catalogue")
    _open_modal(page, "greeter")
    expect(page.locator('dialog input[value="INFO"]')).to_be_focused()  # the first field
    assert page.locator("dialog textarea").count() == 0  # op_kwargs only for editors
    page.fill('[data-param="greeting"]', "hello from the modal")
    page.uncheck('input[data-step="F0002"]')
    shot(page, "catalogue-run-modal")
    page.click("dialog button[type=submit]")
    page.wait_for_url(f"{live_url}/nomaflow/runs/*")

    run = wait_terminal(Run.objects.get(job_id="greeter"))
    assert page.url.endswith(f"/nomaflow/runs/{run.id}")
    assert run.state == "SUCCEEDED" and run.triggered_by == "user:otto"
    assert run.parameters["params"] == {"greeting": "hello from the modal", "repeat": 1}
    assert run.parameters["steps"]["F0002"]["enabled"] is False
    steps = {step.name: step for step in run.steps.all()}
    assert (steps["F0002"].state, steps["F0002"].reason) == ("CANCELED", "skipped: disabled")
    assert run.log_lines.filter(message="hello from the modal").exists()

    # Back on the catalogue, the card's badge is the run's state and opens that run; the
    # cards hold at a laptop's width without a horizontal scroll bar.
    page.goto(f"{live_url}/nomaflow/")
    badge = page.locator('[data-job-id="greeter"] .badge')
    expect(badge).to_have_text("SUCCEEDED")
    expect(badge).to_have_attribute("href", f"/nomaflow/runs/{run.id}")
    shot(page, "catalogue-after-run")
    page.set_viewport_size({"width": 1024, "height": 700})
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    shot(page, "catalogue-1024")


def test_modal_checks_fields_and_shows_a_server_400_next_to_its_field(
    live_url: str, signed_in: SignIn, editor: User
) -> None:
    make_job({"callable": "workers.builtins:noop"}, id="checked", params={"days": 3})
    page = _open_modal(signed_in(editor), "checked")
    # Tab stays inside the dialog: past the last button it comes back to the first.
    page.focus("dialog button[type=submit]")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.closest('dialog') !== null")
    page.keyboard.press("Shift+Tab")
    expect(page.locator("dialog button[type=submit]")).to_be_focused()
    # Client-side: a number param must be a number, nothing is sent.
    page.fill('[data-param="days"]', "three")
    page.click("dialog button[type=submit]")
    expect(page.locator('[data-param="days"]')).to_have_attribute("aria-invalid", "true")
    expect(page.locator(".param-row .form-error")).to_contain_text("enter a number")
    page.fill('[data-param="days"]', "4")
    # Server-side: the worker-side validation of a python step's callable answers 400.
    page.fill('textarea[data-op-kwargs="F0001"]', '{"callable": "os:system"}')
    page.click("dialog button[type=submit]")
    error = page.locator('[data-step-row="F0001"] .form-error').first
    expect(error).to_contain_text("callable")
    expect(page.locator('textarea[data-op-kwargs="F0001"]')).to_have_attribute("aria-invalid", "true")
    shot(page, "catalogue-run-modal-400")
    assert not Run.objects.exists()
    # Esc closes the modal and nothing was created.
    page.keyboard.press("Escape")
    expect(page.locator("dialog.params-modal")).to_have_count(0)
    assert not Run.objects.exists()


def test_viewer_is_not_offered_the_run_button_and_the_api_refuses_anyway(
    live_url: str, signed_in: SignIn, viewer: User
) -> None:
    make_job({"callable": "workers.builtins:noop"}, id="readonly")
    page = signed_in(viewer)
    expect(page.locator('[data-job-id="readonly"]')).to_be_visible()
    assert page.locator("[data-run-job]").count() == 0
    shot(page, "catalogue-viewer")
    status = page.evaluate(
        """async () => (await fetch('/api/v1/jobs/readonly/runs/', {method: 'POST', headers: {
             'Content-Type': 'application/json',
             'X-CSRFToken': document.querySelector('meta[name=csrf-token]').content}, body: '{}'})).status"""
    )
    assert status == 403
    assert api_client(viewer).post("/api/v1/jobs/readonly/runs/", {}, format="json").status_code == 403
    wait_for(lambda: not Run.objects.exists(), what="no run")

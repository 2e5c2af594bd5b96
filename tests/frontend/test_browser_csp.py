"""The Content-Security-Policy in Chromium (issue 12, item 8): the API docs, the admin and the
live log socket work under it without one violation (every browser test fails on a violation,
tests/frontend/conftest.py), and that check does catch an injected inline script."""

from __future__ import annotations

from collections.abc import Callable

from django.contrib.auth.models import User
from playwright.sync_api import BrowserContext, WebSocket, expect

from runs.services import run_trigger
from tests.factories import make_job

from .browser import shot
from .conftest import SignIn


def test_api_docs_render_under_the_policy(live_url: str, signed_in: SignIn, viewer: User) -> None:
    page = signed_in(viewer)
    page.goto(f"{live_url}/api/v1/docs/")
    expect(page.locator(".opblock-summary-path", has_text="/api/v1/jobs/").first).to_be_visible()
    page.locator(".opblock-summary-path", has_text="/api/v1/jobs/").first.click()
    expect(page.locator(".opblock-body").first).to_be_visible()
    shot(page, "api-docs")


def test_admin_pages_render_under_the_policy(live_url: str, new_context: Callable[..., BrowserContext]) -> None:
    User.objects.create_superuser("root", password="pw-root")
    job = make_job({"callable": "workers.builtins:noop"}, id="etl")
    page = new_context().new_page()
    page.goto(f"{live_url}/admin/login/?next=/admin/")
    page.fill("#id_username", "root")
    page.fill("#id_password", "pw-root")
    page.click("input[type=submit]")
    page.wait_for_url(f"{live_url}/admin/")
    for path in ["jobs/job/", f"jobs/job/{job.id}/change/", "jobs/connector/add/", "accounts/apitoken/"]:
        response = page.goto(f"{live_url}/admin/{path}")
        assert response is not None and response.status == 200, path
    expect(page.locator("#changelist")).to_be_visible()


def test_the_live_log_socket_is_allowed(live_url: str, signed_in: SignIn, viewer: User) -> None:
    """connect-src 'self' covers ws:// of the page's own host and port in Chromium (CSP 3)."""
    make_job({"callable": "workers.builtins:sleep", "seconds": 5}, id="sleeper")
    page = signed_in(viewer)
    # After signing in, and long enough to outlast the page's load: a finished run's page opens no socket.
    run, _ = run_trigger(job_id="sleeper", triggered_by="cli")
    with page.expect_websocket() as opened:
        page.goto(f"{live_url}/nomaflow/runs/{run.id}")
    socket: WebSocket = opened.value
    assert socket.url.startswith(live_url.replace("http://", "ws://"))
    socket.wait_for_event("framereceived", timeout=20_000)
    expect(page.locator(".run-state .badge")).to_have_text("SUCCEEDED", timeout=30_000)


def test_an_injected_inline_script_is_refused_and_reported(
    live_url: str, signed_in: SignIn, viewer: User, csp_violations: list[str]
) -> None:
    page = signed_in(viewer)
    page.evaluate("""() => {
        const script = document.createElement("script");
        script.textContent = "window.injected = true";
        document.body.append(script);
        document.body.insertAdjacentHTML("beforeend", '<img src="data:," onerror="window.injected = true">');
    }""")
    for _ in range(100):  # Playwright delivers console events only while it is called
        if len(csp_violations) >= 2:
            break
        page.wait_for_timeout(100)
    assert page.evaluate("window.injected") is None
    assert any("script-src" in text for text in csp_violations), csp_violations
    csp_violations.clear()  # expected here: the fixture fails any other test that has one

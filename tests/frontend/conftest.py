"""Browser-test fixtures: a real daphne (static files served) and the real Celery worker
on committed data, one headless Debian Chromium per test module, pages signed in as a given
user, and `shot()` for screenshots (test artifacts under var/, never committed).

    def test_x(live_url: str, signed_in: SignIn, operator: User) -> None:
        page = signed_in(operator)
        page.goto(live_url + "/nomaflow/")
        shot(page, "catalogue")   # from tests.frontend.browser import shot
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, Playwright, sync_playwright

from tests.processes import Process, free_port, start_daphne

from .browser import CHROMIUM, VIEWPORT

SignIn = Callable[..., Page]

# Every page must work under the Content-Security-Policy without one violation. Chromium logs
# each refusal as a console error; the page's `securitypolicyviolation` event says which
# directive and where, so it is forwarded to the console too.
CSP_REPORTER = """document.addEventListener("securitypolicyviolation", (e) => console.error(
  `CSP violation: ${e.effectiveDirective} blocked ${e.blockedURI || "inline code"}`,
  `at ${e.sourceFile}:${e.lineNumber}`));"""


@pytest.fixture(scope="session")
def daphne_server(django_db_setup: None, django_db_blocker: object) -> Iterator[str]:
    """The web process on the test database, serving /static/ itself; yields its base URL."""
    port = free_port()
    # DJANGO_ALLOW_ASYNC_UNSAFE="" keeps Django's async-safety checks on in daphne even
    # though the browser fixtures below set it in this process.
    process: Process = start_daphne(port, NOMAFLOW_SERVE_STATIC="1", DJANGO_ALLOW_ASYNC_UNSAFE="")
    yield f"http://127.0.0.1:{port}"
    process.stop()


@pytest.fixture
def live_url(daphne_server: str, worker: Process) -> str:
    """The live server's base URL, with a real worker and committed (transactional) data."""
    return daphne_server


@pytest.fixture(scope="module")
def playwright(daphne_server: str, celery_worker_process: Process) -> Iterator[Playwright]:
    """Playwright for one test module (daphne and the worker are started before it).

    Playwright's sync API leaves its asyncio loop marked as running in this thread, and
    Django then refuses every ORM call (the tests' own reads, the database flush between
    tests) as if made from async code. They are plain synchronous calls, so
    DJANGO_ALLOW_ASYNC_UNSAFE is set while the module runs, and both the loop and the
    variable are gone before the next module: other tests keep the checks.
    """
    saved = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as pw:
            yield pw
    finally:
        if saved is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = saved


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    """One headless Chromium per test module (each test gets fresh contexts)."""
    browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
    yield browser
    browser.close()


@pytest.fixture
def csp_violations() -> list[str]:
    """What the Content-Security-Policy refused in this test's pages (new_context fills it)."""
    return []


def _record_csp(message: ConsoleMessage, violations: list[str]) -> None:
    if message.type == "error" and ("Content Security Policy" in message.text or "CSP violation" in message.text):
        violations.append(message.text)


@pytest.fixture
def new_context(browser: Browser, csp_violations: list[str]) -> Iterator[Callable[..., BrowserContext]]:
    """Fresh browser contexts (cookies, timezone) for this test, closed after it; the test
    fails if any of its pages broke the Content-Security-Policy."""
    contexts: list[BrowserContext] = []

    def make(timezone_id: str = "Europe/Paris", **options: object) -> BrowserContext:
        context = browser.new_context(viewport=VIEWPORT, timezone_id=timezone_id, locale="en-GB", **options)  # type: ignore[arg-type]
        context.set_default_timeout(15_000)
        context.add_init_script(CSP_REPORTER)
        context.on("console", lambda message: _record_csp(message, csp_violations))
        contexts.append(context)
        return context

    yield make
    for context in contexts:
        context.close()
    assert not csp_violations, "Content-Security-Policy violations:\n" + "\n".join(csp_violations)


@pytest.fixture
def signed_in(live_url: str, new_context: Callable[..., BrowserContext]) -> SignIn:
    """signed_in(user, timezone_id=…) → a Page signed in through the login form as `user`
    (the role fixtures' password is "pw-" + username), left on the jobs catalogue."""

    def sign_in(user: User, **context_options: object) -> Page:
        page = new_context(**context_options).new_page()
        page.goto(f"{live_url}/nomaflow/login/")
        page.fill("#id_username", user.username)
        page.fill("#id_password", f"pw-{user.username}")
        page.click("button[type=submit]")
        page.wait_for_url(f"{live_url}/nomaflow/")
        return page

    return sign_in

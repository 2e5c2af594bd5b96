"""Helpers for the browser tests (fixtures are in conftest.py beside this file)."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from playwright.sync_api import Page

from runs.models import Run
from runs.services import run_cancel, run_trigger
from tests.processes import wait_terminal

CHROMIUM = "/usr/bin/chromium"  # Debian's build: `make test-deps` installs it
VIEWPORT = {"width": 1280, "height": 800}
SCREENSHOTS = Path(settings.BASE_DIR) / "var" / "test-artifacts" / "screenshots"


def shot(page: Page, name: str, full_page: bool = True) -> Path:
    """Save a screenshot (the whole page, or only the viewport) as
    var/test-artifacts/screenshots/<name>.png (git-ignored)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path


def trigger_run(job_id: str) -> Run:
    run, _ = run_trigger(job_id=job_id, triggered_by="user:otto")
    return run


def stop_run(run: Run) -> None:
    """Cancel a run still going, so the worker is free (and idle) for the next test."""
    run.refresh_from_db()
    if not run.is_terminal:
        run_cancel(run_id=run.id, by="user:test")
    wait_terminal(run)

"""Where a run is shown: its Run detail page, by the page's route name (frontend/urls.py)."""

from __future__ import annotations

from django.conf import settings
from django.urls import reverse


def run_path(run_id: str) -> str:
    """`/nomaflow/runs/<id>`: the Run's `url` in the API (API.md)."""
    return reverse("frontend:run_detail", args=[run_id])


def run_link(run_id: str) -> str:
    """The page's absolute URL, for what leaves the site (notifications, the CLI)."""
    return settings.NOMAFLOW_BASE_URL.rstrip("/") + run_path(run_id)

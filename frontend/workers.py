"""The Workers page: every live worker as Celery answers, what each one runs now (with its
run), the queues consumed with their depth, and the workers recently lost. Editors drain a
worker from a queue and give it back: js/workers.js sends those to the API, then reloads."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse

from workers import selectors

from .access import render_page, viewer_required


@viewer_required
def workers(request: HttpRequest) -> HttpResponse:
    """The fleet, from the cached answer of the workers (a few seconds old at most)."""
    context = {"fleet": selectors.fleet_overview(), "lost_hours": selectors.LOST_HOURS}
    return render_page(request, "frontend/workers.html", context)

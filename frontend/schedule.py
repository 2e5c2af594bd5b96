"""The Schedule page: week and month calendars of cron fires, drawn by js/schedule.js.

The browser asks GET /api/v1/schedule/ for the UTC instants of the period it shows and
places them in its own timezone, so a DST day has its 23 or 25 hours right.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse

from jobs.models import Job

from .access import render_page, viewer_required


@viewer_required
def schedule(request: HttpRequest) -> HttpResponse:
    """The calendar shell: toolbar and job filter; the fires come from the API."""
    jobs = list(Job.objects.order_by("id").values_list("id", flat=True))
    return render_page(request, "frontend/schedule.html", {"jobs": jobs})

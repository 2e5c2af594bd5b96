"""The Schedule page: week and month calendars of fires (filled in by js/schedule.js)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse

from jobs.models import Job

from .access import render_page, viewer_required


@viewer_required
def schedule(request: HttpRequest) -> HttpResponse:
    """The calendar shell; the browser reads GET /api/v1/schedule/ and draws it in its timezone."""
    jobs = Job.objects.exclude(schedule__isnull=True).exclude(schedule="").order_by("id").values_list("id", flat=True)
    return render_page(request, "frontend/schedule.html", {"jobs": list(jobs)})

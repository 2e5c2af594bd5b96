"""HTML pages. Reads only; actions go through the other apps' services."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from jobs.models import Job
from runs.roles import VIEWER, has_role


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """The landing page: where to go next, and the jobs there are."""
    if not has_role(request.user, VIEWER):
        raise PermissionDenied("nomaflow needs the viewer role; ask an admin to add you to a group")
    jobs = Job.objects.only("id", "name", "enabled").order_by("id")
    return render(request, "frontend/home.html", {"jobs": jobs})

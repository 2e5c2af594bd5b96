"""HTML pages: the jobs catalogue, sign-in and the error pages.

Pages read through runs.selectors; every action (trigger, cancel, replay) goes through
the REST API from the page's ES module, so the server checks roles in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth.views import LoginView, LogoutView
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from jobs.models import Job
from jobs.schedule import next_fire
from runs import selectors
from runs.models import Run

from .access import render_page, viewer_required


@dataclass
class JobCard:
    job: Job
    last_run: Run | None
    next_fire_at: datetime | None


@viewer_required
def home(request: HttpRequest) -> HttpResponse:
    """The jobs catalogue: one card per job with its schedule, next fire and last run."""
    now = timezone.now()
    cards = []
    for job in selectors.jobs_with_last_run():
        last_runs: list[Run] = getattr(job, "last_runs", [])  # prefetched by the selector
        cards.append(JobCard(job, last_runs[0] if last_runs else None, next_fire(job, now) if job.enabled else None))
    return render_page(request, "frontend/catalogue.html", {"cards": cards})


login = LoginView.as_view(
    template_name="frontend/login.html", next_page="frontend:home", redirect_authenticated_user=True
)
logout = LogoutView.as_view(next_page="frontend:login")


def forbidden(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """handler403: say which role is missing (the PermissionDenied message) and who is signed in."""
    message = str(exception) if exception and str(exception) else "You do not have the role this page needs."
    return _error(request, 403, "Not allowed", message)


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """handler404: a page in the site's layout; our views' Http404 messages name the missing thing."""
    given = exception.args[0] if exception is not None and exception.args else None
    message = given if isinstance(given, str) and given else f"There is nothing at {request.path}."
    return _error(request, 404, "Not found", f"{message} Check the id in the address.")


def _error(request: HttpRequest, status: int, heading: str, message: str) -> HttpResponse:
    context = {"status": status, "heading": heading, "message": message}
    response = render_page(request, "frontend/error.html", context)
    response.status_code = status
    return response

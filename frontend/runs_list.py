"""Runs lists: every run (`/nomaflow/runs/`) and one job's (`/nomaflow/jobs/<id>/runs/`).

Newest first with the API's cursor paging (the same paginator, so page links are
cursors, stable while new runs arrive), filters by state and trigger, and a bar chart
of the durations of the last runs to spot a creeping slowdown.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from rest_framework.exceptions import NotFound
from rest_framework.request import Request

from core.api.pagination import NewestFirst
from jobs.models import Job
from runs import selectors
from runs.choices import RunState
from runs.models import Run
from runs.serializers import step_summary

from .access import render_page, viewer_required

TRIGGERS = [("cron", "cron"), ("user", "a person (user:…)"), ("api", "api"), ("cli", "cli")]
CHART_RUNS = 40  # bars in the duration chart
CHART_HEIGHT = 80
BAR_WIDTH = 10


@viewer_required
def all_runs(request: HttpRequest) -> HttpResponse:
    """Every run of every job, newest first."""
    return _runs_page(request, None)


@viewer_required
def job_runs(request: HttpRequest, job_id: str) -> HttpResponse:
    """The runs of one job, newest first (opened from the job's name in the catalogue)."""
    job = Job.objects.filter(pk=job_id).first()
    if job is None:
        raise Http404(f'There is no job "{job_id}".')
    return _runs_page(request, job)


def _runs_page(request: HttpRequest, job: Job | None) -> HttpResponse:
    state = request.GET.get("state", "")
    trigger = request.GET.get("trigger", "").strip()
    runs = _filtered(selectors.runs_list(job_id=job.pk if job else None), state, trigger)
    paginator = NewestFirst()
    paginator.page_size = 50
    try:
        page = paginator.paginate_queryset(runs, Request(request)) or []
    except NotFound:
        raise Http404("This page of runs does not exist (a bad cursor); start from the first page.") from None
    triggers = list(TRIGGERS)
    if trigger and trigger not in dict(TRIGGERS):
        triggers.append((trigger, trigger))
    context = {
        "job": job,
        "rows": [(run, step_summary(list(run.steps.all()))) for run in page],
        "state": state if state in RunState.values else "",
        "trigger": trigger,
        "states": RunState.values,
        "triggers": triggers,
        "next_url": _relative(paginator.get_next_link()),
        "previous_url": _relative(paginator.get_previous_link()),
        "chart": duration_chart(list(runs.prefetch_related(None)[:CHART_RUNS])),  # bars need no steps
    }
    return render_page(request, "frontend/runs.html", context)


def _filtered(runs: QuerySet[Run], state: str, trigger: str) -> QuerySet[Run]:
    if state in RunState.values:
        runs = runs.filter(state=state)
    if trigger == "user":
        runs = runs.filter(triggered_by__startswith="user:")
    elif trigger:
        runs = runs.filter(triggered_by=trigger)
    return runs


def _relative(url: str | None) -> str | None:
    """The paginator builds absolute URLs; links on the page stay on whatever host served it."""
    if not url:
        return None
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


@dataclass
class Bar:
    run: Run
    x: int
    y: float
    height: float
    label: str


@dataclass
class Chart:
    bars: list[Bar]
    width: int
    height: int
    longest_s: float
    median_s: float | None


def duration_chart(newest_first: list[Run]) -> Chart | None:
    """Bars for the durations of finished runs, oldest on the left; None if none finished."""
    runs = [run for run in reversed(newest_first) if run.duration_s is not None]
    if not runs:
        return None
    durations = sorted(run.duration_s or 0.0 for run in runs)
    longest = durations[-1] or 1.0
    bars = []
    for index, run in enumerate(runs):
        seconds = run.duration_s or 0.0
        height = max(3.0, CHART_HEIGHT * seconds / longest)  # a 10 ms failure stays visible
        label = f"{run.id} · {run.state} · {seconds:.3g} s"
        bars.append(Bar(run, index * BAR_WIDTH, CHART_HEIGHT - height, height, label))
    # A fixed number of slots: bars keep their width whether there are 3 runs or 40.
    return Chart(bars, CHART_RUNS * BAR_WIDTH, CHART_HEIGHT, durations[-1], durations[len(durations) // 2])

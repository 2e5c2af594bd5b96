"""Routes of the REST API under /api/v1/ (API.md): runs' endpoints and jobs' (jobs.api), with
the jobs' one extended by their newest run (runs/api/jobs.py)."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from jobs.api import ConnectorViewSet

from .jobs import JobViewSet
from .logs import RunLogsView, RunLogTextView
from .runs import JobRunsView, RunViewSet
from .schedule import ScheduleView

router = SimpleRouter()
router.register("jobs", JobViewSet, basename="api-job")
router.register("connectors", ConnectorViewSet, basename="api-connector")
router.register("runs", RunViewSet, basename="api-run")

urlpatterns = [
    path("jobs/<slug:id>/runs/", JobRunsView.as_view(), name="api-job-runs"),
    path("runs/<slug:id>/logs/", RunLogsView.as_view(), name="api-run-logs"),
    path("runs/<slug:id>/logs.txt", RunLogTextView.as_view(), name="api-run-log-text"),
    path("schedule/", ScheduleView.as_view(), name="api-schedule"),
    *router.urls,
]

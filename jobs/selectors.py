"""Read queries for job and connector definitions, shared by the API, the pages and the CLI."""

from __future__ import annotations

from django.db.models import Prefetch, QuerySet

from .models import Connector, Job, Step


def jobs_list() -> QuerySet[Job]:
    """Jobs with their steps in order (two queries), ready for JobSerializer."""
    return Job.objects.prefetch_related(Prefetch("steps", queryset=Step.objects.order_by("position"))).order_by("id")


def connectors_list() -> QuerySet[Connector]:
    return Connector.objects.order_by("name")

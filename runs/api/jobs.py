"""`/jobs/`: the jobs' endpoint (jobs.api) with each job's newest run, which is runs' to tell."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from jobs import api as jobs_api
from jobs import serializers as job_serializers
from jobs.models import Job

from .. import selectors
from ..serializers import RunSummarySerializer


class JobSerializer(job_serializers.JobSerializer):
    """The API's Job: the definition plus its newest run (read-only)."""

    last_run = serializers.SerializerMethodField()

    class Meta(job_serializers.JobSerializer.Meta):
        fields = [*job_serializers.JobSerializer.Meta.fields[:-1], "last_run", "next_fire_at"]

    @extend_schema_field(RunSummarySerializer(allow_null=True))
    def get_last_run(self, job: Job) -> dict[str, Any] | None:
        # `last_runs` comes prefetched from selectors.jobs_with_last_run (no query per job).
        runs = getattr(job, "last_runs", None)
        if runs is None:
            runs = list(selectors.runs_list(job_id=job.pk)[:1])
        return RunSummarySerializer(runs[0]).data if runs else None


class JobViewSet(jobs_api.JobViewSet):
    queryset = selectors.jobs_with_last_run()
    serializer_class = JobSerializer

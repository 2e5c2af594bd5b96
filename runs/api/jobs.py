"""`/jobs/`: job definitions with their steps, last run and next fire time."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers, viewsets

from jobs import serializers as job_serializers
from jobs.models import Job

from .. import definitions, selectors
from ..audit import actor_label
from ..permissions import ViewerReadsEditorWrites
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


class JobViewSet(viewsets.ModelViewSet):
    queryset = selectors.jobs_with_last_run()
    serializer_class = JobSerializer
    permission_classes = [ViewerReadsEditorWrites]
    lookup_value_regex = r"[-a-zA-Z0-9_]+"

    def perform_create(self, serializer: serializers.BaseSerializer) -> None:
        job = definitions.job_save(serializer.validated_data, actor=actor_label(self.request.user))
        serializer.instance = self.get_queryset().get(pk=job.pk)

    def perform_update(self, serializer: serializers.BaseSerializer) -> None:
        job = definitions.job_save(
            serializer.validated_data, actor=actor_label(self.request.user), job=serializer.instance
        )
        serializer.instance = self.get_queryset().get(pk=job.pk)

    def perform_destroy(self, instance: Job) -> None:
        definitions.job_delete(instance, actor=actor_label(self.request.user))

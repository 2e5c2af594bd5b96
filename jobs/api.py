"""`/jobs/` and `/connectors/`: job definitions with their steps, and named connections
(keyed by name, secrets masked on read). Every write is audited (jobs.definitions).

runs/api/jobs.py extends the jobs' endpoint with each job's newest run: that is the
viewset the router serves (runs/api/urls.py).
"""

from __future__ import annotations

from rest_framework import serializers, viewsets

from core.audit import actor_label
from core.permissions import ViewerReadsEditorWrites

from . import definitions, selectors
from .models import Connector, Job
from .serializers import ConnectorSerializer, JobSerializer


class JobViewSet(viewsets.ModelViewSet):
    queryset = selectors.jobs_list()
    serializer_class = JobSerializer
    permission_classes = [ViewerReadsEditorWrites]
    lookup_value_regex = r"[-a-zA-Z0-9_]+"
    conflicts = {"destroy": "the job has runs, which are kept as its history; disable it instead"}

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


class ConnectorViewSet(viewsets.ModelViewSet):
    queryset = selectors.connectors_list()
    serializer_class = ConnectorSerializer
    permission_classes = [ViewerReadsEditorWrites]
    lookup_field = "name"
    lookup_value_regex = r"[-a-zA-Z0-9_]+"
    conflicts = {"destroy": "a step of some job uses the connector; change those steps first"}

    def perform_create(self, serializer: serializers.BaseSerializer) -> None:
        serializer.instance = definitions.connector_save(
            serializer.validated_data, actor=actor_label(self.request.user)
        )

    def perform_update(self, serializer: serializers.BaseSerializer) -> None:
        serializer.instance = definitions.connector_save(
            serializer.validated_data, actor=actor_label(self.request.user), connector=serializer.instance
        )

    def perform_destroy(self, instance: Connector) -> None:
        definitions.connector_delete(instance, actor=actor_label(self.request.user))

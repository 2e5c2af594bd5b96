"""`/connectors/`: named connections, keyed by name, secrets masked on read."""

from __future__ import annotations

from rest_framework import serializers, viewsets

from jobs.models import Connector
from jobs.serializers import ConnectorSerializer

from .. import definitions, selectors
from ..audit import actor_label
from ..permissions import ViewerReadsEditorWrites


class ConnectorViewSet(viewsets.ModelViewSet):
    queryset = selectors.connectors_list()
    serializer_class = ConnectorSerializer
    permission_classes = [ViewerReadsEditorWrites]
    lookup_field = "name"
    lookup_value_regex = r"[-a-zA-Z0-9_]+"

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

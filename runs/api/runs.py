"""`/runs/` and `/jobs/{id}/runs/`: run history, run detail, triggering, canceling and replaying a run."""

from __future__ import annotations

from typing import Any

import django_filters
from django.db.models import QuerySet
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, serializers, status, viewsets
from rest_framework.authentication import TokenAuthentication
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response

from core.api.pagination import NewestFirst
from core.audit import actor_label
from core.errors import InputError
from core.permissions import IsOperator, ViewerReadsOperatorWrites
from core.roles import EDITOR, has_role
from jobs.models import Job

from .. import selectors
from ..choices import LogLevel, RunState
from ..models import Run
from ..parameters import RERUN_CHOICES, overrides_touch_op_kwargs
from ..serializers import RunSerializer, RunSummarySerializer
from ..services import run_cancel, run_replay, run_trigger

IDEMPOTENCY_KEY_MAX = 200  # Run.idempotency_key's column size


class JobRunFilter(django_filters.FilterSet):
    state = django_filters.ChoiceFilter(choices=RunState.choices)
    triggered_by = django_filters.CharFilter(help_text="cron, api, cli or user:<name>")

    class Meta:
        model = Run
        fields = ["state", "triggered_by"]


class RunFilter(JobRunFilter):
    job = django_filters.CharFilter(field_name="job_id", help_text="job id")

    class Meta(JobRunFilter.Meta):
        fields = ["job", "state", "triggered_by"]


class StepOverrideSerializer(serializers.Serializer):
    op_kwargs = serializers.DictField(required=False, help_text="merged into the step's op_kwargs (editor role)")
    enabled = serializers.BooleanField(required=False)


class OverridesSerializer(serializers.Serializer):
    """The Overrides body (documentation only: runs.parameters checks it, with the job at hand)."""

    params = serializers.DictField(required=False)
    steps = serializers.DictField(child=StepOverrideSerializer(), required=False)
    log_level = serializers.ChoiceField(choices=[LogLevel.INFO, LogLevel.DEBUG], required=False)


class ReplayOverridesSerializer(OverridesSerializer):
    """The replay body: Overrides on top of the original snapshot, and a re-run shortcut."""

    rerun = serializers.ChoiceField(
        choices=RERUN_CHOICES, required=False, allow_null=True,
        help_text="failed_step: only the step where the run stopped; from_failed_step: it and every enabled "
        "step after it",
    )  # fmt: skip


class RunViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = selectors.runs_list()
    pagination_class = NewestFirst
    filterset_class = RunFilter
    lookup_value_regex = r"[0-9a-z]+"
    # The 409s of the schema (core/api/schema.py): the actions whose service raises StateConflict.
    conflicts = {"cancel": "the run has already ended", "replay": "the run has not ended yet"}

    def get_serializer_class(self) -> type[serializers.BaseSerializer]:
        return RunSerializer if self.action == "retrieve" else RunSummarySerializer

    def get_queryset(self) -> QuerySet[Run]:
        return selectors.run_detail() if self.action == "retrieve" else selectors.runs_list()

    # Error answers: core/api/schema.py (409: `conflicts` above).
    @extend_schema(request=None, responses={202: RunSerializer})
    @action(detail=True, methods=["post"], permission_classes=[IsOperator])
    def cancel(self, request: Request, pk: str) -> Response:
        """Cancel a QUEUED or RUNNING run (operator role). A queued run ends CANCELED at once;
        a running one when its worker has stopped the running step."""
        # A cancel is always by a person, whatever the authentication: `user:<name>`.
        run = run_cancel(run_id=pk, by=actor_label(request.user))
        return Response(_run_body(run), status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=ReplayOverridesSerializer, responses={201: RunSerializer})
    @action(detail=True, methods=["post"], permission_classes=[IsOperator])
    def replay(self, request: Request, pk: str) -> Response:
        """Start a new run from a finished run's snapshot with the overrides on top (operator role;
        op_kwargs overrides need the editor role). The new run has `replay_of` set."""
        overrides = _overrides(request, keys="params, steps, log_level, rerun")
        run = run_replay(run_id=pk, overrides=overrides, triggered_by=_triggered_by(request), actor=request.user)
        return _created(run)


class JobRunsView(generics.ListAPIView):
    """The runs of one job (GET) and a new run of it (POST)."""

    serializer_class = RunSummarySerializer
    pagination_class = NewestFirst
    filterset_class = JobRunFilter
    permission_classes = [ViewerReadsOperatorWrites]

    def get_queryset(self) -> QuerySet[Run]:
        if getattr(self, "swagger_fake_view", False):  # schema generation: no job in the URL
            return Run.objects.none()
        return selectors.runs_list(job_id=self.job_id())

    def job_id(self) -> str:
        job_id = self.kwargs["id"]
        if not Job.objects.filter(pk=job_id).exists():
            raise NotFound(f'job "{job_id}" does not exist')
        return job_id

    @extend_schema(
        request=OverridesSerializer,
        responses={201: RunSerializer},
        parameters=[
            OpenApiParameter(
                "Idempotency-Key", OpenApiTypes.STR, OpenApiParameter.HEADER,
                description="a retried POST with the same key and body returns the same run "
                "(with the header Idempotent-Replayed: true)",
            )
        ],
    )  # fmt: skip
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        job_id = self.job_id()
        overrides = _overrides(request)
        run, created = run_trigger(
            job_id=job_id,
            overrides=overrides,
            triggered_by=_triggered_by(request),
            actor=request.user,
            idempotency_key=_idempotency_key(request),
        )
        return _created(run, headers={} if created else {"Idempotent-Replayed": "true"})


def _run_body(run: Run) -> dict[str, Any]:
    return RunSerializer(selectors.run_detail().get(pk=run.pk)).data


def _created(run: Run, headers: dict[str, str] | None = None) -> Response:
    headers = {"Location": reverse("api-run-detail", args=[run.pk]), **(headers or {})}
    return Response(_run_body(run), status=status.HTTP_201_CREATED, headers=headers)


def _overrides(request: Request, keys: str = "params, steps, log_level") -> dict[str, Any]:
    """The Overrides body, refused before any write if it is not an object or if it
    overrides op_kwargs without the editor role."""
    overrides = request.data
    if not isinstance(overrides, dict):
        raise InputError(f"the request body must be a JSON object of overrides ({keys})")
    if overrides_touch_op_kwargs(overrides) and not has_role(request.user, EDITOR):
        raise PermissionDenied(
            'overriding step op_kwargs needs the editor role; leave "op_kwargs" out of "steps" '
            "or ask an editor to trigger this run"
        )
    return overrides


def _triggered_by(request: Request) -> str:
    # Scripts and CI come with a token; browsers with a session, as a person.
    if isinstance(request.successful_authenticator, TokenAuthentication):
        return "api"
    return actor_label(request.user)


def _idempotency_key(request: Request) -> str | None:
    key = request.headers.get("Idempotency-Key", "").strip() or None
    if key and len(key) > IDEMPOTENCY_KEY_MAX:
        raise InputError(
            f"the Idempotency-Key header is longer than {IDEMPOTENCY_KEY_MAX} characters; use a UUID",
            {"Idempotency-Key": [f"at most {IDEMPOTENCY_KEY_MAX} characters"]},
        )
    return key

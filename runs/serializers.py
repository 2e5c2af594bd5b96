"""Output shapes of runs, steps and log lines (API.md), shared by the API and events."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from .choices import REASON_DISABLED, StepState
from .links import run_path
from .models import LogLine, Run, StepRun
from .parameters import stopped_step


class StepRunSerializer(serializers.ModelSerializer):
    duration_s = serializers.FloatField(read_only=True, allow_null=True)
    queue = serializers.CharField(read_only=True, help_text="the Celery queue the step is sent to")
    worker = serializers.CharField(
        read_only=True, help_text="`<celery node name>:<pid>` of the worker that claimed it; empty before"
    )

    class Meta:
        model = StepRun
        fields = [
            "name", "type", "position", "state", "reason", "attempts",
            "started_at", "finished_at", "duration_s", "error", "queue", "worker",
        ]  # fmt: skip

    def to_representation(self, instance: StepRun) -> dict[str, Any]:
        return step_run_dict(instance)


def step_run_dict(step: StepRun) -> dict[str, Any]:
    """The StepRun shape, built by hand: workers send one per step change, so it is hot."""
    return {
        "name": step.name, "type": step.type, "position": step.position, "state": step.state,
        "reason": step.reason, "attempts": step.attempts, "started_at": iso(step.started_at),
        "finished_at": iso(step.finished_at), "duration_s": step.duration_s, "error": step.error,
        "queue": step.queue, "worker": step.worker,
    }  # fmt: skip


def iso(ts: datetime | None) -> str | None:
    """ISO 8601 in UTC with `Z`, as everywhere in the API."""
    if ts is None:
        return None
    utc = ts if ts.tzinfo is UTC else ts.astimezone(UTC)  # Django's own datetimes are UTC already
    return utc.isoformat().replace("+00:00", "Z")


class StepParametersSerializer(serializers.Serializer):
    """One step in a run's snapshot (documentation only: the run stores it as JSON)."""

    op_kwargs = serializers.DictField(help_text="the step's op_kwargs as the run used them, overrides merged")
    enabled = serializers.BooleanField()


class RunParametersSerializer(serializers.Serializer):
    """A run's snapshot of what it ran with (documentation only: the run stores it as JSON)."""

    params = serializers.DictField()
    steps = serializers.DictField(child=StepParametersSerializer(), help_text="by step name")


@extend_schema_field(RunParametersSerializer)
class RunParametersField(serializers.JSONField):
    pass


class RunSummarySerializer(serializers.ModelSerializer):
    job = serializers.CharField(source="job_id", read_only=True)
    actor: serializers.SlugRelatedField = serializers.SlugRelatedField(
        slug_field="username",
        read_only=True,
        allow_null=True,
        help_text="the user who started it; null when no user did (cron)",
    )
    duration_s = serializers.FloatField(read_only=True, allow_null=True)
    replay_of = serializers.CharField(source="replay_of_id", read_only=True, allow_null=True)
    step_summary = serializers.SerializerMethodField()
    url = serializers.SerializerMethodField()

    class Meta:
        model = Run
        fields = [
            "id", "job", "state", "triggered_by", "actor", "queued_at", "started_at",
            "finished_at", "duration_s", "log_level", "replay_of", "canceled_by",
            "scheduled_for", "step_summary", "url",
        ]  # fmt: skip

    def get_step_summary(self, run: Run) -> str:
        return step_summary(list(run.steps.all()))

    def get_url(self, run: Run) -> str:
        return run_path(run.id)


class RunSerializer(RunSummarySerializer):
    parameters = RunParametersField(read_only=True)
    steps = StepRunSerializer(many=True, read_only=True)
    stopped_step = serializers.SerializerMethodField(
        help_text="the step where the run stopped (the failed one, or the one canceled mid-work), "
        "which replay's `rerun` starts from; null when no step stopped it",
    )

    class Meta(RunSummarySerializer.Meta):
        fields = [*RunSummarySerializer.Meta.fields, "parameters", "steps", "stopped_step"]

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_stopped_step(self, run: Run) -> str | None:
        stopped = stopped_step(list(run.steps.all()))
        return stopped.name if stopped else None


class LogLineSerializer(serializers.ModelSerializer):
    class Meta:
        model = LogLine
        fields = ["seq", "ts", "level", "step", "message"]


def step_summary(steps: list[Any]) -> str:
    """ "7 / 7 ✓", "3 / 7" while running, "4 / 7 — failed at F9202", "2 / 7 — canceled at F0003"."""
    counted = [s for s in steps if s.reason != REASON_DISABLED]
    done = sum(1 for s in counted if s.state == StepState.SUCCEEDED)
    text = f"{done} / {len(counted)}"
    if counted and done == len(counted):
        return f"{text} ✓"
    stopped = stopped_step(counted)
    if stopped:
        return f"{text} — {stopped.state.lower()} at {stopped.name}"
    return text

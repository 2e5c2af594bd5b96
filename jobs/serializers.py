"""The API's Job and Connector shapes (API.md), used by the REST API and `manage.py load_jobs`.

They validate and shape; jobs.services writes. Field errors use the dotted paths of
jobs.validation (`steps.F0004.op_kwargs.sql`), so every caller reports them the same way.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from core import bounds

from .models import Connector, Job, Step
from .schedule import next_fire
from .services import JOB_FIELDS, STEP_FIELDS, connector_errors, mask_options, mask_url
from .validation import Errors, check_schedule, check_step, check_step_names, check_timezone

URL_SCHEMES: dict[str, tuple[str, ...]] = {
    Connector.Kind.POSTGRES: ("postgresql", "postgres"),
    Connector.Kind.SQLITE: ("sqlite",),
    Connector.Kind.HTTP: ("http", "https"),
    Connector.Kind.LDAP: ("ldap", "ldaps"),
}


@extend_schema_field(OpenApiTypes.OBJECT)
class JSONObjectField(serializers.JSONField):
    """A JSON object of any keys (params, op_kwargs, options): typed so in the schema; the
    serializer's validate_<field> refuses anything else with a message that says so."""


class StepListSerializer(serializers.ListSerializer):
    def to_internal_value(self, data: Any) -> Any:
        try:
            return super().to_internal_value(data)
        except serializers.ValidationError as exc:
            # Key errors by step name, like jobs.validation does, not by list index.
            if isinstance(exc.detail, list) and isinstance(data, list):
                raise serializers.ValidationError(
                    {_step_key(data, i): error for i, error in enumerate(exc.detail) if error}
                ) from None
            raise


class StepSerializer(serializers.ModelSerializer):
    op_kwargs = JSONObjectField(default=dict)  # checked against the step type in JobSerializer

    class Meta:
        model = Step
        fields = list(STEP_FIELDS)
        list_serializer_class = StepListSerializer

    def validate_op_kwargs(self, value: Any) -> Any:
        return _bounded(value, "op_kwargs")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        # A PATCH of the job still writes each step whole (DRF would skip missing fields).
        missing = [name for name in ("name", "type") if name not in attrs]
        if missing:
            raise serializers.ValidationError({name: ["This field is required."] for name in missing})
        return attrs


class JobSerializer(serializers.ModelSerializer):
    id = serializers.SlugField(max_length=100)
    schedule = serializers.CharField(max_length=100, allow_null=True, allow_blank=True, required=False)
    params = JSONObjectField(required=False)
    steps = StepSerializer(many=True, required=False)
    next_fire_at = serializers.SerializerMethodField()

    class Meta:
        model = Job
        fields = [*JOB_FIELDS, "steps", "next_fire_at"]

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        fields["id"].required = self.instance is None  # the URL names the job on PUT
        return fields

    def get_next_fire_at(self, job: Job) -> datetime | None:
        # A disabled job never fires, whatever its schedule says.
        return next_fire(job, timezone.now()) if job.enabled else None

    def validate_id(self, value: str) -> str:
        if self.instance is not None and value != self.instance.pk:
            raise serializers.ValidationError(
                f'cannot rename job "{self.instance.pk}" to "{value}": runs refer to the id; create a new job instead'
            )
        if self.instance is None and Job.objects.filter(pk=value).exists():
            raise serializers.ValidationError(f'job "{value}" already exists; PUT /api/v1/jobs/{value}/ to change it')
        return value

    def validate_schedule(self, value: str | None) -> str | None:
        value = (value or "").strip() or None
        _raise_field(check_schedule(value), "schedule")
        return value

    def validate_timezone(self, value: str) -> str:
        _raise_field(check_timezone(value), "timezone")
        return value

    def validate_params(self, value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise serializers.ValidationError('must be an object of name → default value, e.g. {"region": "north"}')
        return _bounded(value, "params")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if "steps" in attrs or "params" in attrs:
            job_id = attrs.get("id", self.instance.pk if self.instance else "")
            errors = _check_steps(attrs.get("steps", self._stored_steps()), self._params(attrs), job_id)
            if errors:
                raise serializers.ValidationError(errors)
        return attrs

    def _params(self, attrs: dict[str, Any]) -> dict[str, Any]:
        return attrs.get("params", self.instance.params if self.instance else {})

    def _stored_steps(self) -> list[dict[str, Any]]:
        if self.instance is None:
            return []
        return list(Step.objects.filter(job=self.instance).order_by("position").values(*STEP_FIELDS))


class ConnectorSerializer(serializers.ModelSerializer):
    """Secrets come back as `***` (the url's password, options under secret keys: core.secrets)."""

    name = serializers.SlugField(max_length=100)
    options = JSONObjectField(required=False)

    class Meta:
        model = Connector
        fields = ["name", "kind", "url", "options"]

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        fields["name"].required = self.instance is None  # the URL names the connector on PUT
        return fields

    def to_representation(self, connector: Connector) -> dict[str, Any]:
        data = super().to_representation(connector)
        data["url"] = mask_url(connector.url)
        data["options"] = mask_options(connector.options)
        return data

    def validate_name(self, value: str) -> str:
        if self.instance is not None and value != self.instance.name:
            raise serializers.ValidationError(
                f'cannot rename connector "{self.instance.name}": steps refer to it by name; create a new one'
            )
        if self.instance is None and Connector.objects.filter(name=value).exists():
            raise serializers.ValidationError(f'connector "{value}" already exists; PUT to change it')
        return value

    def validate_options(self, value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise serializers.ValidationError('must be an object, e.g. {"headers": {}}')
        return _bounded(value, "options")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        kind = str(attrs.get("kind", getattr(self.instance, "kind", "")))
        url = attrs.get("url", getattr(self.instance, "url", ""))
        scheme = url.partition("://")[0].lower() if "://" in url else ""
        allowed = URL_SCHEMES.get(kind, ())
        # A url that is wholly one ${ENV_VAR} is only known in the worker.
        if not url.startswith("${") and scheme not in allowed:
            raise serializers.ValidationError(
                {"url": [f"a {kind} connector needs a url starting with {' or '.join(s + '://' for s in allowed)}"]}
            )
        errors = connector_errors(kind, url, attrs.get("options", getattr(self.instance, "options", {})))
        if errors:
            raise serializers.ValidationError(errors)
        return attrs


def _check_steps(steps: list[dict[str, Any]], params: dict[str, Any], job_id: str) -> Errors:
    errors = check_step_names(step["name"] for step in steps)
    for step in steps:
        if f"steps.{step['name']}" not in errors:
            errors.update(check_step(step["name"], step["type"], step.get("op_kwargs", {}), params, job_id=job_id))
    return errors


def _bounded(value: Any, field: str) -> Any:
    """`value` if it is within core.bounds; else an error of `field` that names the part at fault."""
    errors = bounds.check_json(value, field)
    if errors:
        path, messages = next(iter(errors.items()))
        raise serializers.ValidationError(messages if path == field else {path.removeprefix(f"{field}."): messages})
    return value


def _raise_field(errors: Errors, field: str) -> None:
    if errors:
        raise serializers.ValidationError(errors[field])


def _step_key(data: list[Any], index: int) -> str:
    item = data[index]
    name = item.get("name") if isinstance(item, dict) else None
    return name if isinstance(name, str) and name else str(index)

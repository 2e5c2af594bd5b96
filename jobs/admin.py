"""Admin for connectors and jobs. Secrets never reach the page; every add, change and delete
lands in the audit trail, as it does through the API. (Triggering a job from here is runs'
part: runs/admin.py extends JobAdmin with that action.)"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.db.models import Field, JSONField, QuerySet
from django.http import HttpRequest

from core.audit import actor_label, audit_record
from core.bounds import BoundedJSONFormField
from core.errors import InputError

from .models import Connector, Job, Step
from .services import (
    connector_errors,
    connector_snapshot,
    connector_unmask,
    connector_users,
    diff,
    job_snapshot,
    mask_options,
    mask_url,
)
from .validation import check_schedule, check_step, check_step_names, check_timezone

# Params, op_kwargs and options take the API's size, key and depth bounds here too (core/bounds.py).
BOUNDED_JSON: Mapping[type[Field[Any, Any]], Mapping[str, Any]] = {JSONField: {"form_class": BoundedJSONFormField}}
_BEFORE = "_nomaflow_audit_before"  # the object as stored, kept on the request from save_model to save_related


class ConnectorForm(forms.ModelForm):
    """Shows secrets as `***`; posting `***` back keeps the stored value while the url's
    destination stays the same, and refuses what the API refuses (jobs.services)."""

    class Meta:
        model = Connector
        fields = ["name", "kind", "url", "options"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.initial["url"] = mask_url(self.instance.url)
            self.initial["options"] = mask_options(self.instance.options)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if "url" not in data or "options" not in data:
            return data  # the field's own error is shown already
        for field, msgs in connector_errors(str(data.get("kind", "")), data["url"], data["options"]).items():
            self.add_error(field.partition(".")[0], [f"{field}: {msg}" for msg in msgs])
        if not self.errors:
            try:
                data["url"], data["options"] = connector_unmask(
                    data["url"], data["options"], self.instance if self.instance.pk else None
                )
            except InputError as exc:
                self.add_error(next(iter(exc.errors), "url").partition(".")[0], exc.detail)
        return data


class AuditedAdmin(admin.ModelAdmin):
    """Records create / update / delete with a `{field: [old, new]}` diff of `snapshot`,
    in the admin's transaction, once the inlines are saved too."""

    formfield_overrides = BOUNDED_JSON

    def snapshot(self, obj: Any) -> dict[str, Any]:
        raise NotImplementedError

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        setattr(request, _BEFORE, self.snapshot(type(obj).objects.get(pk=obj.pk)) if change else {})
        super().save_model(request, obj, form, change)

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        changes = diff(getattr(request, _BEFORE, {}), self.snapshot(form.instance))
        if changes or not change:
            action = "update" if change else "create"
            audit_record(actor=actor_label(request.user), action=action, obj=form.instance, diff=changes)

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        before, pk = self.snapshot(obj), obj.pk
        super().delete_model(request, obj)
        obj.pk = pk  # the audit trail still names it
        audit_record(actor=actor_label(request.user), action="delete", obj=obj, diff=diff(before, {}))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        for obj in queryset:
            self.delete_model(request, obj)


@admin.register(Connector)
class ConnectorAdmin(AuditedAdmin):
    form = ConnectorForm
    list_display = ["name", "kind", "masked_url", "masked_options"]
    list_filter = ["kind"]
    search_fields = ["name"]

    def snapshot(self, obj: Connector) -> dict[str, Any]:
        return connector_snapshot(obj)  # secrets masked: they never reach the audit trail

    def get_fields(self, request: HttpRequest, obj: Connector | None = None) -> list[Any]:
        """A user who may only view connectors gets the masked url and options: the read-only
        page would otherwise print the stored values (the form, with its masking, is not used)."""
        if obj is not None and not self.has_change_permission(request, obj):
            return ["name", "kind", "masked_url", "masked_options"]
        return list(super().get_fields(request, obj))

    def get_deleted_objects(self, objs: Any, request: HttpRequest) -> tuple[Any, Any, Any, list[Any]]:
        """Steps name their connector in op_kwargs, not through a foreign key: list the
        steps using one as protected, so the admin refuses the delete as the API does."""
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        in_use = [f"step {user} uses connector {obj.name}" for obj in objs for user in connector_users(obj.name)]
        return deleted, counts, perms_needed, [*protected, *in_use]

    @admin.display(description="url")
    def masked_url(self, obj: Connector) -> str:
        return mask_url(obj.url)

    @admin.display(description="options")
    def masked_options(self, obj: Connector) -> Any:
        return mask_options(obj.options)


class StepFormSet(forms.BaseInlineFormSet):
    """Check the steps as a trigger would, with the job's params as submitted in the same form."""

    def clean(self) -> None:
        super().clean()
        kept = [f for f in self.forms if f.cleaned_data and not f.errors and not f.cleaned_data.get("DELETE")]
        errors = check_step_names(f.cleaned_data["name"] for f in kept)
        for form in kept:
            data = form.cleaned_data
            params = self.instance.params or {}
            errors.update(check_step(data["name"], data["type"], data["op_kwargs"], params, job_id=self.instance.pk))
        if errors:
            raise ValidationError([msg for msgs in errors.values() for msg in msgs])


class StepInline(admin.TabularInline):
    model = Step
    formfield_overrides = BOUNDED_JSON
    formset = StepFormSet
    extra = 0
    fields = ["position", "name", "type", "op_kwargs", "enabled", "retries", "retry_delay_s", "timeout_s", "queue"]
    ordering = ["position"]


class JobForm(forms.ModelForm):
    class Meta:
        model = Job
        fields = "__all__"

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        errors = {**check_schedule(data.get("schedule")), **check_timezone(data.get("timezone") or "UTC")}
        for field, msgs in errors.items():
            self.add_error(field, msgs)
        return data


@admin.register(Job)
class JobAdmin(AuditedAdmin):
    form = JobForm
    inlines = [StepInline]
    list_display = ["id", "name", "enabled", "schedule", "max_concurrent_runs", "updated_at"]
    list_filter = ["enabled"]
    search_fields = ["id", "name"]

    def snapshot(self, obj: Job) -> dict[str, Any]:
        return job_snapshot(obj)

    def get_readonly_fields(self, request: HttpRequest, obj: Job | None = None) -> list[str]:
        return ["id"] if obj else []  # runs point at the job id: renaming would orphan them

"""Admin for connectors and jobs. Secrets never reach the page; jobs can be triggered from here."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from runs.roles import OPERATOR, has_role
from runs.services import run_trigger

from .errors import InputError
from .models import Connector, Job, Step
from .services import mask_options, mask_url, unmask_options, unmask_url
from .validation import check_schedule, check_step, check_step_names, check_timezone


class ConnectorForm(forms.ModelForm):
    """Shows secrets as `***`; posting `***` back keeps the stored value (as the API does)."""

    class Meta:
        model = Connector
        fields = ["name", "kind", "url", "options"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.initial["url"] = mask_url(self.instance.url)
            self.initial["options"] = mask_options(self.instance.options)

    def clean_url(self) -> str:
        return _as_form_error(unmask_url, self.cleaned_data["url"], self.instance.url if self.instance.pk else "")

    def clean_options(self) -> Any:
        stored = self.instance.options if self.instance.pk else {}
        return _as_form_error(unmask_options, self.cleaned_data["options"], stored)


def _as_form_error(unmask: Any, value: Any, stored: Any) -> Any:
    try:
        return unmask(value, stored)
    except InputError as exc:
        raise ValidationError(exc.detail) from None


@admin.register(Connector)
class ConnectorAdmin(admin.ModelAdmin):
    form = ConnectorForm
    list_display = ["name", "kind", "masked_url", "masked_options"]
    list_filter = ["kind"]
    search_fields = ["name"]

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
            errors.update(check_step(data["name"], data["type"], data["op_kwargs"], self.instance.params or {}))
        if errors:
            raise ValidationError([msg for msgs in errors.values() for msg in msgs])


class StepInline(admin.TabularInline):
    model = Step
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
class JobAdmin(admin.ModelAdmin):
    form = JobForm
    inlines = [StepInline]
    list_display = ["id", "name", "enabled", "schedule", "max_concurrent_runs", "updated_at"]
    list_filter = ["enabled"]
    search_fields = ["id", "name"]
    actions = ["trigger_jobs"]

    def get_readonly_fields(self, request: HttpRequest, obj: Job | None = None) -> list[str]:
        return ["id"] if obj else []  # runs point at the job id: renaming would orphan them

    def has_trigger_permission(self, request: HttpRequest) -> bool:
        return has_role(request.user, OPERATOR)

    @admin.action(description="Trigger selected jobs", permissions=["trigger"])
    def trigger_jobs(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        for job in queryset:
            try:
                run, _ = run_trigger(job_id=job.pk, triggered_by=f"user:{request.user.username}", actor=request.user)
            except InputError as exc:
                self.message_user(request, f'job "{job.pk}" not triggered: {exc.detail}', messages.ERROR)
                continue
            link = reverse("admin:runs_run_change", args=[run.pk])
            self.message_user(request, format_html('job "{}": run <a href="{}">{}</a> queued', job.pk, link, run.pk))

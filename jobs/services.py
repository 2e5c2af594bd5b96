"""Writes of job and connector definitions, shared by the API and `manage.py load_jobs`.

Input has been validated by jobs.serializers. Each service returns a Change (what was
done and a diff); jobs.definitions records it in the audit trail.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from django.db import transaction
from django.db.models import Model, ProtectedError

from core import secrets, sqlite_guard
from core.destinations import is_own_database
from core.errors import InputError, StateConflict
from core.secrets import MASK, mask_options, mask_url

from . import step_types
from .models import Connector, Job, Step

JOB_FIELDS = (
    "id", "name", "description", "enabled", "schedule", "timezone", "catchup",
    "max_concurrent_runs", "log_level", "params",
)  # fmt: skip
STEP_FIELDS = ("name", "type", "op_kwargs", "enabled", "retries", "retry_delay_s", "timeout_s", "queue")


@dataclass
class Change:
    action: str  # create, update or delete
    obj: Model
    diff: dict[str, Any] = field(default_factory=dict)


@transaction.atomic
def job_save(data: dict[str, Any], *, job: Job | None = None) -> Change:
    """Create a job, or update `job`; a given `steps` list replaces all its steps."""
    data = dict(data)
    steps = data.pop("steps", None)
    before = job_snapshot(job) if job else {}
    if job is None:
        job = Job.objects.create(**data)
    else:
        for name, value in data.items():
            setattr(job, name, value)
        job.save()
    if steps is not None:
        # Runs copy their steps at trigger, so replacing the definitions touches no history.
        Step.objects.filter(job=job).delete()
        Step.objects.bulk_create([Step(job=job, position=i, **step) for i, step in enumerate(steps, start=1)])
    return Change("update" if before else "create", job, diff(before, job_snapshot(job)))


@transaction.atomic
def job_delete(job: Job) -> Change:
    # The job's row lock first (runs.locking): a trigger holding it commits its run before
    # the check for runs below, which then refuses, instead of the delete failing at commit.
    list(Job.objects.select_for_update().filter(pk=job.pk).values_list("pk"))
    before = job_snapshot(job)
    try:
        job.delete()
    except ProtectedError:
        raise StateConflict(
            f'job "{before["id"]}" has runs, which are kept as its history; disable the job instead'
        ) from None
    job.pk = before["id"]  # the audit trail still names it
    return Change("delete", job, diff(before, {}))


@transaction.atomic
def connector_save(data: dict[str, Any], *, connector: Connector | None = None) -> Change:
    """Create a connector, or update `connector`; `***` in url or options keeps the stored
    secret while the url's destination stays the same (connector_unmask)."""
    data = dict(data)
    before = connector_snapshot(connector) if connector else {}
    if "url" in data or "options" in data:
        data["url"], data["options"] = connector_unmask(data.get("url"), data.get("options"), connector)
    if connector is None:
        connector = Connector.objects.create(**data)
    else:
        for name, value in data.items():
            setattr(connector, name, value)
        connector.save()
    return Change("update" if before else "create", connector, diff(before, connector_snapshot(connector)))


@transaction.atomic
def connector_delete(connector: Connector) -> Change:
    users = connector_users(connector.name)
    if users:
        raise StateConflict(f'connector "{connector.name}" is used by {", ".join(users)}; change those steps first')
    before, pk = connector_snapshot(connector), connector.pk
    connector.delete()
    connector.pk = pk  # the audit trail still points at it
    return Change("delete", connector, diff(before, {}))


def connector_unmask(url: str | None, options: Any, connector: Connector | None) -> tuple[str, Any]:
    """Url and options as written back (None: the stored one, unchanged), with `***` replaced by
    the stored secrets; InputError (naming the field) for a `***` with nothing stored, or once
    the scheme, host or port changed."""
    stored_url, stored_options = (connector.url, connector.options) if connector else ("", {})
    url = stored_url if url is None else url
    options = stored_options if options is None else options
    try:
        return secrets.unmask(url, options, stored_url, stored_options)
    except secrets.MaskError as exc:
        raise InputError(str(exc), {exc.field: [exc.message]}) from None


def connector_errors(kind: str, url: str, options: Any) -> dict[str, list[str]]:
    """What a connector may not hold, by field: a `${NAME}` that may not be resolved, a
    postgres url reaching nomaflow's own database, or an sqlite file outside
    NOMAFLOW_SQLITE_DIR (the worker checks all three again). The API and the admin both ask."""
    errors = {**secrets.reference_errors(url, "url"), **secrets.reference_errors(options, "options")}
    if kind == Connector.Kind.POSTGRES and is_own_database(url):
        errors.setdefault("url", []).append(
            f"{mask_url(url)} is nomaflow's own database, which no step may use; name another database"
        )
    if kind == Connector.Kind.SQLITE:
        errors.setdefault("url", []).extend(sqlite_guard.url_errors(url))
    return {field: problems for field, problems in errors.items() if problems}


def connector_users(name: str) -> list[str]:
    """Steps (`job/step`) whose connector fields name `name` literally."""
    users = []
    for step in Step.objects.order_by("job_id", "position"):
        step_type = step_types.known().get(step.type)
        fields = step_type.connector_fields if step_type else {}
        if isinstance(step.op_kwargs, dict) and any(step.op_kwargs.get(f) == name for f in fields):
            users.append(f"{step.job_id}/{step.name}")
    return users


def job_snapshot(job: Job) -> dict[str, Any]:
    snapshot = {name: getattr(job, name) for name in JOB_FIELDS}
    # Not in the API (JOB_FIELDS), set in the admin: audited too, the webhook's secret masked.
    snapshot.update(notify_on=job.notify_on, notify_emails=job.notify_emails)
    snapshot["notify_webhook"] = mask_webhook(job.notify_webhook)
    # Not job.steps.all(): a prefetched list would be stale after the steps are replaced.
    steps = Step.objects.filter(job=job).order_by("position")
    snapshot["steps"] = [{name: getattr(step, name) for name in STEP_FIELDS} for step in steps]
    return snapshot


def connector_snapshot(connector: Connector) -> dict[str, Any]:
    """The connector as anyone may see it: secrets masked (this goes into the audit trail)."""
    return {
        "name": connector.name,
        "kind": connector.kind,
        "url": mask_url(connector.url),
        "options": mask_options(connector.options),
    }


def diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, list[Any]]:
    """{field: [old, new]} for every field that changed (None for a side that is absent)."""
    names = list(dict.fromkeys([*before, *after]))
    return {n: [before.get(n), after.get(n)] for n in names if before.get(n) != after.get(n)}


def mask_webhook(url: str) -> str:
    """A webhook URL as the audit trail keeps it. Slack's, like most, carries its secret in
    the path: only the scheme and host stay, with a short fingerprint of the whole URL, so
    a change still shows and the secret never does."""
    if not url:
        return ""
    fingerprint = hashlib.sha256(url.encode()).hexdigest()[:8]
    return f"{urlsplit(url).scheme}://{safe_host(url)}/{MASK} (sha256 {fingerprint})"


def safe_host(url: str) -> str:
    """A URL's host (and port), the only part of a webhook URL safe to show."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    return f"{host}:{parts.port}" if parts.port else host

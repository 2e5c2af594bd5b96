"""Writes of job and connector definitions, shared by the API and `manage.py load_jobs`.

Input has been validated by jobs.serializers. Each service returns a Change (what was
done and a diff); the runs side records it in the audit trail, because this app does
not import runs.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from django.db import transaction
from django.db.models import Model, ProtectedError

from workers.steps import REGISTRY

from .errors import InputError, StateConflict
from .models import Connector, Job, Step

MASK = "***"
# A key containing one of these hides its value (API.md names the first three; the rest
# catch `Authorization` and `X-Api-Key` headers, `?api_key=` and the like).
SECRET_WORDS = ("password", "token", "secret", "auth", "key", "cookie", "credential", "passwd")
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
    """Create a connector, or update `connector`; `***` in url or options keeps the stored secret."""
    data = dict(data)
    before = connector_snapshot(connector) if connector else {}
    stored_url = connector.url if connector else ""
    stored_options = connector.options if connector else {}
    if "url" in data:
        data["url"] = unmask_url(data["url"], stored_url)
    if "options" in data:
        data["options"] = unmask_options(data["options"], stored_options)
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


def connector_users(name: str) -> list[str]:
    """Steps (`job/step`) whose connector fields name `name` literally."""
    users = []
    for step in Step.objects.order_by("job_id", "position"):
        step_type = REGISTRY.get(step.type)
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


def mask_url(url: str) -> str:
    """`postgresql://u:pw@host/db?sslpassword=x` → `postgresql://u:***@host/db?sslpassword=***`."""
    parts = urlsplit(url)
    if parts.password:
        parts = parts._replace(netloc=f"{parts.username or ''}:{MASK}@{parts.netloc.rpartition('@')[2]}")
    if any(_is_secret(name) for name, _ in _query(parts.query)):
        query = [(name, MASK if _is_secret(name) else value) for name, value in _query(parts.query)]
        parts = parts._replace(query=urlencode(query, safe="*${}"))
    return urlunsplit(parts)


def _query(query: str) -> list[tuple[str, str]]:
    return parse_qsl(query, keep_blank_values=True)


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


def mask_options(value: Any) -> Any:
    """Every plain value under a secret-looking key becomes `***`, at any depth (objects
    under such a key, like `auth: {type, token}`, are masked inside, keeping their shape)."""
    if isinstance(value, dict):
        return {k: MASK if _hides(k, v) else mask_options(v) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_options(item) for item in value]
    return value


def unmask_url(url: str, stored: str) -> str:
    """A url written back with `***` as its password (or a secret query value) keeps the stored one."""
    url = _unmask_query(url, stored)
    parts = urlsplit(url)
    if parts.password != MASK:
        return url
    stored_parts = urlsplit(stored)
    if not stored_parts.password:
        raise InputError(
            "url: the password is *** but no password is stored; give the real password or a ${ENV_VAR}",
            {"url": ["password *** but none stored"]},
        )
    secret = stored_parts.netloc.rpartition("@")[0].partition(":")[2]
    netloc = f"{parts.username or ''}:{secret}@{parts.netloc.rpartition('@')[2]}"
    return urlunsplit(parts._replace(netloc=netloc))


def _unmask_query(url: str, stored: str) -> str:
    parts = urlsplit(url)
    given = _query(parts.query)
    if not any(value == MASK and _is_secret(name) for name, value in given):
        return url
    kept = dict(_query(urlsplit(stored).query))
    restored = []
    for name, value in given:
        if value == MASK and _is_secret(name):
            if name not in kept:
                raise InputError(
                    f"url: {name}=*** but no value is stored; give the real value or a ${{ENV_VAR}}",
                    {"url": [f"{name}=*** but none stored"]},
                )
            value = kept[name]
        restored.append((name, value))
    return urlunsplit(parts._replace(query=urlencode(restored, safe="*${}")))


def unmask_options(value: Any, stored: Any, path: str = "options") -> Any:
    """Values written back as `***` under a secret key take the stored value at the same path."""
    if isinstance(value, dict):
        stored = stored if isinstance(stored, dict) else {}
        return {k: _unmask_value(k, v, stored, f"{path}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        stored = stored if isinstance(stored, list) else []
        return [
            unmask_options(item, stored[i] if i < len(stored) else None, f"{path}.{i}") for i, item in enumerate(value)
        ]
    return value


def _unmask_value(key: str, value: Any, stored: dict[str, Any], path: str) -> Any:
    if value != MASK or not _is_secret(key):
        return unmask_options(value, stored.get(key), path)
    if stored.get(key) in (None, ""):
        raise InputError(
            f"{path}: the value is *** but nothing is stored; give the real value", {path: ["*** but none stored"]}
        )
    return stored[key]


def _hides(key: Any, value: Any) -> bool:
    return _is_secret(key) and value not in (None, "") and not isinstance(value, dict | list)


def _is_secret(key: Any) -> bool:
    return any(word in str(key).lower() for word in SECRET_WORDS)

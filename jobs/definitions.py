"""Edits of job and connector definitions, with their audit record in the same transaction.

jobs.services does the writes; this thin layer adds the AuditEvent (core.audit), so the
API and `manage.py load_jobs` audit the same way.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction

from core.audit import audit_record

from . import services
from .models import Connector, Job


@transaction.atomic
def job_save(data: dict[str, Any], *, actor: str, job: Job | None = None) -> Job:
    """Create a job (or update `job`) from validated JobSerializer data, and audit it."""
    return _audited(services.job_save(data, job=job), actor)


@transaction.atomic
def job_delete(job: Job, *, actor: str) -> None:
    """Delete a job that has no runs (StateConflict otherwise), and audit it."""
    _audited(services.job_delete(job), actor)


@transaction.atomic
def connector_save(data: dict[str, Any], *, actor: str, connector: Connector | None = None) -> Connector:
    """Create a connector (or update `connector`) from validated ConnectorSerializer data, and audit it."""
    return _audited(services.connector_save(data, connector=connector), actor)


@transaction.atomic
def connector_delete(connector: Connector, *, actor: str) -> None:
    """Delete a connector no step names (StateConflict otherwise), and audit it."""
    _audited(services.connector_delete(connector), actor)


def _audited(change: services.Change, actor: str) -> Any:
    # A connector's diff is already masked: no secret ever reaches the audit trail.
    audit_record(actor=actor, action=change.action, obj=change.obj, diff=change.diff)
    return change.obj

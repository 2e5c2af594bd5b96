"""The python step of the built-in `housekeeping` job (always allowed as a python step
module, whatever NOMAFLOW_PYTHON_STEP_MODULES says: the built-in job must keep working).

Only that job may name it: job validation refuses it elsewhere (@step_callable(job=…)),
and the function checks its run's job itself, for a step row written around validation."""

from __future__ import annotations

from django.db import connection

from runs.models import Run, SiteSettings
from runs.retention import HOUSEKEEPING_JOB_ID, Purged, purge_record, runs_purge_batches
from workers.steps.base import Context
from workers.steps.python import step_callable


@step_callable(job=HOUSEKEEPING_JOB_ID)
def purge_expired(ctx: Context, retention_days: int | None = None) -> None:
    """Delete runs finished more than `retention_days` ago (default: the admin's
    settings; it may only be longer), with their step runs and log lines, batch by
    batch; stops between batches when canceled, and logs and audits what it removed
    either way."""
    purged: Purged | None = None
    try:
        _refuse_misuse(ctx.run_id, retention_days)
        for totals in runs_purge_batches(days=retention_days, keep={ctx.run_id}):
            purged = totals
            ctx.check_canceled()
    finally:
        if purged is not None:
            ctx.log.info(purged.summary())
            purge_record(run_id=ctx.run_id, purged=purged)
        connection.close()  # this runs in a thread of its own: do not leave its connection behind


def _refuse_misuse(run_id: str, retention_days: int | None) -> None:
    job_id = Run.objects.filter(pk=run_id).values_list("job_id", flat=True).first()
    if job_id != HOUSEKEEPING_JOB_ID:
        raise PermissionError(f'purge_expired runs only in the built-in "{HOUSEKEEPING_JOB_ID}" job, not in "{job_id}"')
    # The retention is the admin's setting: a job editor may keep history longer, never shorter.
    kept = SiteSettings.current().retention_days
    if retention_days is not None and retention_days < kept:
        raise PermissionError(
            f"retention_days {retention_days} is shorter than the retention set in admin › settings ({kept} days); "
            "only that setting can shorten it"
        )

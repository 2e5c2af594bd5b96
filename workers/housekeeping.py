"""The python step of the built-in `housekeeping` job (always allowed as a python step
module, whatever NOMAFLOW_PYTHON_STEP_MODULES says: the built-in job must keep working)."""

from __future__ import annotations

from django.db import connection

from runs.retention import Purged, purge_record, runs_purge_batches
from workers.steps.base import Context


def purge_expired(ctx: Context, retention_days: int | None = None) -> None:
    """Delete runs finished more than `retention_days` ago (default: the admin's
    settings), with their step runs and log lines, batch by batch; stops between
    batches when cancelled, and logs and audits what it removed either way."""
    purged: Purged | None = None
    try:
        for totals in runs_purge_batches(days=retention_days, keep={ctx.run_id}):
            purged = totals
            ctx.check_cancelled()
    finally:
        if purged is not None:
            ctx.log.info(purged.summary())
            purge_record(run_id=ctx.run_id, purged=purged)
        connection.close()  # this runs in a thread of its own: do not leave its connection behind

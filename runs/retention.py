"""Retention: delete finished runs, their step runs and log lines, once past the cutoff.

The purge works in small batches, each its own short transaction, so it never holds a
table lock or a long row lock: the API and the workers keep going while it runs. Log
lines (the biggest table) go first, in chunks of about LINE_BATCH rows taken along the
`(run, seq)` index; then the batch's step runs and runs. Only terminal runs are
candidates: an in-flight run is never touched, however old.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Collection, Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from core.audit import audit_record

from .locking import retry_on_conflict
from .models import LogLine, Run, SiteSettings, StepRun
from .transitions import RUN

RUN_BATCH = 500  # runs per delete transaction
LINE_BATCH = 10_000  # log lines per delete transaction

# The built-in job that runs the purge (created by migration runs/0006_housekeeping_job).
HOUSEKEEPING_JOB_ID = "housekeeping"


@dataclass(frozen=True)
class Purged:
    """What a purge has removed so far."""

    cutoff: datetime
    days: int
    runs: int = 0
    steps: int = 0
    log_lines: int = 0

    def summary(self) -> str:
        return (
            f"removed {self.runs:,} runs and {self.log_lines:,} log lines older than "
            f"{self.cutoff:%Y-%m-%d %H:%M} UTC ({self.days} days)"
        )


def retention_cutoff(*, days: int, now: datetime | None = None) -> datetime:
    """Runs finished strictly before this instant are past retention."""
    return (now or timezone.now()) - timedelta(days=days)


def runs_purge_batches(
    *,
    days: int | None = None,
    now: datetime | None = None,
    keep: Collection[str] = (),
    run_batch: int = RUN_BATCH,
    line_batch: int = LINE_BATCH,
) -> Iterator[Purged]:
    """Delete runs finished more than `days` (default: SiteSettings.retention_days) ago.

    Yields the totals first (nothing removed yet, but the cutoff known), then again
    after every committed batch, so the caller can stop between batches (a canceled
    housekeeping step) and still say what it removed. Runs in `keep` (the housekeeping
    run itself) are never deleted.
    """
    days = days if days is not None else SiteSettings.current().retention_days
    purged = Purged(cutoff=retention_cutoff(days=days, now=now), days=days)
    yield purged
    expired = Run.objects.filter(state__in=RUN.terminal, finished_at__lt=purged.cutoff).exclude(pk__in=keep)
    while batch := list(expired.order_by("finished_at", "id").values_list("id", "last_seq")[:run_batch]):
        for run_ids, seq_range in _line_chunks(batch, line_batch):
            purged = replace(purged, log_lines=purged.log_lines + _delete_lines(run_ids, seq_range))
            yield purged
        purged = _delete_runs([run_id for run_id, _ in batch], purged)
        yield purged


def runs_purge_expired(
    *,
    days: int | None = None,
    now: datetime | None = None,
    keep: Collection[str] = (),
    run_batch: int = RUN_BATCH,
    line_batch: int = LINE_BATCH,
) -> Purged:
    """The whole purge at once (see runs_purge_batches); returns what it removed."""
    batches = runs_purge_batches(days=days, now=now, keep=keep, run_batch=run_batch, line_batch=line_batch)
    return deque(batches, maxlen=1)[0]


def purge_record(*, run_id: str, purged: Purged) -> None:
    """The audit event of a purge that removed something, on the housekeeping run."""
    if purged.runs or purged.log_lines:
        diff = {
            "runs": purged.runs,
            "log_lines": purged.log_lines,
            "cutoff": purged.cutoff.isoformat(),
            "days": purged.days,
        }
        audit_record(actor="system", action="purge", obj=Run(pk=run_id), diff=diff)


SeqRange = tuple[int, int]


def _line_chunks(batch: list[tuple[str, int]], limit: int) -> Iterator[tuple[list[str], SeqRange | None]]:
    """Group runs so that each delete removes about `limit` lines: several small runs
    whole, or one big run a `seq` range at a time. `last_seq` bounds a run's lines."""
    whole: list[str] = []
    size = 0
    for run_id, last_seq in batch:
        if last_seq > limit:
            for low in range(0, last_seq, limit):
                yield [run_id], (low, low + limit)
            continue
        if whole and size + last_seq > limit:
            yield whole, None
            whole, size = [], 0
        whole.append(run_id)
        size += last_seq
    if whole:
        yield whole, None


@retry_on_conflict
def _delete_lines(run_ids: list[str], seq_range: SeqRange | None) -> int:
    lines = LogLine.objects.filter(run_id__in=run_ids)
    if seq_range is not None:
        lines = lines.filter(seq__gt=seq_range[0], seq__lte=seq_range[1])
    with transaction.atomic():
        deleted, _ = lines.delete()
    return deleted


@retry_on_conflict
def _delete_runs(run_ids: list[str], purged: Purged) -> Purged:
    # Any line written after its chunk went (there should be none) goes with the run.
    with transaction.atomic():
        steps, _ = StepRun.objects.filter(run_id__in=run_ids).delete()
        _, by_model = Run.objects.filter(pk__in=run_ids, state__in=RUN.terminal).delete()
    return replace(
        purged,
        runs=purged.runs + by_model.get("runs.Run", 0),
        steps=purged.steps + steps,
        log_lines=purged.log_lines + by_model.get("runs.LogLine", 0),
    )

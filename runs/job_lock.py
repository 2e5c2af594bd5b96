"""A job read under its row lock, with its `max_concurrent_runs` slots counted.

Every run that takes or frees a slot holds the job's row lock while it counts, so two
triggers can never both see the last free slot. The trigger is the path from a click to
a running step, and the ORM spends longer building its three queries (job, steps, slot
counts) than the database spends answering them: here they are one read, plain SQL that
PostgreSQL and SQLite both speak.

On PostgreSQL the lock is a statement of its own, sent in the same message as the read.
A statement reads with the snapshot it started with, so counts taken in the statement
that waited for the lock would miss the run its previous holder just committed, and two
triggers could share the last slot. Each statement of a message gets a fresh snapshot:
the read, after the lock, sees everything committed before it. SQLite needs no lock
statement: its IMMEDIATE transactions (settings.py) already serialise writers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from django.db import connection

from jobs.models import Job, Step

from .choices import RunState
from .models import Run
from .prepared import prepared
from .roundtrips import execute_together
from .transitions import RUN, SqlNames, sql_states

_STEP_FIELDS = ("name", "type", "position", "queue", "retries", "retry_delay_s", "timeout_s", "op_kwargs", "enabled")


def _statements() -> tuple[str, str, str]:
    """The lock, the slot count, and the job's read: built from the models and the state
    machine (runs.transitions), so a renamed column or a new active state reaches them."""
    j, r, s = SqlNames(Job), SqlNames(Run), SqlNames(Step)
    of_job = f"{r.col('job')} = {j.col('id')}"
    # Runs holding a slot (sent to the workers), and runs queued for one.
    slot_counts = f"""
        {j.col("max_concurrent_runs")},
        (SELECT count(*) FROM {r.table} WHERE {of_job} AND {r.col("state")} IN ({sql_states(RUN.active)})
           AND {r.col("dispatched_at")} IS NOT NULL),
        (SELECT count(*) FROM {r.table} WHERE {of_job} AND {r.col("state")} = '{RunState.QUEUED}'
           AND {r.col("dispatched_at")} IS NULL)
    """
    lock = f"SELECT 1 FROM {j.table} WHERE {j.id} = %s FOR UPDATE"
    slots = f"SELECT {slot_counts} FROM {j.table} WHERE {j.col('id')} = %s"
    steps = ", ".join(s.col(name) for name in _STEP_FIELDS)
    job = f"""
        SELECT {slot_counts}, {j.col("params")}, {j.col("log_level")}, {steps}
        FROM {j.table} LEFT JOIN {s.table} ON {s.col("job")} = {j.col("id")}
        WHERE {j.col("id")} = %s
        ORDER BY {s.col("position")}
    """
    return lock, slots, job


_LOCK_SQL, _SLOTS_SQL, _JOB_SQL = _statements()


@dataclass(frozen=True)
class JobSlots:
    max_concurrent_runs: int
    busy: int  # runs holding a slot
    waiting: int  # runs queued for a slot, oldest first in line

    @property
    def free(self) -> int:
        return self.max_concurrent_runs - self.busy

    @property
    def start_now(self) -> bool:
        """A new run may start at once: a slot is free and no older run waits for one."""
        return self.waiting == 0 and self.free > 0


@dataclass(frozen=True)
class StepDefinition:
    """A Step row as a run is created from it (the fields StepRun copies)."""

    name: str
    type: str
    position: int
    queue: str
    retries: int
    retry_delay_s: float
    timeout_s: float | None
    op_kwargs: dict[str, Any]
    enabled: bool


@dataclass(frozen=True)
class LockedJob(JobSlots):
    id: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    log_level: str = "INFO"
    steps: list[StepDefinition] = field(default_factory=list)

    def base(self) -> dict[str, Any]:
        """The job's definition as the base of a parameters snapshot (runs.parameters)."""
        steps = {step.name: {"op_kwargs": step.op_kwargs, "enabled": step.enabled} for step in self.steps}
        return {"params": self.params, "steps": steps}


def lock_job_slots(job_id: str) -> JobSlots:
    """Lock the job's row and count its slots. Raises Job.DoesNotExist."""
    rows = _locked_rows("nomaflow_job_slots", _SLOTS_SQL, job_id)
    return JobSlots(*rows[0])


def lock_job(job_id: str) -> LockedJob:
    """Lock the job's row; return its definition, steps in order, and its slots.
    Raises Job.DoesNotExist."""
    rows = _locked_rows("nomaflow_job", _JOB_SQL, job_id)
    max_runs, busy, waiting, params, log_level = rows[0][:5]
    steps = [_step(row[5:]) for row in rows if row[5] is not None]  # LEFT JOIN: a job with no steps
    return LockedJob(max_runs, busy, waiting, job_id, _json(params), log_level, steps)


def _locked_rows(name: str, sql: str, job_id: str) -> list[tuple[Any, ...]]:
    read = (prepared(name, sql), [job_id])  # planning it cost more than running it
    lock = [(_LOCK_SQL, [job_id])] if connection.features.has_select_for_update else []
    rows = execute_together([*lock, read])[-1]  # no job: no row for the lock, and none here either
    if not rows:
        raise Job.DoesNotExist(f'job "{job_id}" does not exist')
    return rows


def _step(row: tuple[Any, ...]) -> StepDefinition:
    values = dict(zip(_STEP_FIELDS, row, strict=True))
    values["op_kwargs"] = _json(values["op_kwargs"])
    values["enabled"] = bool(values["enabled"])  # SQLite answers 0 / 1
    return StepDefinition(**values)


def _json(value: Any) -> Any:
    # Django's backends hand JSON columns over as text to raw cursors.
    return json.loads(value) if isinstance(value, str | bytes) else value

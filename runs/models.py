"""What happened: runs, their steps and their log lines (the audit trail is core.models).

State only moves through the guarded methods here. Each is one conditional UPDATE
(`WHERE state IN (allowed sources)`), so two processes racing on the same row cannot
both win, and a terminal row never changes state again.
"""

from __future__ import annotations

import time
from typing import Any, NamedTuple

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator, validate_email
from django.db import connection, models
from django.db.models import Q
from django.utils import timezone

from jobs.models import Job

from . import statements
from .choices import (
    LogLevel,
    RunState,
    StepState,
)
from .ids import new_run_id
from .roundtrips import execute_together, instances, prefetched, selected_fields
from .transitions import RUN, STEP, Machine, cancel_verdict


def _move(obj: models.Model, machine: Machine, target: str, **changes: Any) -> bool:
    """Move the row to `target` (with `changes`) if its state is still one the machine moves
    it from; False if another process got there first."""
    sources = machine.sources(target)
    updated = type(obj)._default_manager.filter(pk=obj.pk, state__in=sources).update(state=target, **changes)
    changes["state"] = target
    if updated:
        _apply(obj, {field: value for field, value in changes.items() if not hasattr(value, "resolve_expression")})
    return bool(updated)


def _apply(obj: models.Model, changes: dict[str, Any]) -> None:
    """Mirror on the instance what an UPDATE just wrote."""
    for field, value in changes.items():
        setattr(obj, field, value)


class Run(models.Model):
    id = models.CharField(max_length=26, primary_key=True, default=new_run_id, editable=False)
    # Every index is paid for on each trigger's insert: job_id is served by run_job_newest.
    job = models.ForeignKey(Job, related_name="runs", on_delete=models.PROTECT, db_index=False)
    state = models.CharField(max_length=10, choices=RunState.choices, default=RunState.QUEUED)
    triggered_by = models.CharField(max_length=200)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    queued_at = models.DateTimeField(default=timezone.now)
    # Null while the run waits for a free slot under the job's max_concurrent_runs.
    dispatched_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    log_level = models.CharField(max_length=10, default=LogLevel.INFO)
    parameters = models.JSONField(default=dict)
    # A link into history, not a dependency: no database constraint. PostgreSQL re-checks
    # a row's foreign keys at COMMIT when its transaction updates the row twice (a step's
    # end: the last line's seq, then the state), so a replay's end would wait for the
    # original's row, at the end of everything it holds (runs.locking). The ORM still sets
    # it to NULL when retention deletes the original.
    replay_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="replays", db_index=False,
        db_constraint=False,
    )  # fmt: skip
    scheduled_for = models.DateTimeField(null=True, blank=True)
    canceled_by = models.CharField(max_length=200, null=True, blank=True)
    last_seq = models.BigIntegerField(default=0)
    idempotency_key = models.CharField(max_length=200, null=True, blank=True)
    request_hash = models.CharField(max_length=64, blank=True, default="")

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["job", "-id"], name="run_job_newest"),
            models.Index(fields=["state", "-id"], name="run_state_newest"),
            # Slot accounting for max_concurrent_runs looks only at a job's active runs.
            models.Index(fields=["job"], condition=Q(state__in=sorted(RUN.active)), name="run_active_by_job"),
            # Retention walks finished runs oldest first.
            models.Index(fields=["finished_at"], name="run_finished_at"),
            # Purging a run clears replay_of in its replays. (A plain index: db_index on a
            # text column would add a LIKE index that no query uses.)
            models.Index(fields=["replay_of"], name="run_replay_of"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["job", "scheduled_for"],
                condition=Q(scheduled_for__isnull=False),
                name="run_one_per_cron_fire",
            ),
            models.UniqueConstraint(
                fields=["job", "idempotency_key"],
                condition=Q(idempotency_key__isnull=False),
                name="run_idempotency_key_unique",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.job_id}/{self.id}"

    @property
    def is_terminal(self) -> bool:
        return self.state in RUN.terminal

    @property
    def duration_s(self) -> float | None:
        return _duration(self.started_at, self.finished_at)

    def mark_running(self, *, at: Any = None) -> bool:
        return _move(self, RUN, RunState.RUNNING, started_at=at or timezone.now())

    def finish(self, state: RunState, *, canceled_by: str | None = None) -> bool:
        assert state in RUN.terminal, state
        changes: dict[str, Any] = {"finished_at": timezone.now()}
        if canceled_by:
            changes["canceled_by"] = canceled_by
        return _move(self, RUN, state, **changes)

    def ending_after_cancel(self) -> RunState:
        """How this run, whose cancel was accepted, ends (`cancel_verdict` of its steps). Read it
        under the run's row lock (run_cancel, StepRun.finish_and_read_run hold it), so no step moves meanwhile."""
        return cancel_verdict((step.state, step.reason) for step in self.steps.all())


class StepRun(models.Model):
    # run_id is served by steprun_position_unique (run, position).
    run = models.ForeignKey(Run, related_name="steps", on_delete=models.CASCADE, db_index=False)
    position = models.PositiveIntegerField()
    name = models.CharField(max_length=100)
    type = models.CharField(max_length=30)
    queue = models.CharField(max_length=100, default="default")
    # Copied from the step definition at trigger, so editing the job never changes a run.
    retries = models.PositiveIntegerField(default=0)
    retry_delay_s = models.FloatField(default=0)
    timeout_s = models.FloatField(null=True, blank=True)
    state = models.CharField(max_length=10, choices=StepState.choices, default=StepState.PENDING)
    reason = models.CharField(max_length=200, blank=True, default="")
    attempts = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    traceback = models.TextField(blank=True, default="")
    worker = models.CharField(max_length=200, blank=True, default="")
    task_id = models.CharField(max_length=64, blank=True, default="")

    class Meta:
        ordering = ["run", "position"]
        constraints = [models.UniqueConstraint(fields=["run", "position"], name="steprun_position_unique")]
        indexes = [
            models.Index(
                fields=["heartbeat_at"], condition=Q(state=StepState.RUNNING), name="steprun_running_heartbeat"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.run_id}/{self.name}"

    @property
    def is_terminal(self) -> bool:
        return self.state in STEP.terminal

    @property
    def duration_s(self) -> float | None:
        return _duration(self.started_at, self.finished_at)

    def claim(self, *, worker: str, run: Run | None = None) -> bool:
        """PENDING → RUNNING, only while the run is still active: at most one claimer wins.

        On success the instance holds the step as claimed and its run, `self.run`: `run`,
        when the caller has it (a worker keeps the runs whose steps it executes; their
        snapshot never changes), else read in the same round trip after the claim, with the
        run's steps too when the claim starts the run (`run.steps.all()`, for the run frame's
        summary). `StepRun(pk=id).claim(...)` is all a worker needs. This is the hottest
        write in nomaflow, and Django has no UPDATE … RETURNING, hence the SQL (PostgreSQL
        and SQLite ≥ 3.35 both speak it)."""
        claim = (_CLAIM_SQL, [timezone.now(), worker, self.pk])
        if run is None:
            claimed, run_rows, step_rows = execute_together(
                [claim, (_CLAIMED_RUN_SQL, [self.pk]), (_CLAIMED_STEPS_SQL, [self.pk, self.pk])]
            )
        else:
            [claimed] = execute_together([claim])
        if not claimed:
            return False
        [mine] = instances(StepRun, claimed)
        _apply(self, {field.attname: getattr(mine, field.attname) for field in StepRun._meta.concrete_fields})
        self._state.adding, self._state.db = False, mine._state.db
        if run is None:
            run = instances(Run, run_rows)[0]
            if step_rows:
                prefetched(run, "steps", instances(StepRun, step_rows))
        elif run.pk != self.run_id:  # a message naming another run: the claim's is the one
            run = Run.objects.get(pk=self.run_id)
        self.run = run
        return True

    def finish(
        self, state: StepState, *, reason: str = "", error: str = "", traceback: str = "", at: Any = None
    ) -> bool:
        """Move the step to `state` (terminal, runs.transitions); False if it had already ended
        (or cannot move there: a step only succeeds once it ran)."""
        ending = _step_ending(state, reason, error, traceback, at)
        with connection.cursor() as cursor:
            cursor.execute(_FINISH_SQL[state], [*ending.values(), self.pk])
            finished = cursor.fetchone() is not None
        if finished:
            _apply(self, ending)
        return finished

    def finish_and_read_run(
        self, state: StepState, *, reason: str = "", error: str = "", traceback: str = "", at: Any = None
    ) -> StepEnd | None:
        """A step's end, on every step's path: lock the run's row (ordering the end with
        run_cancel) reading it, its job's notification settings and whether a step of it is
        still pending, then `finish` the step. On PostgreSQL both statements go in one round
        trip, each with its own snapshot, the finish after the lock. None if the step had
        already ended (nothing changed).

        After waiting for the lock, PostgreSQL re-reads the locked row (state, canceled_by)
        but not the EXISTS, which keeps the statement's first snapshot. That is safe
        because the only other holder that changes anything is run_cancel, and once
        canceled_by is set the ending is read from the steps afresh (Run.ending_after_cancel,
        a statement of its own under the lock) and has_pending_steps is not looked at. (SQLite
        needs no FOR UPDATE: nomaflow's transactions there begin IMMEDIATE, holding the write
        lock.)"""
        ending = _step_ending(state, reason, error, traceback, at)
        lock = f" FOR UPDATE OF {_RUN_TABLE}" if connection.features.has_select_for_update_of else ""
        read, finished = execute_together(
            [(_AT_STEP_END_SQL + lock, [self.run_id]), (_FINISH_SQL[state], [*ending.values(), self.pk])]
        )
        if not finished:
            return None
        _apply(self, ending)
        [row] = read
        run = instances(Run, [row[:_RUN_COLUMNS_AT_END]], without=_NOT_READ_AT_END["run"])[0]
        run.job = instances(Job, [row[_RUN_COLUMNS_AT_END:-1]], without=_NOT_READ_AT_END["job"])[0]
        return StepEnd(run, bool(row[-1]))


class StepEnd(NamedTuple):
    """What a step's end read: the run (locked; its snapshot `parameters` deferred; `run.job`
    holds its notification settings) and whether a step of it is still pending."""

    run: Run
    has_pending_steps: bool


def _step_ending(state: StepState, reason: str, error: str, traceback: str, at: Any) -> dict[str, Any]:
    """The columns a step's finish sets, in statements.FINISH_SETS' order."""
    assert state in STEP.terminal, state
    finished_at = at or timezone.now()
    ending = {"state": state, "reason": reason, "error": error, "traceback": traceback, "finished_at": finished_at}
    assert tuple(ending) == statements.FINISH_SETS
    return ending


class LogLine(models.Model):
    run = models.ForeignKey(Run, related_name="log_lines", on_delete=models.CASCADE, db_index=False)
    seq = models.BigIntegerField()
    ts = models.DateTimeField()
    level = models.CharField(max_length=10, choices=LogLevel.choices)
    step = models.CharField(max_length=100, blank=True, default="")
    message = models.TextField()

    class Meta:
        ordering = ["run", "seq"]
        constraints = [models.UniqueConstraint(fields=["run", "seq"], name="logline_run_seq_unique")]

    def __str__(self) -> str:
        return f"{self.run_id}#{self.seq}"


def _duration(start: Any, end: Any) -> float | None:
    if start is None or end is None:
        return None
    return round((end - start).total_seconds(), 3)


NOTIFY_STATES = (RunState.FAILED, RunState.CANCELED, RunState.SUCCEEDED)


def _default_notify_on() -> list[str]:
    return [RunState.FAILED.value]


def _default_cancel_grace_s() -> float:
    return float(settings.NOMAFLOW_CANCEL_GRACE_S)


def _default_heartbeat_timeout_s() -> float:
    return float(settings.NOMAFLOW_HEARTBEAT_TIMEOUT_S)


def validate_notify_on(value: Any) -> None:
    if not isinstance(value, list) or any(item not in NOTIFY_STATES for item in value):
        raise ValidationError(f'notify_on: give a list of {", ".join(NOTIFY_STATES)}, e.g. ["FAILED"]; got {value!r}')


def validate_emails(value: Any) -> None:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValidationError(f'notify_emails: give a list of addresses, e.g. ["ops@example.com"]; got {value!r}')
    for item in value:
        try:
            validate_email(item)
        except ValidationError:
            raise ValidationError(f'notify_emails: "{item}" is not an email address') from None


class SiteSettings(models.Model):
    """The one row (pk=1) of settings an admin edits at run time.

    The NOMAFLOW_* environment values only seed it when the row is first created;
    from then on this row is what the reaper, the workers and notifications read.
    """

    retention_days = models.PositiveIntegerField(
        default=90, validators=[MinValueValidator(1)], help_text="runs finished longer ago are deleted by housekeeping"
    )
    cancel_grace_s = models.FloatField(
        default=_default_cancel_grace_s,
        validators=[MinValueValidator(0.1)],
        help_text="how long a canceled or timed-out step may take to stop before its worker process is ended",
    )
    heartbeat_timeout_s = models.FloatField(
        default=_default_heartbeat_timeout_s,
        validators=[MinValueValidator(1)],
        help_text="a running step silent for this long is failed as `worker lost`",
    )
    notify_on = models.JSONField(
        default=_default_notify_on, blank=True, validators=[validate_notify_on], help_text='e.g. ["FAILED", "CANCELED"]'
    )
    notify_emails = models.JSONField(default=list, blank=True, validators=[validate_emails])
    notify_webhook = models.URLField(blank=True, default="", help_text="Slack-compatible incoming webhook URL")
    updated_at = models.DateTimeField(auto_now=True)

    CACHE_S = 5.0  # workers read this per step; a change reaches them within a few seconds

    class Meta:
        verbose_name = verbose_name_plural = "settings"

    def __str__(self) -> str:
        return "nomaflow settings"

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.pk = 1
        super().save(*args, **kwargs)
        SiteSettings.forget()

    @classmethod
    def current(cls) -> SiteSettings:
        """The settings row, created with its defaults on first use; cached per process for CACHE_S."""
        cached = _site_settings_cache.get("row")
        if cached is not None and time.monotonic() - cached[0] < cls.CACHE_S:
            return cached[1]
        row, _ = cls.objects.get_or_create(pk=1)
        _site_settings_cache["row"] = (time.monotonic(), row)
        return row

    @classmethod
    def forget(cls) -> None:
        """Drop this process's cached copy (after a change, or between tests)."""
        _site_settings_cache.clear()


_site_settings_cache: dict[str, tuple[float, SiteSettings]] = {}

# The step hot path's SQL, built from these models and the state machine (runs.statements).
_CLAIM_SQL = statements.claim_sql(StepRun, Run)
_CLAIMED_RUN_SQL, _CLAIMED_STEPS_SQL = statements.of_claimed_step_sql(Run, StepRun)
_FINISH_SQL = statements.finish_sql(StepRun)
# A step's end reads of the job only what a run's end looks at (runs.notifications.resolve_targets).
_JOB_READ_AT_END = {"id", "notify_on", "notify_emails", "notify_webhook"}
_NOT_READ_AT_END = {
    "run": ("parameters",),
    "job": tuple(field.name for field in Job._meta.concrete_fields if field.name not in _JOB_READ_AT_END),
}
_AT_STEP_END_SQL = statements.at_step_end_sql(Run, StepRun, Job, without=_NOT_READ_AT_END)
_RUN_COLUMNS_AT_END = len(selected_fields(Run, _NOT_READ_AT_END["run"]))  # then the job's, then pending
_RUN_TABLE = connection.ops.quote_name(Run._meta.db_table)

"""The hand-written SQL of a step's hot path (its claim, its end), built once from the
models' metadata and the state machine (runs.transitions), so that a renamed column or a
new state cannot leave a stale literal behind. Django has no UPDATE … RETURNING, and
these run once per step on every worker: PostgreSQL and SQLite ≥ 3.35 both speak them.
"""

from __future__ import annotations

from django.db import connection, models
from django.db.models.functions import Now
from django.db.models.sql import Query

from .choices import RunState, StepState
from .roundtrips import selected_fields
from .transitions import RUN, STEP, SqlNames, sql_states

# What a step's end sets, in this order (StepRun.finish).
FINISH_SETS = ("state", "reason", "error", "traceback", "finished_at")


def claim_sql(step_run: type[models.Model], run: type[models.Model]) -> str:
    """PENDING → RUNNING while the run is active; parameters: started_at, worker, id. The
    first heartbeat is the database's clock, as every later one and the reaper's cutoff are:
    a worker host whose clock is behind is not taken for lost."""
    s, r = SqlNames(step_run), SqlNames(run)
    return f"""
        UPDATE {s.table}
        SET {s.state} = '{StepState.RUNNING}', {s.started_at} = %s, {s.heartbeat_at} = {database_now(step_run)},
            {s.worker} = %s,
            {s.attempts} = 1
        WHERE {s.id} = %s AND {s.state} IN ({sql_states(STEP.sources(StepState.RUNNING))})
          AND EXISTS (SELECT 1 FROM {r.table} WHERE {r.col("id")} = {s.col("run")} AND {r.col("state")} IN ({
        sql_states(RUN.active)
    }))
        RETURNING {returning(step_run)}
    """


def database_now(model: type[models.Model]) -> str:
    """Django's Now() as SQL for this connection's database (STATEMENT_TIMESTAMP() on PostgreSQL)."""
    sql, params = Query(model).get_compiler(connection=connection).compile(Now())
    assert not params, params
    return str(sql)


def finish_sql(step_run: type[models.Model]) -> dict[str, str]:
    """For each terminal state, the guarded move to it; parameters: FINISH_SETS, then id.
    Returns the id when the step moved."""
    s = SqlNames(step_run)
    sets = ", ".join(f"{getattr(s, field)} = %s" for field in FINISH_SETS)
    return {
        target: f"UPDATE {s.table} SET {sets} WHERE {s.id} = %s AND {s.state} IN ({sql_states(STEP.sources(target))}) "
        f"RETURNING {s.id}"
        for target in STEP.terminal
    }


def select_sql(model: type[models.Model], where: str, *, without: tuple[str, ...] = ()) -> str:
    """SELECT the columns of `model`'s concrete fields, in their order (roundtrips.instances
    reads them so), but those of `without`, WHERE `where`."""
    names = SqlNames(model)
    columns = ", ".join(names.col(field.name) for field in selected_fields(model, without))
    return f"SELECT {columns} FROM {names.table} WHERE {where}"


def returning(model: type[models.Model]) -> str:
    """The columns of `model`'s concrete fields, in roundtrips.instances' order, for RETURNING."""
    names = SqlNames(model)
    return ", ".join(getattr(names, field.name) for field in selected_fields(model))


def of_claimed_step_sql(run: type[models.Model], step_run: type[models.Model]) -> tuple[str, str]:
    """What a worker reads with its claim: the step's run, then the run's steps in order
    when the claim starts the run (the run frame's summary; none for the later steps of a
    long chain). Parameters of each: the step's id."""
    r, s = SqlNames(run), SqlNames(step_run)
    run_of_step = f"(SELECT {s.run} FROM {s.table} WHERE {s.id} = %s)"
    starting = f"{r.col('id')} = {run_of_step} AND {r.col('state')} IN ({sql_states(RUN.sources(RunState.RUNNING))})"
    return (
        select_sql(run, f"{r.col('id')} = {run_of_step}"),
        select_sql(
            step_run,
            f"{s.col('run')} = {run_of_step} AND EXISTS (SELECT 1 FROM {r.table} WHERE {starting}) "
            f"ORDER BY {s.col('position')}",
        ),
    )


def at_step_end_sql(
    run: type[models.Model],
    step_run: type[models.Model],
    job: type[models.Model],
    *,
    without: dict[str, tuple[str, ...]],
) -> str:
    """What a step's end reads, in one row: its run's columns and its job's, but those of the
    fields `without` names for each (a run's snapshot: only a step's start needs it; a job's
    definition: a run's end looks only at its notification settings), then whether a step
    of the run is still pending. Parameter: the run's id."""
    r, s, j = SqlNames(run), SqlNames(step_run), SqlNames(job)
    columns = [
        *(r.col(field.name) for field in selected_fields(run, without["run"])),
        *(j.col(field.name) for field in selected_fields(job, without["job"])),
    ]
    pending = f"{s.col('run')} = {r.col('id')} AND {s.col('state')} = '{StepState.PENDING}'"
    return f"""
        SELECT {", ".join(columns)}, EXISTS (SELECT 1 FROM {s.table} WHERE {pending})
        FROM {r.table} JOIN {j.table} ON {j.col("id")} = {r.col("job")}
        WHERE {r.col("id")} = %s
    """

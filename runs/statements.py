"""The hand-written SQL of a step's hot path (its claim, its end), built once from the
models' metadata and the state machine (runs.transitions), so that a renamed column or a
new state cannot leave a stale literal behind. Django has no UPDATE … RETURNING, and
these run once per step on every worker: PostgreSQL and SQLite ≥ 3.35 both speak them.
"""

from __future__ import annotations

from django.db import connection, models
from django.db.models.functions import Now
from django.db.models.sql import Query

from .choices import StepState
from .transitions import RUN, STEP, SqlNames, sql_states

# What a claim reads back: all a worker needs to run the step, from `StepRun(pk=id)`.
CLAIM_RETURNS = ("run", "position", "name", "type", "queue", "retries", "retry_delay_s", "timeout_s", "task_id")
# What a step's end sets, in this order (StepRun.finish).
FINISH_SETS = ("state", "reason", "error", "traceback", "finished_at")


def claim_sql(step_run: type[models.Model], run: type[models.Model]) -> str:
    """PENDING → RUNNING while the run is active; parameters: started_at, worker, id. The
    first heartbeat is the database's clock, as every later one and the reaper's cutoff are:
    a worker host whose clock is behind is not taken for lost."""
    s, r = SqlNames(step_run), SqlNames(run)
    returns = ", ".join(getattr(s, field) for field in CLAIM_RETURNS)
    return f"""
        UPDATE {s.table}
        SET {s.state} = '{StepState.RUNNING}', {s.started_at} = %s, {s.heartbeat_at} = {database_now(step_run)},
            {s.worker} = %s,
            {s.attempts} = 1
        WHERE {s.id} = %s AND {s.state} IN ({sql_states(STEP.sources(StepState.RUNNING))})
          AND EXISTS (SELECT 1 FROM {r.table} WHERE {r.col("id")} = {s.col("run")} AND {r.col("state")} IN ({
        sql_states(RUN.active)
    }))
        RETURNING {returns}
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


def run_at_step_end_sql(run: type[models.Model], step_run: type[models.Model]) -> str:
    """The run's state, canceled_by and whether a step of it is still pending; parameter: the run's id."""
    r, s = SqlNames(run), SqlNames(step_run)
    pending = f"{s.col('state')} = '{StepState.PENDING}'"
    return f"""
        SELECT {r.state}, {r.canceled_by},
          EXISTS (SELECT 1 FROM {s.table} WHERE {s.col("run")} = {r.col("id")} AND {pending})
        FROM {r.table} WHERE {r.id} = %s
    """

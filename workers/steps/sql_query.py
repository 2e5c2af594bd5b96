"""`sql_query`: run one or more statements in one transaction on a SQL connector.

Values come in through `parameters` and are bound by the driver, never pasted into
the SQL (PostgreSQL: `%(name)s`; SQLite: `:name`): a `{{ params.x }}` in `sql` is
refused (SQL_TEXT). On cancel or timeout the server is told to cancel, the transaction
rolls back, and the connection is closed. SQLite files are confined (sqlite_guard.py).
"""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg

from core import sqlite_guard
from core.errors import StepConfigError
from jobs.templating import ParamRule

from .base import (
    ConnectorConfig,
    Context,
    StepType,
    expect,
    reject_unknown,
    require,
    run_in_thread,
)

DEBUG_ROWS = 20


def bind_instead(name: str) -> str:
    """The fix for a param pasted into SQL: bind it through `parameters`."""
    return (
        f"must not contain {{{{ params.{name} }}}}: it would be pasted into SQL; bind it instead: "
        f'"parameters": {{"{name}": "{{{{ params.{name} }}}}"}} and write %({name})s (postgres) or :{name} (sqlite)'
    )


SQL_TEXT = ParamRule(refuse=bind_instead)  # the rule for every field that holds SQL


class SqlQueryStep(StepType):
    type_name = "sql_query"
    connector_fields = {"connector": ("postgres", "sqlite")}
    param_rules = {"sql": SQL_TEXT}

    def validate(self, op_kwargs: dict[str, Any]) -> None:
        require(op_kwargs, "connector", str, "the name of a postgres or sqlite connector")
        statements(op_kwargs)
        expect(op_kwargs, "parameters", (dict, list), "an object (named) or a list (positional)")
        reject_unknown(op_kwargs, self.type_name, ("connector", "sql", "parameters"))

    def summary(self, op_kwargs: dict[str, Any]) -> str:
        return f"connector={op_kwargs.get('connector', '?')}"

    async def execute(self, ctx: Context) -> None:
        connector = ctx.connector(ctx.op_kwargs["connector"])
        parameters = ctx.op_kwargs.get("parameters")
        if connector.kind == "postgres":
            await _run_postgres(ctx, connector, statements(ctx.op_kwargs), parameters)
        else:
            await _run_sqlite(ctx, connector, statements(ctx.op_kwargs), parameters)


def statements(op_kwargs: dict[str, Any]) -> list[str]:
    sql = require(op_kwargs, "sql", (str, list), "an SQL string or a list of them")
    items = [sql] if isinstance(sql, str) else sql
    if not items or not all(isinstance(item, str) and item.strip() for item in items):
        raise StepConfigError("sql", "must be a non-empty SQL string or a list of non-empty SQL strings")
    return items


def _report(ctx: Context, rowcount: int, rows: list[Any] | None) -> None:
    if rows is None:
        ctx.log.info(f"{max(rowcount, 0)} rows affected")
        return
    ctx.log.info(f"{len(rows)} rows returned")
    for row in rows[:DEBUG_ROWS]:
        ctx.log.debug(f"row: {tuple(row)!r}")


async def _run_postgres(ctx: Context, connector: ConnectorConfig, sqls: list[str], parameters: Any) -> None:
    conn = await psycopg.AsyncConnection.connect(connector.url, application_name=f"nomaflow {ctx.run_id} {ctx.step}")
    try:
        async with conn.cursor() as cur:
            for sql in sqls:
                ctx.log.debug(f"sql: {sql}")
                await cur.execute(sql, parameters)
                _report(ctx, cur.rowcount, await cur.fetchall() if cur.description else None)
        await conn.commit()
    except asyncio.CancelledError:
        # Stop the statement on the server; closing below rolls the transaction back.
        await conn.cancel_safe(timeout=2)
        raise
    finally:
        await conn.close()


async def _run_sqlite(ctx: Context, connector: ConnectorConfig, sqls: list[str], parameters: Any) -> None:
    conn = sqlite_guard.connect(connector, timeout=30, check_same_thread=False)

    def run_all() -> None:
        try:
            with conn:  # one transaction: commit on success, rollback on error
                for sql in sqls:
                    ctx.log.debug(f"sql: {sql}")
                    cur = conn.execute(sql, parameters or ())
                    _report(ctx, cur.rowcount, cur.fetchall() if cur.description else None)
        finally:
            conn.close()  # in the thread that uses it, even when interrupted

    # On cancel the running statement is interrupted, so `with conn` rolls back.
    await run_in_thread(run_all, on_cancel=conn.interrupt)

"""`sql_copy`: copy the rows of a source query into a target table.

Postgres → Postgres streams with COPY (`COPY (query) TO STDOUT` piped into `COPY table
FROM STDIN`): binary when the source and target column types are the same, text
otherwise, so that the target server converts. Other pairs read the source in batches
and write them with COPY (PostgreSQL target) or `executemany` (SQLite target). Nothing
holds more than one batch in memory.

Modes, each in one target transaction: `overwrite` deletes the target's rows then
inserts; `append` inserts; `merge` upserts on `key` (PostgreSQL: COPY into a temporary
table, then `INSERT … ON CONFLICT (key) DO UPDATE`; SQLite: `INSERT … ON CONFLICT`).

`overwrite` uses DELETE rather than TRUNCATE. TRUNCATE takes an ACCESS EXCLUSIVE lock,
so every reader would queue behind the whole copy, and it is not MVCC-safe: a reader
whose snapshot predates it sees an empty table. With DELETE in the same transaction as
the inserts, readers keep seeing the old rows until the commit, then the new ones, and
are never blocked. The price is dead tuples for autovacuum to reclaim.

Identifiers (table, columns, key) must match a strict pattern and are quoted
(psycopg.sql.Identifier on PostgreSQL, double quotes on SQLite); values come in through
`parameters`, bound by the driver, and a `{{ params.x }}` in `query` is refused
(sql_query.SQL_TEXT). The source connection is read-only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from core.errors import StepConfigError

from .base import Context, StepType, expect, reject_unknown, require
from .sql_copy_io import IDENTIFIER, CopyPlan, copy_rows, run_interruptible
from .sql_query import SQL_TEXT

MODES = ("overwrite", "append", "merge")
OPTIONS = ("source", "query", "parameters", "target", "table", "mode", "key", "batch_size", "columns")
DEFAULT_BATCH = 10_000


class SqlCopyStep(StepType):
    """Copy a source query's rows into a target table (overwrite, append or merge)."""

    type_name = "sql_copy"
    connector_fields = {"source": ("postgres", "sqlite"), "target": ("postgres", "sqlite")}
    param_rules = {"query": SQL_TEXT}

    def validate(self, op_kwargs: dict[str, Any]) -> None:
        plan(op_kwargs)

    def summary(self, op_kwargs: dict[str, Any]) -> str:
        return f"mode={op_kwargs.get('mode', '?')}"

    async def execute(self, ctx: Context) -> None:
        copy_plan = plan(ctx.op_kwargs)
        source = ctx.connector(ctx.op_kwargs["source"])
        target = ctx.connector(ctx.op_kwargs["target"])
        ctx.log.info(f"{source.name} ({source.kind}) → {target.name} ({target.kind}) table {copy_plan.table_name}")
        interrupts: list[Callable[[], None]] = []
        await run_interruptible(interrupts, copy_rows, ctx, copy_plan, source, target, interrupts)


def plan(op_kwargs: dict[str, Any]) -> CopyPlan:
    """Check op_kwargs; raise StepConfigError naming the first bad field."""
    reject_unknown(op_kwargs, "sql_copy", OPTIONS)
    require(op_kwargs, "source", str, "the name of a postgres or sqlite connector")
    require(op_kwargs, "target", str, "the name of a postgres or sqlite connector")
    query = require(op_kwargs, "query", str, "an SQL query whose rows are copied").strip().rstrip(";").strip()
    if not query:
        raise StepConfigError("query", "must be a non-empty SQL query")
    expect(op_kwargs, "parameters", (dict, list), "an object (named) or a list (positional)")
    mode = require(op_kwargs, "mode", str, "overwrite, append or merge")
    if mode not in MODES:
        raise StepConfigError("mode", f'"{mode:.40}" is not a mode; use overwrite, append or merge')
    columns = identifiers(op_kwargs, "columns") if op_kwargs.get("columns") is not None else None
    return CopyPlan(
        query=query,
        parameters=op_kwargs.get("parameters"),
        table=_table(require(op_kwargs, "table", str, 'the target table, e.g. "orders" or "sales.orders"')),
        mode=mode,
        key=_key(op_kwargs, mode, columns),
        columns=columns,
        batch_size=_batch_size(op_kwargs),
    )


def _table(value: str) -> list[str]:
    parts = value.split(".")
    if len(parts) > 2 or not all(IDENTIFIER.match(part) for part in parts):
        raise StepConfigError(
            "table", f'"{value:.80}" is not a table name (letters, digits and _, optionally "schema.table")'
        )
    return parts


def identifiers(op_kwargs: dict[str, Any], key: str) -> list[str]:
    value = expect(op_kwargs, key, (str, list), "a column name or a list of column names")
    names = [value] if isinstance(value, str) else value
    if not names:
        raise StepConfigError(key, "must name at least one column")
    for name in names:
        if not isinstance(name, str) or not IDENTIFIER.match(name):
            raise StepConfigError(key, f"{name!r:.80} is not a column name (letters, digits and _)")
    if len(set(names)) != len(names):
        raise StepConfigError(key, "names a column twice")
    return names


def _key(op_kwargs: dict[str, Any], mode: str, columns: list[str] | None) -> list[str]:
    if mode != "merge":
        if op_kwargs.get("key") is not None:
            raise StepConfigError("key", f"is only for mode merge, not {mode}")
        return []
    if op_kwargs.get("key") is None:
        raise StepConfigError("key", "is required for mode merge (the column or columns to upsert on)")
    key = identifiers(op_kwargs, "key")
    missing = [name for name in key if columns is not None and name not in columns]
    if missing:
        raise StepConfigError("key", f'column "{missing[0]}" is not among columns ({", ".join(columns or [])})')
    return key


def _batch_size(op_kwargs: dict[str, Any]) -> int:
    size = expect(op_kwargs, "batch_size", int, "a whole number of rows")
    if size is None:
        return DEFAULT_BATCH
    if not 1 <= size <= 1_000_000:
        raise StepConfigError("batch_size", f"must be between 1 and 1000000, not {size}")
    return size

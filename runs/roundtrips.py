"""Several statements in one round trip to the database.

A trigger writes a run, its step runs and an audit event; a step's end locks its run and
finishes the step; a trigger locks its job and reads it. As separate statements each
costs a wait on PostgreSQL, and on a busy host each wait (waking the server process,
then this one) is most of what these paths cost beside a bare Celery send
(bench/dispatch.py). PostgreSQL accepts several statements in one simple-protocol
message, each with its own snapshot, and psycopg's client-side cursor (Django's default:
it binds the parameters itself) sends them that way. (With Django's
`server_side_binding` option on, psycopg would refuse several statements at once: keep it
off.) Other databases get the statements one by one.

`insert_together` writes plain `INSERT … VALUES (…), (…) RETURNING id`, each value
prepared by its field exactly as `bulk_create` prepares it (`pre_save`, then
`get_db_prep_save`); a batch holding an expression (a `db_default`, an `F()`) goes to
`bulk_create` itself. Their text depends only on the model and the number of rows, so it
is built once: Django's insert compiler, which builds it anew for every call, cost more
than the round trip it shares. Other databases get plain `bulk_create`.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, NamedTuple, TypeVar

from django.db import connection, models

M = TypeVar("M", bound=models.Model)


def insert_together(*batches: Sequence[models.Model]) -> None:
    """INSERT each batch (instances of one model) like `bulk_create`, in one round trip
    on PostgreSQL; database-generated primary keys are set on the instances."""
    batches = tuple(batch for batch in batches if batch)
    statements, together = [], []
    for batch in batches:
        shape = _shape(type(batch[0]))
        values = [field.pre_save(obj, True) for obj in batch for field in shape.fields]
        if connection.vendor != "postgresql" or any(hasattr(value, "resolve_expression") for value in values):
            # An expression (a db_default, an F() or a function) needs Django's insert compiler.
            type(batch[0])._default_manager.bulk_create(batch)
            continue
        params = [
            field.get_db_prep_save(value, connection)
            for value, field in zip(values, shape.fields * len(batch), strict=True)
        ]
        statements.append((shape.sql(len(batch)), params))
        together.append(batch)
    for batch, returned in zip(together, execute_together(statements) if statements else [], strict=True):
        _saved(batch, returned)


def instances(model: type[M], rows: Sequence[Sequence[Any]], *, without: tuple[str, ...] = ()) -> list[M]:
    """`rows` of `model`'s columns (statements.select_sql's, for the same `without`) as
    instances, each value converted as a queryset converts it (a JSONField's text,
    SQLite's datetimes); the fields of `without` are deferred."""
    attnames, converters = _reader(model, without)
    made = []
    for row in rows:
        values = list(row)
        for index, column, functions in converters:
            for convert in functions:
                values[index] = convert(values[index], column, connection)
        made.append(model.from_db(connection.alias, attnames, values))
    return made


def prefetched(obj: models.Model, related_name: str, related: list[M]) -> models.Model:
    """`obj` with `related` (all of its rows, in order, read by hand) as what
    `obj.<related_name>.all()` answers, stored as prefetch_related_objects stores them, so
    that reading them asks the database nothing more. A filtered query still asks it."""
    queryset = getattr(obj, related_name).all()
    queryset._result_cache, queryset._prefetch_done = related, True
    obj._prefetched_objects_cache = {**getattr(obj, "_prefetched_objects_cache", {}), related_name: queryset}  # type: ignore[attr-defined]
    return obj


def selected_fields(model: type[models.Model], without: tuple[str, ...] = ()) -> list[models.Field[Any, Any]]:
    """The fields a SELECT for `instances` reads, in its column order."""
    return [field for field in model._meta.concrete_fields if field.name not in without]


@functools.cache
def _reader(model: type[models.Model], without: tuple[str, ...]) -> tuple[list[str], list[tuple[int, Any, list[Any]]]]:
    """The attnames of the columns read, and for each column that needs them its converters
    (the backend's, then the field's: SQLCompiler.get_converters' order)."""
    fields = selected_fields(model, without)
    converters = []
    for index, field in enumerate(fields):
        column = field.get_col(model._meta.db_table)
        functions = [*connection.ops.get_db_converters(column), *column.get_db_converters(connection)]
        if functions:
            converters.append((index, column, functions))
    return [field.attname for field in fields], converters


def execute_together(statements: Sequence[tuple[str, Sequence[Any]]]) -> list[list[tuple[Any, ...]]]:
    """Run `statements` ((sql, params) pairs, in order) in one round trip on PostgreSQL,
    one by one elsewhere; the rows each returned (none for one without RETURNING)."""
    results: list[list[tuple[Any, ...]]] = []
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(";\n".join(sql for sql, _ in statements), [p for _, params in statements for p in params])
            for index in range(len(statements)):
                if index:
                    cursor.nextset()
                results.append(cursor.fetchall() if cursor.description else [])
        else:
            for sql, params in statements:
                cursor.execute(sql, params)
                results.append(cursor.fetchall() if cursor.description else [])
    return results


class _Shape(NamedTuple):
    """What an INSERT of one model looks like, whatever its rows hold."""

    fields: list[models.Field[Any, Any]]
    head: str  # INSERT INTO table (columns) VALUES
    row: str  # (%s, %s, …)
    tail: str  # RETURNING the generated primary key, if there is one

    def sql(self, rows: int) -> str:
        return f"{self.head} {', '.join([self.row] * rows)}{self.tail}"


@functools.cache
def _shape(model: type[models.Model]) -> _Shape:
    opts = model._meta
    pk_generated = getattr(opts.pk, "db_returning", False)  # an AutoField: the database numbers the rows
    fields = [f for f in opts.concrete_fields if not (f.primary_key and pk_generated) and not f.generated]
    quote = connection.ops.quote_name
    head = f"INSERT INTO {quote(opts.db_table)} ({', '.join(quote(f.column) for f in fields)}) VALUES"
    tail = f" RETURNING {quote(opts.pk.column)}" if pk_generated else ""
    return _Shape(fields, head, f"({', '.join(['%s'] * len(fields))})", tail)


def _saved(batch: Sequence[models.Model], returned: list[tuple[Any, ...]]) -> None:
    for index, obj in enumerate(batch):
        if returned:  # the generated primary keys, in row order
            obj.pk = returned[index][0]
        obj._state.adding = False
        obj._state.db = connection.alias

"""Rows of several models inserted in one round trip to the database.

A trigger writes a run, its step runs and an audit event. As three statements they
cost three waits on PostgreSQL, and on a busy host each wait (waking the server
process, then this one) is most of what a trigger costs beside a bare Celery send
(bench/dispatch.py). PostgreSQL accepts several statements in one simple-protocol
message, and psycopg's client-side cursor (Django's default: it binds the parameters
itself) sends them that way, so the three go out together. (With Django's
`server_side_binding` option on, psycopg would refuse several statements at once: keep it
off.) Other databases get plain `bulk_create`.

The statements are plain `INSERT … VALUES (…), (…) RETURNING id`, with each value
prepared by its field exactly as `bulk_create` prepares it (`pre_save`, then
`get_db_prep_save`). Their text depends only on the model and the number of rows, so it
is built once: Django's insert compiler, which builds it anew for every call, cost more
than the round trip it shares.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, NamedTuple

from django.db import connection, models


def insert_together(*batches: Sequence[models.Model]) -> None:
    """INSERT each batch (instances of one model) like `bulk_create`, in one round trip
    on PostgreSQL; database-generated primary keys are set on the instances."""
    batches = tuple(batch for batch in batches if batch)
    if connection.vendor != "postgresql":
        for batch in batches:
            type(batch[0])._default_manager.bulk_create(batch)
        return
    sql: list[str] = []
    params: list[Any] = []
    for batch in batches:
        shape = _shape(type(batch[0]))
        sql.append(shape.sql(len(batch)))
        params.extend(
            field.get_db_prep_save(field.pre_save(obj, True), connection) for obj in batch for field in shape.fields
        )
    with connection.cursor() as cursor:
        cursor.execute(";\n".join(sql), params)
        for index, batch in enumerate(batches):
            if index:
                cursor.nextset()
            _saved(batch, cursor.fetchall() if cursor.description else None)


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


def _saved(batch: Sequence[models.Model], returned: list[tuple[Any, ...]] | None) -> None:
    for index, obj in enumerate(batch):
        if returned is not None:
            obj.pk = returned[index][0]
        obj._state.adding = False
        obj._state.db = connection.alias

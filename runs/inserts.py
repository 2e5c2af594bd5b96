"""Rows of several models inserted in one round trip to the database.

A trigger writes a run, its step runs and an audit event. As three statements they
cost three waits on PostgreSQL, and on a busy host each wait (waking the server
process, then this one) is most of what a trigger costs beside a bare Celery send
(bench/dispatch.py). PostgreSQL accepts several statements in one simple-protocol
message, and psycopg's client-side cursor (Django's default: it binds the parameters
itself) sends them that way, so the three go out together. (With Django's
`server_side_binding` option on, psycopg would refuse several statements at once: keep it
off.) The SQL is Django's own, from the insert compiler behind `bulk_create`. Other
databases get plain `bulk_create`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db import connection, models
from django.db.models.sql import InsertQuery


def insert_together(*batches: Sequence[models.Model]) -> None:
    """INSERT each batch (instances of one model) like `bulk_create`, in one round trip
    on PostgreSQL; database-generated primary keys are set on the instances."""
    batches = tuple(batch for batch in batches if batch)
    if connection.vendor != "postgresql":
        for batch in batches:
            type(batch[0])._default_manager.bulk_create(batch)
        return
    statements = [_insert_sql(batch) for batch in batches]
    with connection.cursor() as cursor:
        cursor.execute(";\n".join(sql for sql, _ in statements), [p for _, params in statements for p in params])
        for index, batch in enumerate(batches):
            if index:
                cursor.nextset()
            _saved(batch, cursor.fetchall() if cursor.description else None)


def _insert_sql(batch: Sequence[models.Model]) -> tuple[str, tuple[Any, ...]]:
    opts = batch[0]._meta
    pk_generated = getattr(opts.pk, "db_returning", False)  # an AutoField: the database numbers the rows
    fields = [f for f in opts.concrete_fields if not (f.primary_key and pk_generated) and not f.generated]
    query = InsertQuery(type(batch[0]))
    query.insert_values(fields, list(batch))
    compiler = query.get_compiler(connection=connection)
    compiler.returning_fields = [opts.pk] if pk_generated else None
    [(sql, params)] = compiler.as_sql()
    return sql, tuple(params)


def _saved(batch: Sequence[models.Model], returned: list[tuple[Any, ...]] | None) -> None:
    for index, obj in enumerate(batch):
        if returned is not None:
            obj.pk = returned[index][0]
        obj._state.adding = False
        obj._state.db = connection.alias

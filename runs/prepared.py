"""Server-side prepared statements, on PostgreSQL, for a statement whose planning costs
more than running it.

Django sends each statement as text, its values bound by psycopg on the client, so
PostgreSQL parses and plans it anew every time. The job read under its lock (a join with
two subqueries, on every trigger) is such a statement: on a busy host, where a server
process that has been idle for a few milliseconds runs at half speed, it took 0.75-0.9
ms planned against 0.47-0.52 ms prepared (bench/dispatch.py). The worker's claim and
step-end lock gained too little to be worth it.

`prepared(name, sql)` PREPAREs `sql` once per database session and returns the EXECUTE
that runs it, for the caller's cursor. PREPARE outlives a rolled-back transaction, and a
reconnect is a new session, which prepares again. It needs session-level connections to
PostgreSQL: behind a PgBouncer in transaction pooling mode, point nomaflow at PostgreSQL
itself (or a session-mode pool).
"""

from __future__ import annotations

import re
import weakref
from typing import Any

from django.db import connection

_PLACEHOLDER = re.compile(r"%[s%]")  # a value, or an escaped percent sign
_prepared: weakref.WeakKeyDictionary[Any, set[str]] = weakref.WeakKeyDictionary()


def prepared(name: str, sql: str) -> str:
    """The statement that runs `sql` (with `%s` placeholders) on this connection: an
    EXECUTE of its prepared form on PostgreSQL, `sql` itself elsewhere."""
    if connection.vendor != "postgresql":
        return sql
    connection.ensure_connection()
    names = _prepared.setdefault(connection.connection, set())
    count = sql.count("%s")
    if name not in names:
        numbered = iter(range(1, count + 1))
        server_side = _PLACEHOLDER.sub(lambda m: "%" if m.group() == "%%" else f"${next(numbered)}", sql)
        with connection.cursor() as cursor:
            cursor.execute(f"PREPARE {name} AS {server_side}")  # no values: psycopg leaves it as it is
        names.add(name)
    return f"EXECUTE {name}({', '.join(['%s'] * count)})" if count else f"EXECUTE {name}"

"""Scratch PostgreSQL databases beside the test database, for steps that copy between two."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from django.conf import settings


def server_url(database: str) -> str:
    db = settings.DATABASES["default"]
    return f"postgresql://{db['USER']}@{db['HOST']}:{db['PORT']}/{database}"


@contextmanager
def scratch_database(suffix: str) -> Iterator[str]:
    """A fresh database named after the test database and `suffix`; its URL. Dropped after."""
    name = f"{settings.DATABASES['default']['NAME']}_{suffix}"
    with psycopg.connect(server_url("postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield server_url(name)
    finally:
        with psycopg.connect(server_url("postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def query(url: str, sql: str, params: object = None) -> list[tuple]:
    """Run one statement in its own committed transaction; its rows (or [])."""
    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(sql, params)  # type: ignore[arg-type]
        return cur.fetchall() if cur.description else []

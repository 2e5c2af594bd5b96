"""The SQL side of `ldap_sync`: one transaction, created table, overwrite or upsert batches.

Names were checked against a strict identifier pattern by the step's validate() and are
quoted on top (psycopg's Identifier for PostgreSQL). Every method but `interrupt()` runs
in the step's thread; `interrupt()` is called from the event loop to make a blocked
statement fail at once.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from core import sqlite_guard

from .base import ConnectorConfig

Row = tuple[str | None, ...]


@dataclass(frozen=True)
class Target:
    table: str  # name or schema.name
    columns: list[str]
    key: str
    mode: str  # overwrite | merge


@dataclass(frozen=True)
class Statements:
    create: str
    delete: str
    insert: str


def writer(connector: ConnectorConfig, target: Target) -> PostgresWriter | SqliteWriter:
    if connector.kind == "postgres":
        return PostgresWriter(connector.url, target)
    return SqliteWriter(connector, target)


def statements(target: Target, quote: Callable[[str], str], placeholder: str) -> Statements:
    table = ".".join(quote(part) for part in target.table.split("."))
    columns = [quote(column) for column in target.columns]
    key = quote(target.key)
    defs = ", ".join(f"{c} text PRIMARY KEY" if c == key else f"{c} text" for c in columns)
    insert = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join([placeholder] * len(columns))})"
    if target.mode == "merge":
        update = ", ".join(f"{c} = excluded.{c}" for c in columns if c != key)
        insert += f" ON CONFLICT ({key}) " + (f"DO UPDATE SET {update}" if update else "DO NOTHING")
    # DELETE, not TRUNCATE: readers keep seeing the old rows until the commit.
    return Statements(f"CREATE TABLE IF NOT EXISTS {table} ({defs})", f"DELETE FROM {table}", insert)


class PostgresWriter:
    def __init__(self, url: str, target: Target) -> None:
        self.url, self.mode = url, target.mode
        self.sql = statements(target, lambda name: sql.Identifier(name).as_string(None), "%s")
        self.conn: psycopg.Connection[Any] | None = None

    def open(self) -> None:
        self.conn = psycopg.connect(self.url, application_name="nomaflow ldap_sync")
        self.conn.execute(self.sql.create)  # psycopg opens the transaction here
        if self.mode == "overwrite":
            self.conn.execute(self.sql.delete)

    def write(self, rows: list[Row]) -> None:
        assert self.conn is not None
        with self.conn.cursor() as cur:
            cur.executemany(self.sql.insert, rows)

    def commit(self) -> None:
        assert self.conn is not None
        self.conn.commit()

    def rollback(self) -> None:
        if self.conn is not None:
            self.conn.rollback()

    def interrupt(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(Exception):
                self.conn.cancel_safe(timeout=2)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()


class SqliteWriter:
    def __init__(self, connector: ConnectorConfig, target: Target) -> None:
        self.connector, self.mode = connector, target.mode
        self.sql = statements(target, lambda name: f'"{name}"', "?")
        self.conn: sqlite3.Connection | None = None

    def open(self) -> None:
        # Autocommit mode with an explicit BEGIN: the CREATE, DELETE and inserts are one transaction.
        self.conn = sqlite_guard.connect(self.connector, timeout=30, isolation_level=None, check_same_thread=False)
        self.conn.execute("BEGIN IMMEDIATE")
        self.conn.execute(self.sql.create)
        if self.mode == "overwrite":
            self.conn.execute(self.sql.delete)

    def write(self, rows: list[Row]) -> None:
        assert self.conn is not None
        self.conn.executemany(self.sql.insert, rows)

    def commit(self) -> None:
        assert self.conn is not None
        self.conn.execute("COMMIT")

    def rollback(self) -> None:
        if self.conn is not None and self.conn.in_transaction:
            self.conn.execute("ROLLBACK")

    def interrupt(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(sqlite3.ProgrammingError):
                self.conn.interrupt()

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()

"""Where an sqlite step may open a file, and what its SQL may do once connected.

A connector's file must lie under NOMAFLOW_SQLITE_DIR (a relative path starts there;
symlinks and `..` are resolved first), and is never nomaflow's own sqlite database. The
rule is checked when a connector is saved and again on the worker, just before it
connects, since a symlink can change in between. Every step connection then gets an
authorizer that denies ATTACH and DETACH (which also stops `VACUUM INTO '<file>'`),
the `load_extension()` function, and the pragmas that move temporary files elsewhere,
so a step's SQL reaches its one file and nothing else the worker can write.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any, Protocol

from django.conf import settings

from .errors import StepConfigError

PREFIX = "sqlite:///"
DENIED_ACTIONS = frozenset({sqlite3.SQLITE_ATTACH, sqlite3.SQLITE_DETACH})
DENIED_FUNCTIONS = frozenset({"load_extension"})
DENIED_PRAGMAS = frozenset({"temp_store_directory", "data_store_directory"})  # they point SQLite at other dirs


class SqliteConnector(Protocol):
    """What the guard reads of a connector (workers.steps.base.ConnectorConfig, as a step sees it)."""

    @property
    def name(self) -> str: ...
    @property
    def url(self) -> str: ...


def sqlite_file(url: str) -> Path:
    """The resolved file of an sqlite connector url, or StepConfigError("url", …) saying why not."""
    if not url.startswith(PREFIX):
        raise StepConfigError("url", f'"{url}" must start with sqlite:/// (e.g. sqlite:///name.db)')
    root = Path(settings.NOMAFLOW_SQLITE_DIR).resolve()
    path = (root / url[len(PREFIX) :]).resolve()
    if path == root or not path.is_relative_to(root):
        raise StepConfigError(
            "url", f"{url} is not a file under NOMAFLOW_SQLITE_DIR ({root}); use sqlite:///name.db or a path under it"
        )
    if path in _own_database_files():
        raise StepConfigError("url", f"{url} is nomaflow's own database; give the connector a file of its own")
    return path


def connect(connector: SqliteConnector, *, read_only: bool = False, **options: Any) -> sqlite3.Connection:
    """A step's connection to `connector`'s file, confined and with the authorizer on."""
    try:
        path = sqlite_file(connector.url)
    except StepConfigError as exc:
        raise PermissionError(f'connector "{connector.name}": {exc.message}') from None
    if read_only:
        conn = sqlite3.connect(path.as_uri() + "?mode=ro", uri=True, **options)
    else:
        conn = sqlite3.connect(path, **options)
    if hasattr(conn, "enable_load_extension"):  # absent when Python was built without it
        conn.enable_load_extension(False)
    conn.set_authorizer(_authorize)
    return conn


def _authorize(action: int, arg1: str | None, arg2: str | None, database: str | None, source: str | None) -> int:
    # arg1 is a pragma's name; arg2 is a function's name (SQLite's authorizer contract).
    denied = (
        action in DENIED_ACTIONS
        or (action == sqlite3.SQLITE_FUNCTION and (arg2 or "").lower() in DENIED_FUNCTIONS)
        or (action == sqlite3.SQLITE_PRAGMA and (arg1 or "").lower() in DENIED_PRAGMAS)
    )
    return sqlite3.SQLITE_DENY if denied else sqlite3.SQLITE_OK


def _own_database_files() -> set[Path]:
    """nomaflow's own sqlite database and the files SQLite keeps beside it (none on PostgreSQL)."""
    default = settings.DATABASES["default"]
    if "sqlite" not in default["ENGINE"]:
        return set()
    name = Path(default["NAME"]).resolve()
    return {name, *(name.with_name(name.name + suffix) for suffix in ("-wal", "-shm", "-journal"))}


def url_errors(url: str) -> list[str]:
    """What is wrong with an sqlite connector url, for the connector's save; a url with
    `${NAME}` in it is only known on the worker, which checks it there."""
    if "${" in url:
        return []
    try:
        sqlite_file(url)
    except StepConfigError as exc:
        return [exc.message]
    return []

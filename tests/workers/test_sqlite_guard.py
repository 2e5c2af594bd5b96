"""sqlite confinement: connector files under NOMAFLOW_SQLITE_DIR only, and an authorizer on
every step connection (ATTACH, DETACH, VACUUM INTO, load_extension, temp-dir pragmas)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from pytest_django.fixtures import SettingsWrapper

from core.errors import StepConfigError
from core.sqlite_guard import connect, sqlite_file, url_errors
from workers.steps.base import ConnectorConfig


@pytest.fixture
def root(settings: SettingsWrapper, tmp_path: Path) -> Path:
    """NOMAFLOW_SQLITE_DIR for this test: an empty directory, with `outside` beside it."""
    (tmp_path / "lite").mkdir()
    (tmp_path / "outside").mkdir()
    settings.NOMAFLOW_SQLITE_DIR = tmp_path / "lite"
    return tmp_path / "lite"


def lite(url: str) -> ConnectorConfig:
    return ConnectorConfig(name="lite", kind="sqlite", url=url)


def test_relative_and_absolute_paths_under_the_directory_are_accepted(root: Path) -> None:
    assert sqlite_file("sqlite:///x.db") == root.resolve() / "x.db"
    assert sqlite_file("sqlite:///sub/../y.db") == root.resolve() / "y.db"
    assert sqlite_file(f"sqlite:///{root}/z.db") == root.resolve() / "z.db"
    assert url_errors("sqlite:///x.db") == []


@pytest.mark.parametrize("url", ["sqlite:////etc/x.db", "sqlite:///../x.db", "sqlite:///a/../../x.db", "sqlite:///"])
def test_paths_outside_the_directory_are_refused_naming_it(root: Path, url: str) -> None:
    assert url_errors(url) == [
        f"{url} is not a file under NOMAFLOW_SQLITE_DIR ({root.resolve()}); use sqlite:///name.db or a path under it"
    ]


def test_a_symlink_out_of_the_directory_is_refused(root: Path) -> None:
    (root / "escape.db").symlink_to(root.parent / "outside" / "real.db")
    (root / "door").symlink_to(root.parent / "outside", target_is_directory=True)

    assert "is not a file under NOMAFLOW_SQLITE_DIR" in url_errors("sqlite:///escape.db")[0]
    assert "is not a file under NOMAFLOW_SQLITE_DIR" in url_errors("sqlite:///door/x.db")[0]


def test_a_url_that_is_not_sqlite_is_refused() -> None:
    with pytest.raises(StepConfigError, match="must start with sqlite:///"):
        sqlite_file("sqlite://x.db")


def test_a_reference_is_left_to_the_worker(root: Path) -> None:
    assert url_errors("sqlite:///${NOMAFLOW_SECRET_DB}") == []


@pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")
@pytest.mark.parametrize("suffix", ["", "-wal", "-shm", "-journal"])
def test_nomaflow_own_sqlite_database_is_refused_though_it_is_in_the_directory(
    root: Path, settings: SettingsWrapper, suffix: str
) -> None:
    own = root / "nomaflow.sqlite3"
    settings.DATABASES = {
        "default": {**settings.DATABASES["default"], "ENGINE": "django.db.backends.sqlite3", "NAME": own}
    }

    assert url_errors(f"sqlite:///nomaflow.sqlite3{suffix}") == [
        f"sqlite:///nomaflow.sqlite3{suffix} is nomaflow's own database; give the connector a file of its own"
    ]


def test_the_worker_side_connect_refuses_a_path_outside(root: Path) -> None:
    target = root.parent / "outside" / "made.db"

    with pytest.raises(PermissionError, match='connector "lite": sqlite:///.* is not a file under NOMAFLOW_SQLITE_DIR'):
        connect(lite(f"sqlite:///{target}"))

    assert not target.exists()


@pytest.mark.parametrize(
    "sql",
    [
        "ATTACH DATABASE '{out}/attached.db' AS x",
        "VACUUM INTO '{out}/copy.db'",
        "SELECT load_extension('{out}/evil')",
        "PRAGMA temp_store_directory = '{out}'",
    ],
)
def test_statements_that_reach_other_files_are_denied(root: Path, sql: str) -> None:
    out = root.parent / "outside"
    conn = connect(lite("sqlite:///main.db"))
    try:
        conn.execute("CREATE TABLE t (n int)")
        with pytest.raises(sqlite3.DatabaseError, match="not authorized|authorization denied"):
            conn.execute(sql.format(out=out))
    finally:
        conn.close()

    assert list(out.iterdir()) == []


def test_detach_is_denied_and_ordinary_sql_and_pragmas_still_work(root: Path) -> None:
    conn = connect(lite("sqlite:///main.db"))
    try:
        with pytest.raises(sqlite3.DatabaseError, match="not authorized"):
            conn.execute("DETACH DATABASE main")
        conn.execute("CREATE TABLE t (n int)")
        conn.execute("INSERT INTO t VALUES (1)")
        assert [row[1] for row in conn.execute("PRAGMA table_info(t)")] == ["n"]
        assert conn.execute("PRAGMA journal_mode").fetchone() is not None
    finally:
        conn.close()


def test_a_read_only_connection_cannot_write(root: Path) -> None:
    with sqlite3.connect(root / "src.db") as setup:
        setup.execute("CREATE TABLE t (n int)")
    setup.close()
    conn = connect(lite("sqlite:///src.db"), read_only=True)
    try:
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            conn.execute("INSERT INTO t VALUES (1)")
    finally:
        conn.close()

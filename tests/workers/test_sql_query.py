"""sql_query on real PostgreSQL and SQLite, executed by a real worker."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from jobs.models import Connector
from runs.models import Run
from runs.services import run_trigger
from tests.factories import ConnectorFactory, make_job
from tests.processes import Process, wait_terminal
from tests.scratch_db import scratch_database

INJECTION = "x'); DROP TABLE canary; --"


@pytest.fixture
def pg(worker: Process) -> Iterator[Connector]:
    """A postgres connector to a scratch database with a `canary` table."""
    with scratch_database("scratch") as url:
        with psycopg.connect(url) as conn:
            conn.execute("CREATE TABLE canary (note text)")
            conn.execute("INSERT INTO canary VALUES ('alive')")
        yield ConnectorFactory(name="scratch", kind="postgres", url=url)


@pytest.fixture
def lite(worker: Process, tmp_path: Path) -> Connector:
    return ConnectorFactory(name="lite", kind="sqlite", url=f"sqlite:///{tmp_path / 'lite.db'}")


def run_sql(connector: Connector, sql: object, parameters: object = None, **overrides: object) -> Run:
    op_kwargs = {"connector": connector.name, "sql": sql}
    if parameters is not None:
        op_kwargs["parameters"] = parameters
    job = make_job({"type": "sql_query", "op_kwargs": op_kwargs}, params={"note": "hello"})
    return wait_terminal(run_trigger(job_id=job.id, overrides=overrides, triggered_by="api")[0])


def messages(run: Run) -> list[tuple[str, str]]:
    return list(run.log_lines.order_by("seq").values_list("level", "message"))


def test_postgres_statements_log_rows_affected_and_the_sql_at_debug(pg: Connector) -> None:
    run = run_sql(
        pg,
        [
            "CREATE TABLE t (n int)",
            "INSERT INTO t SELECT generate_series(1, 5)",
            "UPDATE t SET n = n + 1 WHERE n > %(min)s",
        ],
        {"min": 2},
        log_level="DEBUG",
    )

    assert run.state == "SUCCEEDED"
    lines = messages(run)
    assert ("INFO", "step F0001 · type=sql_query · connector=scratch") in lines
    assert ("DEBUG", "sql: INSERT INTO t SELECT generate_series(1, 5)") in lines
    assert ("INFO", "5 rows affected") in lines
    assert ("INFO", "3 rows affected") in lines


def test_postgres_select_logs_the_row_count(pg: Connector) -> None:
    run = run_sql(pg, "SELECT * FROM canary")

    assert ("INFO", "1 rows returned") in messages(run)
    assert not any(level == "DEBUG" for level, _ in messages(run))  # an INFO run keeps no DEBUG line


def test_postgres_params_are_bound_by_the_driver_so_injection_stays_data(pg: Connector) -> None:
    run = run_sql(pg, "INSERT INTO canary VALUES (%(note)s)", {"note": "{{ params.note }}"}, params={"note": INJECTION})

    assert run.state == "SUCCEEDED"
    with psycopg.connect(pg.url) as conn:
        assert conn.execute("SELECT note FROM canary ORDER BY note").fetchall() == [("alive",), (INJECTION,)]


def test_postgres_error_fails_the_step_and_rolls_back_the_whole_transaction(pg: Connector) -> None:
    run = run_sql(pg, ["INSERT INTO canary VALUES ('first')", "SELECT * FROM missing_table"])

    step = run.steps.get()
    assert (run.state, step.state) == ("FAILED", "FAILED")
    assert 'relation "missing_table" does not exist' in step.error
    with psycopg.connect(pg.url) as conn:
        assert conn.execute("SELECT count(*) FROM canary").fetchone() == (1,)


def test_sqlite_runs_in_one_transaction_with_bound_params(lite: Connector) -> None:
    run = run_sql(
        lite,
        ["CREATE TABLE t (note text)", "INSERT INTO t VALUES (:note)", "SELECT * FROM t"],
        {"note": "{{ params.note }}"},
        params={"note": INJECTION},
    )

    assert run.state == "SUCCEEDED", run.steps.get().error
    assert ("INFO", "1 rows affected") in messages(run)
    assert ("INFO", "1 rows returned") in messages(run)


def test_sqlite_error_rolls_back_earlier_statements(lite: Connector) -> None:
    run_sql(lite, "CREATE TABLE t (n int)")

    run = run_sql(lite, ["INSERT INTO t VALUES (1)", "INSERT INTO nowhere VALUES (1)"])

    assert run.state == "FAILED" and "no such table: nowhere" in run.steps.get().error
    check = run_sql(lite, "SELECT * FROM t")
    assert ("INFO", "0 rows returned") in messages(check)

"""sql_query on real PostgreSQL and SQLite, executed by a real worker; params never pasted
into SQL, sqlite files confined to NOMAFLOW_SQLITE_DIR, no ATTACH."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from django.contrib.auth.models import User

from core.errors import InputError
from jobs.models import Connector
from runs.models import Run
from runs.services import run_trigger
from tests.conftest import api_client
from tests.factories import ConnectorFactory, make_job
from tests.processes import Process, wait_terminal
from tests.scratch_db import scratch_database

INJECTION = "x'); DROP TABLE canary; --"
UNION = "x' UNION SELECT usename FROM pg_user --"


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


# --- hostile input ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sql", ["SELECT note FROM canary WHERE note = '{{ params.x }}'", "{{ params.x }}", ["select 1", "{{params.x}}"]]
)
def test_a_job_pasting_a_param_into_sql_cannot_be_triggered(db: None, sql: object) -> None:
    job = make_job({"type": "sql_query", "op_kwargs": {"connector": "scratch", "sql": sql}}, params={"x": "a"})

    with pytest.raises(InputError) as refused:
        run_trigger(job_id=job.id, overrides={"params": {"x": UNION}}, triggered_by="api")

    assert "would be pasted into SQL; bind it instead" in refused.value.errors["steps.F0001.op_kwargs.sql"][0]
    assert not Run.objects.exists()


def test_an_operators_union_param_is_bound_so_no_injected_row_comes_back(pg: Connector, operator: User) -> None:
    sql = "SELECT note FROM canary WHERE note = %(x)s"
    op_kwargs = {"connector": "scratch", "sql": sql, "parameters": {"x": "{{ params.x }}"}}
    job = make_job({"type": "sql_query", "op_kwargs": op_kwargs}, params={"x": "alive"})

    response = api_client(operator).post(
        f"/api/v1/jobs/{job.id}/runs/", {"params": {"x": UNION}, "log_level": "DEBUG"}, format="json"
    )

    assert response.status_code == 201, response.json()
    run = wait_terminal(Run.objects.get(pk=response.json()["id"]))
    assert run.state == "SUCCEEDED", run.steps.get().error
    assert ("INFO", "0 rows returned") in messages(run)
    assert not any(message.startswith("row: ") for _, message in messages(run))


def test_attach_fails_the_step_and_creates_no_file(lite: Connector) -> None:
    outside = Path(tempfile.mkdtemp(prefix="nomaflow-attach-"))  # not under NOMAFLOW_SQLITE_DIR

    run = run_sql(lite, [f"ATTACH DATABASE '{outside / 'x.db'}' AS x", "CREATE TABLE x.t (n int)"])

    assert run.state == "FAILED"
    assert "not authorized" in run.steps.get().error
    assert list(outside.iterdir()) == []
    outside.rmdir()


def test_a_connector_outside_the_sqlite_dir_is_refused_on_the_worker(worker: Process) -> None:
    outside = Path(tempfile.mkdtemp(prefix="nomaflow-outside-"))
    connector = ConnectorFactory(name="stray", kind="sqlite", url=f"sqlite:///{outside / 'x.db'}")  # around the API

    run = run_sql(connector, "CREATE TABLE t (n int)")

    assert run.state == "FAILED"
    assert 'connector "stray": sqlite:///' in run.steps.get().error
    assert "is not a file under NOMAFLOW_SQLITE_DIR" in run.steps.get().error
    assert list(outside.iterdir()) == []
    outside.rmdir()


def test_the_worker_refuses_sql_with_a_param_written_into_the_snapshot(lite: Connector) -> None:
    # Two runs of a one-at-a-time job: the second waits, unseen by any worker, while its
    # snapshot is rewritten as a direct database write would.
    sql = {"type": "sql_query", "op_kwargs": {"connector": "lite", "sql": "SELECT 1"}}
    job = make_job({"callable": "workers.builtins:sleep", "seconds": 1}, sql, params={"x": "1"}, max_concurrent_runs=1)
    first, _ = run_trigger(job_id=job.id, triggered_by="api")
    waiting, _ = run_trigger(job_id=job.id, overrides={"params": {"x": UNION}}, triggered_by="api")
    parameters = waiting.parameters
    parameters["steps"]["F0002"]["op_kwargs"]["sql"] = "SELECT '{{ params.x }}'"
    assert Run.objects.filter(pk=waiting.pk, dispatched_at__isnull=True).update(parameters=parameters) == 1

    assert wait_terminal(first).state == "SUCCEEDED"
    run = wait_terminal(waiting)

    assert run.state == "FAILED"
    assert "sql: must not contain {{ params.x }}: it would be pasted into SQL" in run.steps.get(name="F0002").error

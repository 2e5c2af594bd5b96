"""sql_copy on real PostgreSQL (two databases) and SQLite, executed by a real worker."""

from __future__ import annotations

import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from core.errors import InputError
from jobs.models import Connector
from runs.models import Run
from runs.services import run_cancel, run_replay, run_trigger
from tests.factories import ConnectorFactory, make_job
from tests.processes import Process, wait_for, wait_terminal
from tests.scratch_db import query, scratch_database

INJECTION = "x'); DROP TABLE canary; --"
ORDERS = "CREATE TABLE orders (id bigint PRIMARY KEY, name text, amount numeric(12,2), region text DEFAULT 'eu')"
BY = "user:otto"
ENDLESS_PG = "SELECT g AS id, md5(g::text) AS name, g AS amount FROM generate_series(1, 1000000000) g"
ENDLESS_LITE = (
    "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c) SELECT n AS id, 'x' AS name, n AS amount FROM c"
)


@pytest.fixture
def src(worker: Process) -> Iterator[Connector]:
    """A postgres source database: 1000 orders and a canary table."""
    with scratch_database("copy_src") as url:
        query(url, ORDERS)
        query(url, "INSERT INTO orders SELECT g, 'order ' || g, g * 1.5 FROM generate_series(1, 1000) g")
        query(url, "CREATE TABLE canary (note text)")
        query(url, "INSERT INTO canary VALUES ('alive')")
        yield ConnectorFactory(name="src", kind="postgres", url=url)


@pytest.fixture
def dst(worker: Process) -> Iterator[Connector]:
    """A second postgres database: `orders` holding two stale rows, and a canary table."""
    with scratch_database("copy_dst") as url:
        query(url, ORDERS)
        query(url, "INSERT INTO orders VALUES (1, 'stale', 0, 'us'), (5000, 'old', 1, 'us')")
        query(url, "CREATE TABLE canary (note text)")
        query(url, "INSERT INTO canary VALUES ('alive')")
        yield ConnectorFactory(name="dst", kind="postgres", url=url)


@pytest.fixture
def lite(worker: Process, tmp_path: Path) -> Connector:
    """An SQLite database with orders (3 rows) and an empty copy of the table, `orders2`."""
    path = tmp_path / "lite.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE orders (id integer PRIMARY KEY, name text, amount numeric, region text)")
        conn.execute("CREATE TABLE orders2 (id integer PRIMARY KEY, name text, amount numeric, region text)")
        conn.executemany("INSERT INTO orders VALUES (?, ?, ?, 'eu')", [(1, "a", 1.5), (2, "b", 3), (3, "c", 4.5)])
    conn.close()
    return ConnectorFactory(name="lite", kind="sqlite", url=f"sqlite:///{path}")


def trigger(op_kwargs: dict[str, Any], params: dict[str, Any] | None = None, **overrides: Any) -> Run:
    job = make_job({"type": "sql_copy", "op_kwargs": op_kwargs}, params=params or {})
    return run_trigger(job_id=job.id, overrides=overrides, triggered_by="api")[0]


def copy(op_kwargs: dict[str, Any], params: dict[str, Any] | None = None, **overrides: Any) -> Run:
    run = wait_terminal(trigger(op_kwargs, params, **overrides), timeout=60)
    assert run.state == "SUCCEEDED", run.steps.get().error
    return run


def messages(run: Run) -> list[str]:
    return list(run.log_lines.order_by("seq").values_list("message", flat=True))


def lite_rows(connector: Connector, sql: str) -> list[tuple]:
    with sqlite3.connect(connector.url.removeprefix("sqlite:///")) as conn:
        rows = conn.execute(sql).fetchall()
    conn.close()
    return rows


# --- PostgreSQL → PostgreSQL ---------------------------------------------------------


def test_overwrite_replaces_the_target_rows_with_a_binary_copy(src: Connector, dst: Connector) -> None:
    run = copy(
        {"source": "src", "target": "dst", "query": "SELECT * FROM orders", "table": "orders", "mode": "overwrite"}
    )

    lines = messages(run)
    assert "step F0001 · type=sql_copy · mode=overwrite" in lines
    assert "COPY binary of columns id, name, amount, region" in lines
    assert any(line.startswith("copied 1000 rows into orders (overwrite) in ") for line in lines)
    assert query(dst.url, "SELECT count(*), sum(amount), min(name) FROM orders") == [(1000, 750750, "order 1")]


def test_differing_column_types_fall_back_to_a_text_copy(src: Connector, dst: Connector) -> None:
    query(dst.url, "CREATE TABLE wide (id numeric, label varchar(40), total text)")

    run = copy(
        {
            "source": "src", "target": "dst", "table": "wide", "mode": "append", "columns": ["id", "label", "total"],
            "query": "SELECT id, name, amount FROM orders WHERE id <= 3",
        }
    )  # fmt: skip

    assert "COPY text of columns id, label, total" in messages(run)
    assert query(dst.url, "SELECT id, label, total FROM wide ORDER BY id") == [
        (1, "order 1", "1.50"), (2, "order 2", "3.00"), (3, "order 3", "4.50"),
    ]  # fmt: skip


def test_append_keeps_the_existing_rows(src: Connector, dst: Connector) -> None:
    copy({"source": "src", "target": "dst", "query": "SELECT * FROM orders WHERE id BETWEEN 2 AND 4", "table": "orders",
          "mode": "append"})  # fmt: skip

    assert query(dst.url, "SELECT id, name FROM orders ORDER BY id") == [
        (1, "stale"), (2, "order 2"), (3, "order 3"), (4, "order 4"), (5000, "old"),
    ]  # fmt: skip


def test_merge_upserts_on_the_key_and_leaves_other_columns_alone(src: Connector, dst: Connector) -> None:
    run = copy(
        {
            "source": "src", "target": "dst", "table": "orders", "mode": "merge", "key": "id",
            "query": "SELECT id, name FROM orders WHERE id <= 2",
        }
    )  # fmt: skip

    assert "merge on id: 2 rows inserted or updated" in messages(run)
    assert query(dst.url, "SELECT id, name, amount, region FROM orders ORDER BY id") == [
        (1, "order 1", 0, "us"), (2, "order 2", None, "eu"), (5000, "old", 1, "us"),
    ]  # fmt: skip


def test_merge_on_a_composite_key(src: Connector, dst: Connector) -> None:
    query(dst.url, "CREATE TABLE stock (site text, sku int, qty int, PRIMARY KEY (site, sku))")
    query(dst.url, "INSERT INTO stock VALUES ('a', 1, 10), ('b', 1, 20)")

    copy({"source": "src", "target": "dst", "table": "stock", "mode": "merge", "key": ["site", "sku"],
          "query": "SELECT 'a' AS site, 1 AS sku, 99 AS qty UNION ALL SELECT 'c', 1, 5"})  # fmt: skip

    assert query(dst.url, "SELECT * FROM stock ORDER BY site") == [("a", 1, 99), ("b", 1, 20), ("c", 1, 5)]


def test_params_are_bound_so_injection_payloads_stay_data(src: Connector, dst: Connector) -> None:
    run = copy(
        {
            "source": "src", "target": "dst", "table": "orders", "mode": "overwrite",
            "query": "SELECT id, %(name)s AS name, amount FROM orders WHERE name <> %(name)s AND id <= %(max)s",
            "parameters": {"name": "{{ params.name }}", "max": "{{ params.max }}"},
            "columns": ["id", "name", "amount"],
        },
        params={"name": INJECTION, "max": 2},
    )  # fmt: skip

    assert any(line.startswith("copied 2 rows into orders") for line in messages(run))
    assert query(dst.url, "SELECT DISTINCT name FROM orders") == [(INJECTION,)]
    for connector in (src, dst):
        assert query(connector.url, "SELECT note FROM canary") == [("alive",)]


@pytest.mark.parametrize(
    ("param", "value"),
    [("table", "orders; DROP TABLE canary"), ("key", 'id") DO NOTHING; DROP TABLE canary; --'), ("table", "canary--")],
)
def test_injection_through_identifiers_is_refused_at_trigger(
    src: Connector, dst: Connector, param: str, value: str
) -> None:
    op_kwargs = {"source": "src", "target": "dst", "query": "SELECT * FROM orders", "table": "orders", "mode": "merge",
                 "key": "id", param: f"{{{{ params.{param} }}}}"}  # fmt: skip

    with pytest.raises(InputError, match=f"{param} "):
        trigger(op_kwargs, params={param: value})
    assert query(dst.url, "SELECT note FROM canary") == [("alive",)]


def test_an_error_midway_rolls_the_overwrite_back(src: Connector, dst: Connector) -> None:
    # Rows stream before the division by zero at id 900 aborts the source query.
    run = wait_terminal(trigger({"source": "src", "target": "dst", "table": "orders", "mode": "overwrite",
                                 "query": "SELECT id, name, amount / (id - 900) AS amount FROM orders"}))  # fmt: skip

    assert run.state == "FAILED" and "division by zero" in run.steps.get().error
    assert query(dst.url, "SELECT id, name FROM orders ORDER BY id") == [(1, "stale"), (5000, "old")]


def test_a_missing_target_table_is_a_clear_error(src: Connector, dst: Connector) -> None:
    run = wait_terminal(trigger({"source": "src", "target": "dst", "query": "SELECT 1 AS id", "table": "nowhere",
                                 "mode": "append"}))  # fmt: skip

    assert run.state == "FAILED"
    assert 'table "nowhere" does not exist in the target database' in run.steps.get().error


def test_cancel_mid_copy_rolls_back_and_closes_both_connections(src: Connector, dst: Connector) -> None:
    run = trigger({"source": "src", "target": "dst", "query": ENDLESS_PG, "table": "orders", "mode": "overwrite",
                   "columns": ["id", "name", "amount"]})  # fmt: skip
    wait_for(lambda: run.log_lines.filter(message__regex=r"^copied \d+ rows · ").exists(), 60, what="progress")
    # The overwrite's DELETE has run, uncommitted: a reader still sees the old rows, not an empty table.
    assert query(dst.url, "SELECT count(*) FROM orders") == [(2,)]

    run_cancel(run_id=run.id, by=BY)

    run = wait_terminal(run)
    step = run.steps.get()
    assert (run.state, step.state, step.reason) == ("CANCELED", "CANCELED", f"canceled by {BY}")
    assert not run.log_lines.filter(message__contains="terminating worker process").exists()  # stopped within grace
    assert query(dst.url, "SELECT id, name FROM orders ORDER BY id") == [(1, "stale"), (5000, "old")]
    sessions = "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE %s"
    for connector in (src, dst):
        assert wait_for(lambda c=connector: query(c.url, sessions, [f"%{run.id}%"]) == [(0,)], what="sessions gone")


# --- SQLite, and mixed pairs ---------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "extra", "first_id", "expected"),
    [
        ("overwrite", {}, 2, [(2, "b"), (3, "c")]),
        ("append", {}, 2, [(1, "old"), (2, "b"), (3, "c"), (9, "z")]),
        ("merge", {"key": "id"}, 1, [(1, "a"), (2, "b"), (3, "c"), (9, "z")]),
    ],
)
def test_sqlite_to_sqlite_in_every_mode(lite: Connector, mode: str, extra: dict, first_id: int, expected: list) -> None:
    sqlite_exec(lite, "INSERT INTO orders2 VALUES (1, 'old', 0, 'us'), (9, 'z', 0, 'us')")

    run = copy({"source": "lite", "target": "lite", "table": "orders2", "mode": mode, "batch_size": 1,
                "query": "SELECT * FROM orders WHERE id >= :first", "parameters": {"first": first_id},
                **extra})  # fmt: skip

    assert lite_rows(lite, "SELECT id, name FROM orders2 ORDER BY id") == expected
    assert any(line.startswith(f"copied {4 - first_id} rows into orders2 ({mode})") for line in messages(run))


def test_postgres_to_sqlite_merge_converts_numeric_values(src: Connector, lite: Connector) -> None:
    copy({"source": "src", "target": "lite", "table": "orders", "mode": "merge", "key": ["id"],
          "query": "SELECT id, name, amount FROM orders WHERE id IN (2, 4)"})  # fmt: skip

    assert lite_rows(lite, "SELECT id, name, amount, region FROM orders ORDER BY id") == [
        (1, "a", 1.5, "eu"), (2, "order 2", 3, "eu"), (3, "c", 4.5, "eu"), (4, "order 4", 6, None),
    ]  # fmt: skip


def test_sqlite_to_postgres_overwrite(lite: Connector, dst: Connector) -> None:
    copy({"source": "lite", "target": "dst", "table": "orders", "mode": "overwrite", "query": "SELECT * FROM orders"})

    assert query(dst.url, "SELECT id, name, amount, region FROM orders ORDER BY id") == [
        (1, "a", 1.5, "eu"), (2, "b", 3, "eu"), (3, "c", 4.5, "eu"),
    ]  # fmt: skip


def test_sqlite_to_postgres_merge_through_a_staging_table(lite: Connector, dst: Connector) -> None:
    copy({"source": "lite", "target": "dst", "table": "orders", "mode": "merge", "key": "id",
          "query": "SELECT id, name FROM orders WHERE id = 1"})  # fmt: skip

    assert query(dst.url, "SELECT id, name, region FROM orders ORDER BY id") == [(1, "a", "us"), (5000, "old", "us")]


def test_sqlite_params_are_bound_so_injection_payloads_stay_data(lite: Connector) -> None:
    sqlite_exec(lite, "CREATE TABLE canary (note text)", "INSERT INTO canary VALUES ('alive')")

    copy(
        {"source": "lite", "target": "lite", "table": "orders2", "mode": "append",
         "query": "SELECT id, :name AS name FROM orders WHERE name <> :name", "parameters": {"name": "{{ params.x }}"}},
        params={"x": INJECTION},
    )  # fmt: skip

    assert lite_rows(lite, "SELECT DISTINCT name FROM orders2") == [(INJECTION,)]
    assert lite_rows(lite, "SELECT note FROM canary") == [("alive",)]


def test_sqlite_cancel_mid_copy_rolls_back(lite: Connector, tmp_path: Path) -> None:
    sqlite_exec(lite, "INSERT INTO orders2 VALUES (1, 'kept', 0, 'us')")
    run = trigger({"source": "lite", "target": "lite", "table": "orders2", "mode": "overwrite", "query": ENDLESS_LITE,
                   "columns": ["id", "name", "amount"]})  # fmt: skip
    wait_for(lambda: run.log_lines.filter(message__regex=r"^copied \d+ rows · ").exists(), 60, what="progress")

    run_cancel(run_id=run.id, by=BY)

    run = wait_terminal(run)
    assert (run.state, run.steps.get().state) == ("CANCELED", "CANCELED")
    assert not run.log_lines.filter(message__contains="terminating worker process").exists()
    assert lite_rows(lite, "SELECT id, name FROM orders2") == [(1, "kept")]
    sqlite_exec(lite, "INSERT INTO orders2 VALUES (2, 'lock released', 0, 'us')")  # no writer holds the lock


def sqlite_exec(connector: Connector, *statements: str) -> None:
    with sqlite3.connect(connector.url.removeprefix("sqlite:///"), timeout=5) as conn:
        for statement in statements:
            conn.execute(statement)
    conn.close()


def test_a_param_pasted_into_the_query_is_refused_at_trigger(db: None) -> None:
    op_kwargs = {"source": "src", "target": "dst", "table": "orders", "mode": "append",
                 "query": "SELECT * FROM orders WHERE name = '{{ params.x }}'"}  # fmt: skip

    with pytest.raises(InputError) as refused:
        trigger(op_kwargs, params={"x": "' UNION SELECT * FROM canary --"})

    assert refused.value.errors["steps.F0001.op_kwargs.query"][0].startswith(
        "step F0001: query must not contain {{ params.x }}: it would be pasted into SQL; bind it instead: "
    )
    assert not Run.objects.exists()


def test_a_replay_cannot_paste_a_param_into_the_query_either(src: Connector, dst: Connector) -> None:
    first = copy({"source": "src", "target": "dst", "query": "SELECT * FROM orders", "table": "orders",
                  "mode": "overwrite"}, params={"x": "a"})  # fmt: skip
    hostile = {"F0001": {"op_kwargs": {"query": "SELECT * FROM orders WHERE name <> '{{ params.x }}'"}}}

    with pytest.raises(InputError, match="would be pasted into SQL"):
        run_replay(run_id=first.id, overrides={"steps": hostile}, triggered_by="api")

    assert Run.objects.count() == 1


def test_a_sqlite_target_outside_the_sqlite_dir_fails_on_the_worker_and_writes_nothing(lite: Connector) -> None:
    outside = Path(tempfile.mkdtemp(prefix="nomaflow-outside-"))
    ConnectorFactory(name="stray", kind="sqlite", url=f"sqlite:///{outside / 'x.db'}")  # written around the API

    run = wait_terminal(trigger({"source": "lite", "target": "stray", "query": "SELECT * FROM orders",
                                 "table": "orders", "mode": "append"}), timeout=60)  # fmt: skip

    assert run.state == "FAILED"
    assert 'connector "stray": ' in run.steps.get().error and "NOMAFLOW_SQLITE_DIR" in run.steps.get().error
    assert list(outside.iterdir()) == []
    outside.rmdir()


def test_attach_in_a_sqlite_source_query_is_denied(lite: Connector) -> None:
    outside = Path(tempfile.mkdtemp(prefix="nomaflow-attach-"))

    run = wait_terminal(trigger({"source": "lite", "target": "lite", "table": "orders2", "mode": "append",
                                 "query": f"ATTACH DATABASE '{outside / 'x.db'}' AS x"}), timeout=60)  # fmt: skip

    assert run.state == "FAILED" and "not authorized" in run.steps.get().error
    assert list(outside.iterdir()) == []
    outside.rmdir()


def test_replay_with_a_swapped_target_connector_writes_to_the_sandbox_only(src: Connector, dst: Connector) -> None:
    with scratch_database("copy_sandbox") as sandbox_url:
        query(sandbox_url, ORDERS)
        ConnectorFactory(name="sandbox", kind="postgres", url=sandbox_url)

        first = copy(
            {"source": "src", "target": "{{ params.target_connector }}", "table": "orders", "mode": "overwrite",
             "query": "SELECT * FROM orders WHERE id <= 10"},
            params={"target_connector": "dst"},
        )  # fmt: skip
        query(dst.url, "UPDATE orders SET name = 'untouched'")

        replay = wait_terminal(run_replay(run_id=first.id, overrides={"params": {"target_connector": "sandbox"}},
                                          triggered_by="api"), timeout=60)  # fmt: skip

        assert replay.state == "SUCCEEDED" and replay.replay_of_id == first.id
        assert replay.parameters["params"]["target_connector"] == "sandbox"
        assert query(sandbox_url, "SELECT count(*) FROM orders") == [(10,)]
        assert query(dst.url, "SELECT DISTINCT name FROM orders") == [("untouched",)]

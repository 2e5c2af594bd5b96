"""ldap_sync from a real slapd (5,000 entries) into real PostgreSQL and SQLite, by a real worker."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from core.errors import StepConfigError
from jobs.models import Connector
from jobs.validation import check_step
from runs.models import Run
from runs.services import run_cancel, run_trigger
from tests.factories import ConnectorFactory, make_job
from tests.ldap_server import PEOPLE, SERVICE_DN, SERVICE_PW, LdapServer
from tests.processes import Process, wait_for, wait_terminal
from tests.scratch_db import scratch_database
from workers.steps import get_step_type

# The worker process inherits os.environ when the session starts it, after collection.
PASSWORD_VAR = "NOMAFLOW_SECRET_TEST_LDAP_SYNC_PASSWORD"  # a secret reference: NOMAFLOW_SECRET_ prefix
os.environ.setdefault(PASSWORD_VAR, SERVICE_PW)
PEOPLE_DN = "ou=people,dc=example,dc=org"
MAPPING = {"uid": "username", "mail": "email", "cn": "full_name", "dn": "dn"}


@pytest.fixture
def corp(slapd: LdapServer, worker: Process) -> Connector:
    options = {"bind_dn": SERVICE_DN, "password": f"${{{PASSWORD_VAR}}}"}
    return ConnectorFactory(name="corp", kind="ldap", url=slapd.url, options=options)


@pytest.fixture
def pg(worker: Process) -> Iterator[Connector]:
    """A postgres connector to a scratch database."""
    with scratch_database("ldap") as url:
        yield ConnectorFactory(name="warehouse", kind="postgres", url=url)


@pytest.fixture
def lite(worker: Process, tmp_path: Path) -> Connector:
    return ConnectorFactory(name="lite", kind="sqlite", url=f"sqlite:///{tmp_path / 'lite.db'}")


def sync(target: Connector, mode: str, params: dict[str, Any] | None = None, **op_kwargs: Any) -> Run:
    op_kwargs = {
        "connector": "corp", "base_dn": PEOPLE_DN, "filter": "(objectClass=inetOrgPerson)", "attributes": MAPPING,
        "target": target.name, "table": "people", "key": "username", "mode": mode, **op_kwargs,
    }  # fmt: skip
    job = make_job({"type": "ldap_sync", "op_kwargs": op_kwargs}, params=params or {})
    run = run_trigger(job_id=job.id, triggered_by="api", overrides={"log_level": "DEBUG"})[0]
    return wait_terminal(run, timeout=60)


def messages(run: Run) -> list[str]:
    return list(run.log_lines.order_by("seq").values_list("message", flat=True))


def pg_rows(connector: Connector, sql: str = "SELECT username, email, full_name, dn FROM people") -> list[tuple]:
    with psycopg.connect(connector.url) as conn:
        return conn.execute(sql + " ORDER BY 1").fetchall()


def pg_create_people(connector: Connector, *rows: tuple[str, str]) -> None:
    with psycopg.connect(connector.url) as conn:
        conn.execute("CREATE TABLE people (username text PRIMARY KEY, email text, full_name text, dn text)")
        for username, email in rows:
            conn.execute("INSERT INTO people (username, email) VALUES (%s, %s)", (username, email))


def lite_rows(connector: Connector) -> list[tuple]:
    with sqlite3.connect(connector.url.removeprefix("sqlite:///")) as conn:
        return conn.execute("SELECT username, email, full_name, dn FROM people ORDER BY 1").fetchall()


def test_overwrite_into_postgres_streams_every_entry_page_by_page(corp: Connector, pg: Connector) -> None:
    pg_create_people(pg, ("ghost", "ghost@example.org"))

    run = sync(pg, "overwrite")

    assert run.state == "SUCCEEDED", run.steps.get().error
    lines = messages(run)
    assert "step F0001 · type=ldap_sync · connector=corp · mode=overwrite · table=people" in lines
    # slapd answers a plain search with at most 1,000 entries (tests/ldap_server.py): paging did it.
    assert "filter: (objectClass=inetOrgPerson)" in lines
    assert any(line.startswith("500 entries so far") for line in lines)
    assert any(line.startswith(f"{PEOPLE} entries so far") for line in lines)
    assert lines[-2:-1] == [f"synced {PEOPLE} entries into people (overwrite)"]
    rows = pg_rows(pg)
    assert len(rows) == PEOPLE and rows[0][0] == "user00001"  # the ghost row is gone
    by_name = {row[0]: row for row in rows}
    assert by_name["user00042"] == ("user00042", "user00042@example.org", "Person 42", f"uid=user00042,{PEOPLE_DN}")
    assert by_name["user00007"][1] == "user00007@example.org"  # multi-valued: the first value
    assert by_name["user00100"][1] is None  # no mail


def test_merge_into_postgres_upserts_on_key_and_keeps_rows_it_does_not_see(corp: Connector, pg: Connector) -> None:
    pg_create_people(pg, ("user00003", "old@example.org"), ("user00001", "old@example.org"), ("ghost", None))

    run = sync(
        pg, "merge", params={"dept": "d3"}, filter="(&(objectClass=inetOrgPerson)(departmentNumber={dept}))",
        filter_params={"dept": "{{ params.dept }}"}, page_size=100,
    )  # fmt: skip

    assert run.state == "SUCCEEDED", run.steps.get().error
    assert f"synced {PEOPLE // 10} entries into people (merge)" in messages(run)
    by_name = {row[0]: row for row in pg_rows(pg)}
    assert len(by_name) == PEOPLE // 10 + 2
    assert by_name["user00003"][1:3] == ("user00003@example.org", "Person 3")  # updated
    assert by_name["user00001"][1:3] == ("old@example.org", None)  # department d1: untouched
    assert "ghost" in by_name


def test_overwrite_into_sqlite_creates_the_table_and_maps_attributes(corp: Connector, lite: Connector) -> None:
    run = sync(lite, "overwrite", scope="one", page_size=1000)

    assert run.state == "SUCCEEDED", run.steps.get().error
    rows = lite_rows(lite)
    assert len(rows) == PEOPLE
    assert rows[41] == ("user00042", "user00042@example.org", "Person 42", f"uid=user00042,{PEOPLE_DN}")

    again = sync(lite, "overwrite", filter="(departmentNumber=d5)")

    assert again.state == "SUCCEEDED" and len(lite_rows(lite)) == PEOPLE // 10


def test_merge_into_sqlite_upserts_on_key(corp: Connector, lite: Connector) -> None:
    assert sync(lite, "merge", filter="(departmentNumber=d1)").state == "SUCCEEDED"
    with sqlite3.connect(lite.url.removeprefix("sqlite:///")) as conn:
        conn.execute("UPDATE people SET email = 'stale' WHERE username = 'user00011'")

    run = sync(lite, "merge", filter="(|(departmentNumber=d1)(departmentNumber=d2))")

    assert run.state == "SUCCEEDED", run.steps.get().error
    rows = {row[0]: row for row in lite_rows(lite)}
    assert len(rows) == 2 * PEOPLE // 10
    assert rows["user00011"][1] == "user00011@example.org"


def test_entries_without_the_key_are_skipped_and_counted(corp: Connector, lite: Connector) -> None:
    run = sync(lite, "overwrite", attributes={"mail": "email", "uid": "username"}, key="email")

    assert run.state == "SUCCEEDED", run.steps.get().error
    assert f"{PEOPLE // 100} entries without a value for email skipped" in messages(run)
    assert f"synced {PEOPLE - PEOPLE // 100} entries into people (overwrite)" in messages(run)


@pytest.mark.parametrize("payload", ["*)(uid=*", "*", "user00042)(|(uid=*", "\\2a"])
def test_param_values_are_escaped_in_the_filter(corp: Connector, pg: Connector, payload: str) -> None:
    pg_create_people(pg, ("canary", "canary@example.org"))

    run = sync(pg, "merge", params={"who": payload}, filter="(uid={who})", filter_params={"who": "{{ params.who }}"})

    assert run.state == "SUCCEEDED", run.steps.get().error
    assert "synced 0 entries into people (merge)" in messages(run)
    assert pg_rows(pg, "SELECT username FROM people") == [("canary",)]


@pytest.mark.parametrize(
    ("who", "escaped", "synced"),
    [("user0004*", "user0004\\2a", 0), ("*)(uid=*", "\\2a\\29\\28uid=\\2a", 0), ("user00042", "user00042", 1)],
)
def test_a_param_written_into_the_filter_itself_is_escaped(
    corp: Connector, pg: Connector, who: str, escaped: str, synced: int
) -> None:
    # Unescaped, user0004* would match user00040 … user00049, and *)(uid=* every entry.
    run = sync(pg, "overwrite", params={"who": who}, filter="(uid={{ params.who }})")

    assert run.state == "SUCCEEDED", run.steps.get().error
    assert f"filter: (uid={escaped})" in messages(run)
    assert f"synced {synced} entries into people (overwrite)" in messages(run)


def test_an_exact_param_value_still_matches(corp: Connector, pg: Connector) -> None:
    run = sync(
        pg, "overwrite", params={"who": "user00042"}, filter="(uid={who})", filter_params={"who": "{{ params.who }}"}
    )

    assert "synced 1 entries into people (overwrite)" in messages(run)
    assert pg_rows(pg, "SELECT username FROM people") == [("user00042",)]


def test_cancel_mid_sync_rolls_the_target_back_and_closes_the_ldap_connection(
    corp: Connector, pg: Connector, slapd: LdapServer
) -> None:
    pg_create_people(pg, ("user02600", "old@example.org"))
    blocker = psycopg.connect(pg.url)
    blocker.execute("SELECT * FROM people WHERE username = 'user02600' FOR UPDATE")  # the 6th batch waits on it
    try:
        job = make_job({"type": "ldap_sync", "op_kwargs": {
            "connector": "corp", "base_dn": PEOPLE_DN, "filter": "(objectClass=inetOrgPerson)", "attributes": MAPPING,
            "target": "warehouse", "table": "people", "key": "username", "mode": "merge",
        }})  # fmt: skip
        run = run_trigger(job_id=job.id, triggered_by="api", overrides={"log_level": "DEBUG"})[0]
        wait_for(lambda: run.log_lines.filter(message__startswith="2500 entries so far").exists(), 60, what="5 batches")
        assert slapd.open_connections() == 1  # the step's search, still paging

        run_cancel(run_id=run.id, by="user:otto")
        wait_terminal(run)
    finally:
        blocker.close()

    assert run.state == "CANCELED"
    assert not any("did not stop within" in line for line in messages(run))  # stopped by the cancel, not killed
    assert pg_rows(pg, "SELECT username, email FROM people") == [("user02600", "old@example.org")]
    wait_for(lambda: slapd.open_connections() == 0, 10, what="slapd to see the step's connection closed")


def test_cancel_while_the_directory_does_not_answer_closes_the_socket(
    corp: Connector, lite: Connector, slapd: LdapServer
) -> None:
    assert sync(lite, "overwrite", filter="(uid=user0000*)").state == "SUCCEEDED"
    job = make_job({"type": "ldap_sync", "op_kwargs": {
        "connector": "corp", "base_dn": PEOPLE_DN, "attributes": MAPPING, "target": "lite", "table": "people",
        "key": "username", "mode": "overwrite",
    }})  # fmt: skip

    with slapd.paused():
        run = run_trigger(job_id=job.id, triggered_by="api", overrides={"log_level": "DEBUG"})[0]
        wait_for(lambda: run.log_lines.filter(message="connecting to corp").exists(), 30, what="the step to connect")
        run_cancel(run_id=run.id, by="user:otto")
        wait_terminal(run)

    assert run.state == "CANCELED"
    assert not any("did not stop within" in line for line in messages(run))
    assert len(lite_rows(lite)) == 9  # the overwrite rolled back


@pytest.mark.parametrize(
    ("op_kwargs", "field", "text"),
    [
        ({"connector": None}, "connector", "is required"),
        ({"target": 3}, "target", "expected the name of a postgres or sqlite connector"),
        ({"base_dn": "not a dn"}, "base_dn", "is not a valid DN"),
        ({"filter": "(uid=x"}, "filter", "is not a valid LDAP filter"),
        ({"filter": "(uid={who})"}, "filter", "{who} has no value in filter_params (known: none)"),
        ({"filter": "(uid={who})", "filter_params": {"who": ["a"]}}, "filter_params", "expected a string or a number"),
        ({"attributes": {}}, "attributes", "must map at least one attribute"),
        ({"attributes": {"uid": "user name"}}, "attributes", "must be letters, digits and _"),
        ({"attributes": {"uid)(x": "u"}}, "attributes", "is not an LDAP attribute name"),
        ({"attributes": {"uid": "u", "cn": "u"}}, "attributes", "two attributes map to the same column"),
        ({"key": "email"}, "key", '"email" must be one of the mapped columns (username)'),
        ({"table": "people; drop table x"}, "table", "must be a name or schema.name"),
        ({"mode": "append"}, "mode", '"append" is not a mode of ldap_sync (use overwrite or merge)'),
        ({"scope": "subtree"}, "scope", "use sub, one or base"),
        ({"page_size": 0}, "page_size", "between 1 and 10000"),
        ({"pagesize": 10}, "pagesize", "is not an option of ldap_sync"),
    ],
)
def test_bad_op_kwargs_name_the_field(op_kwargs: dict[str, Any], field: str, text: str) -> None:
    good = {
        "connector": "corp", "base_dn": PEOPLE_DN, "attributes": {"uid": "username"}, "target": "warehouse",
        "table": "people", "key": "username", "mode": "merge",
    }  # fmt: skip
    bad = {key: value for key, value in {**good, **op_kwargs}.items() if value is not None}

    with pytest.raises(StepConfigError) as refused:
        get_step_type("ldap_sync").validate(bad)

    assert refused.value.field == field
    assert text in refused.value.message


def test_connectors_must_exist_with_the_right_kind(db: None) -> None:
    ConnectorFactory(name="corp", kind="ldap", url="ldap://127.0.0.1:389")
    ConnectorFactory(name="lite", kind="sqlite", url="sqlite:///x.db")
    op_kwargs = {
        "connector": "lite", "base_dn": PEOPLE_DN, "attributes": {"uid": "username"}, "target": "corp",
        "table": "people", "key": "username", "mode": "merge",
    }  # fmt: skip

    errors = check_step("F0001", "ldap_sync", op_kwargs, {}, job_id="sync")

    assert errors == {
        "steps.F0001.op_kwargs.connector": [
            'step F0001: connector "lite" is a sqlite connector; this field needs one of: ldap'
        ]
    }
    errors = check_step("F0001", "ldap_sync", {**op_kwargs, "connector": "corp"}, {}, job_id="sync")
    assert "this field needs one of: postgres, sqlite" in errors["steps.F0001.op_kwargs.target"][0]

"""REST API: what an editor's op_kwargs overrides and connectors may not do (issue 12):
paste a param into SQL, name the housekeeping purge or an unmarked function, or point an
sqlite connector outside NOMAFLOW_SQLITE_DIR. Each is a 400 naming the field; nothing is stored."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from pytest_django.fixtures import SettingsWrapper

from core.models import AuditEvent
from jobs.models import Connector
from runs.models import Run
from runs.services import run_trigger
from tests.conftest import api_client
from tests.factories import ConnectorFactory, end_as, make_job

CONNECTORS = "/api/v1/connectors/"
PASTED = "SELECT * FROM sales WHERE region = '{{ params.region }}'"
PURGE = {"callable": "workers.housekeeping:purge_expired", "retention_days": 0}


@pytest.fixture
def sql_job(db: None) -> Any:
    ConnectorFactory(name="dw", kind="sqlite", url="sqlite:///dw.db")
    return make_job({"type": "sql_query", "op_kwargs": {"connector": "dw", "sql": "select 1"}}, params={"region": "n"})


def trigger(user: User, job_id: str, body: dict[str, Any]) -> Any:
    return api_client(user).post(f"/api/v1/jobs/{job_id}/runs/", body, format="json")


def test_an_editors_trigger_cannot_paste_a_param_into_sql(editor: User, sql_job: Any) -> None:
    response = trigger(editor, sql_job.id, {"steps": {"F0001": {"op_kwargs": {"sql": PASTED}}}})

    assert response.status_code == 400
    assert "would be pasted into SQL; bind it instead" in response.json()["errors"]["steps.F0001.op_kwargs.sql"][0]
    assert not Run.objects.exists() and not AuditEvent.objects.exists()


def test_an_editors_trigger_may_bind_the_param_instead(editor: User, sql_job: Any) -> None:
    bound = {"sql": "SELECT * FROM sales WHERE region = :region", "parameters": {"region": "{{ params.region }}"}}

    response = trigger(editor, sql_job.id, {"steps": {"F0001": {"op_kwargs": bound}}})

    assert response.status_code == 201, response.json()


def test_an_editors_replay_cannot_paste_a_param_into_sql(editor: User, sql_job: Any) -> None:
    original = end_as(run_trigger(job_id=sql_job.id, triggered_by="cli")[0], "SUCCEEDED")

    response = api_client(editor).post(
        f"/api/v1/runs/{original.id}/replay/", {"steps": {"F0001": {"op_kwargs": {"sql": PASTED}}}}, format="json"
    )

    assert response.status_code == 400
    assert "steps.F0001.op_kwargs.sql" in response.json()["errors"]
    assert Run.objects.count() == 1


def test_an_editors_trigger_cannot_swap_in_the_housekeeping_purge(editor: User) -> None:
    job = make_job({"callable": "workers.builtins:noop"})

    response = trigger(editor, job.id, {"steps": {"F0001": {"op_kwargs": PURGE}}})

    assert response.status_code == 400
    assert response.json()["errors"]["steps.F0001.op_kwargs.callable"] == [
        'step F0001: callable workers.housekeeping:purge_expired belongs to the built-in "housekeeping" job; '
        "no other job may name it"
    ]
    assert not Run.objects.exists()


def test_an_editors_trigger_cannot_name_an_unmarked_function(editor: User) -> None:
    job = make_job({"callable": "workers.builtins:noop"})

    response = trigger(editor, job.id, {"steps": {"F0001": {"op_kwargs": {"callable": "tests.steps:unmarked_helper"}}}})

    assert response.status_code == 400
    assert "is not a step callable; mark it with @step_callable" in response.json()["detail"]


# --- sqlite connectors ---------------------------------------------------------------------


@pytest.mark.parametrize("url", ["sqlite:////etc/x.db", "sqlite:///../x.db", "sqlite:///a/../../x.db"])
def test_an_sqlite_connector_outside_the_sqlite_dir_is_400(editor: User, settings: SettingsWrapper, url: str) -> None:
    response = api_client(editor).post(CONNECTORS, {"name": "stray", "kind": "sqlite", "url": url}, format="json")

    assert response.status_code == 400
    assert response.json()["errors"]["url"] == [
        f"{url} is not a file under NOMAFLOW_SQLITE_DIR ({settings.NOMAFLOW_SQLITE_DIR}); "
        "use sqlite:///name.db or a path under it"
    ]
    assert not Connector.objects.exists()


def test_an_sqlite_connector_cannot_be_moved_outside_by_a_patch(editor: User) -> None:
    ConnectorFactory(name="dw", kind="sqlite", url="sqlite:///dw.db")

    response = api_client(editor).patch(f"{CONNECTORS}dw/", {"url": "sqlite:////etc/passwd"}, format="json")

    assert response.status_code == 400 and "url" in response.json()["errors"]
    assert Connector.objects.get(name="dw").url == "sqlite:///dw.db"


def test_an_sqlite_connector_under_the_sqlite_dir_is_accepted(editor: User, settings: SettingsWrapper) -> None:
    inside = Path(settings.NOMAFLOW_SQLITE_DIR) / "reports" / "r.db"

    for url in ("sqlite:///x.db", f"sqlite:///{inside}"):
        response = api_client(editor).post(CONNECTORS, {"name": "ok", "kind": "sqlite", "url": url}, format="json")
        assert response.status_code == 201, response.json()
        assert response.json()["url"] == url
        Connector.objects.all().delete()


@pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")
def test_nomaflows_own_sqlite_database_is_400(editor: User, settings: SettingsWrapper) -> None:
    own = Path(settings.NOMAFLOW_SQLITE_DIR) / "nomaflow.sqlite3"
    settings.DATABASES = {
        "default": {**settings.DATABASES["default"], "ENGINE": "django.db.backends.sqlite3", "NAME": own}
    }

    url = f"sqlite:///{own}-wal"
    response = api_client(editor).post(CONNECTORS, {"name": "own", "kind": "sqlite", "url": url}, format="json")

    assert response.status_code == 400
    assert response.json()["errors"]["url"] == [
        f"{url} is nomaflow's own database; give the connector a file of its own"
    ]

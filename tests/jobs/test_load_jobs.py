"""`manage.py load_jobs <file>`: create or update jobs (and connectors) from YAML or JSON, all or nothing."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.core.management import CommandError, call_command

from core.models import AuditEvent
from jobs.models import Connector, Job, Step
from tests.factories import ConnectorFactory, make_job

NOOP = {"callable": "workers.builtins:noop"}


def job(job_id: str = "nightly", **fields: Any) -> dict[str, Any]:
    return {
        "id": job_id,
        "name": job_id.title(),
        "schedule": "30 2 * * *",
        "steps": [{"name": "F0001", "type": "python", "op_kwargs": NOOP}],
        **fields,
    }


def load(path: Path, *args: str) -> str:
    out = StringIO()
    call_command("load_jobs", str(path), *args, stdout=out)
    return out.getvalue()


def write(tmp_path: Path, data: Any, name: str = "jobs.yaml") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data) if name.endswith(".json") else yaml.safe_dump(data))
    return path


def test_creates_jobs_from_a_yaml_list(db: None, tmp_path: Path) -> None:
    output = load(write(tmp_path, [job("nightly"), job("hourly", schedule="0 * * * *")]))
    assert 'job "nightly": created' in output
    assert sorted(Job.objects.values_list("id", "schedule")) == [("hourly", "0 * * * *"), ("nightly", "30 2 * * *")]
    assert Step.objects.count() == 2
    assert set(AuditEvent.objects.values_list("actor", "action")) == {("cli", "create")}


def test_updates_existing_jobs_and_replaces_their_steps(db: None, tmp_path: Path) -> None:
    make_job(NOOP, NOOP, NOOP, id="nightly", description="old")
    output = load(write(tmp_path, [job("nightly", description="new")], "jobs.json"))
    assert 'job "nightly": updated' in output
    assert Job.objects.get().description == "new"
    assert list(Step.objects.values_list("name", flat=True)) == ["F0001"]


def test_loads_connectors_before_the_jobs_that_use_them(db: None, tmp_path: Path) -> None:
    step = {"name": "load", "type": "sql_query", "op_kwargs": {"connector": "dw", "sql": "select 1"}}
    data = {
        "connectors": [{"name": "dw", "kind": "postgres", "url": "postgresql://etl:${NOMAFLOW_SECRET_DW_PW}@db/dw"}],
        "jobs": [job("nightly", steps=[step])],
    }
    load(write(tmp_path, data))
    assert Connector.objects.get().url == "postgresql://etl:${NOMAFLOW_SECRET_DW_PW}@db/dw"
    assert Job.objects.get().steps.get().name == "load"


def test_an_error_names_the_job_and_field_and_nothing_is_loaded(db: None, tmp_path: Path) -> None:
    bad = job("broken", steps=[{"name": "F0001", "type": "python", "op_kwargs": {"callable": "os:system"}}])
    path = write(
        tmp_path,
        {"connectors": [{"name": "dw", "kind": "sqlite", "url": "sqlite:///x.db"}], "jobs": [job("good"), bad]},
    )
    with pytest.raises(CommandError) as error:
        load(path)
    assert str(error.value).startswith('job "broken": steps.F0001.op_kwargs.callable: ')
    assert not Job.objects.exists() and not Connector.objects.exists() and not AuditEvent.objects.exists()


def test_bad_cron_is_reported_with_the_job(db: None, tmp_path: Path) -> None:
    with pytest.raises(CommandError, match=r'job "nightly": schedule: "every day" is not a valid cron'):
        load(write(tmp_path, [job("nightly", schedule="every day")]))
    assert not Job.objects.exists()


def test_a_masked_password_for_a_new_connector_is_refused(db: None, tmp_path: Path) -> None:
    data = {"connectors": [{"name": "dw", "kind": "postgres", "url": "postgresql://u:***@db/dw"}]}
    with pytest.raises(CommandError, match='connector "dw": url: '):
        load(write(tmp_path, data))
    assert not Connector.objects.exists()


def test_a_masked_password_keeps_the_stored_one(db: None, tmp_path: Path) -> None:
    ConnectorFactory(name="dw", url="postgresql://u:real@db/dw")
    load(write(tmp_path, {"connectors": [{"name": "dw", "kind": "postgres", "url": "postgresql://u:***@db/dw2"}]}))
    assert Connector.objects.get().url == "postgresql://u:real@db/dw2"


def test_dry_run_checks_and_changes_nothing(db: None, tmp_path: Path) -> None:
    output = load(write(tmp_path, [job("nightly")]), "--dry-run")
    assert "valid" in output and "nothing changed" in output
    assert not Job.objects.exists() and not AuditEvent.objects.exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("jobs: [", "not valid YAML"),
        ("just text", "must hold a list of jobs"),
        ("- 3", "job #1: must be an object"),
        ("{jobs: [], extra: 1}", "must hold a list of jobs"),
    ],
)
def test_malformed_files_are_explained(db: None, tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "jobs.yaml"
    path.write_text(content)
    with pytest.raises(CommandError, match=message):
        load(path)


def test_a_missing_file_is_explained(db: None, tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="cannot read"):
        load(tmp_path / "nope.yaml")

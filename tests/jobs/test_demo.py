"""`python manage.py load_demo`: the demo job, valid and idempotent."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.management import call_command

from core.errors import InputError
from jobs.demo import demo_load
from jobs.models import Connector, Job


def test_load_demo_creates_a_valid_demo_and_is_idempotent(db: None, tmp_path: Path, settings: object) -> None:
    settings.VAR_DIR = tmp_path / "var"  # type: ignore[attr-defined]
    call_command("load_demo")
    job = Job.objects.get(id="demo-etl")
    job.steps.filter(name="F0002").update(op_kwargs={"changed": True})
    call_command("load_demo")
    assert Connector.objects.get(name="demo_db").url == f"sqlite:///{(tmp_path / 'var' / 'demo.sqlite3').resolve()}"
    assert job.params["fail"] is False
    assert [s.type for s in job.steps.order_by("position")].count("sql_query") == 3
    assert "connector" in job.steps.get(name="F0002").op_kwargs
    assert job.steps.get(name="F0006").op_kwargs["when"] == "{{ params.fail }}"


def test_load_demo_refuses_a_var_dir_outside_the_sqlite_dir(db: None, tmp_path: Path, settings: object) -> None:
    settings.NOMAFLOW_SQLITE_DIR = tmp_path / "lite"  # type: ignore[attr-defined]

    with pytest.raises(InputError, match="is not a file under NOMAFLOW_SQLITE_DIR"):
        demo_load(var_dir=tmp_path / "var")

    assert not Connector.objects.exists() and not Job.objects.exists()

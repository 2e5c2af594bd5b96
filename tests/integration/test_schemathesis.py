"""schemathesis against a live daphne (DEBUG off, as deployed) with a real worker: every
answer of every operation must be documented (status, content type, body schema), and no
request may make the server fail. Any finding fails the test and prints schemathesis' report.

Two passes share a budget of about two minutes:
- as an editor, who may call every operation: examples, coverage and fuzzing of all of them;
- as an operator, who may trigger, cancel and replay but not edit: whether a request is
  allowed then depends on its body (op_kwargs overrides need the editor role), so the
  refusal paths get their own pass. A viewer's writes are all refused before any body is
  read, the same way for every operation: tests/runs/test_openapi.py checks those 403s.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from django.contrib.auth.models import User

from accounts.tokens import issue_token
from runs.services import run_trigger
from tests.factories import ConnectorFactory, make_job
from tests.processes import Process, free_port, start_daphne, wait_terminal

CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"
PHASES = "examples,coverage,fuzzing"


@pytest.fixture
def web(worker: Process) -> Iterator[str]:
    port = free_port()
    process = start_daphne(port, DEBUG="false")  # Django's JSON error handlers answer only with DEBUG off
    yield f"http://127.0.0.1:{port}"
    process.stop()
    print(process.output()[-5000:])  # shown when the test fails: tracebacks of any 500


@pytest.fixture
def schema_file(web: str, editor: User, tmp_path: Path) -> Path:
    headers = {"Authorization": f"Token {issue_token(editor)}"}
    response = requests.get(f"{web}/api/v1/schema/?format=json", headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    path = tmp_path / "openapi.json"
    path.write_text(json.dumps(response.json()))
    return path


@pytest.fixture
def known_ids(worker: Process, tmp_path: Path) -> Path:
    """A few real objects, and a schemathesis config that puts their ids in the paths half of
    the time: otherwise nearly every generated id is a 404, and a replay's or a trigger's body
    checks (which need a run or a job) are never reached."""
    ConnectorFactory(name="st-warehouse")
    make_job({"type": "sql_query", "connector": "st-warehouse", "sql": "select 1"}, id="st-sql")
    noop = make_job({"callable": "workers.builtins:noop"}, {"callable": "workers.builtins:echo"}, id="st-noop")
    runs = [wait_terminal(run_trigger(job_id=noop.id, triggered_by="cli")[0]) for _ in range(2)]
    ids = {"jobs": [noop.id, "st-sql"], "runs": [run.id for run in runs], "connectors": ["st-warehouse"]}
    path = tmp_path / "schemathesis.toml"
    path.write_text(config_toml(ids))
    return path


def config_toml(ids: dict[str, list[str]]) -> str:
    lines = []
    for kind, values in ids.items():
        lines += [f"[dictionaries.{kind}]", f"values = {json.dumps(values)}", ""]
    for kind, name in (("jobs", "id"), ("runs", "id"), ("connectors", "name")):
        binding = f'{{ "path.{name}" = {{ dictionary = "{kind}", probability = 0.5 }} }}'
        lines += ["[[operations]]", f'include-path-regex = "^/api/v1/{kind}/[{{]"', f"parameters = {binding}", ""]
    return "\n".join(lines)


def schemathesis(schema: Path, config: Path, web: str, token: str, *, max_time: int, max_examples: int) -> None:
    # One schemathesis worker: Hypothesis parses source files to describe its strategies, and
    # ast.parse on Python 3.11.7 is not thread-safe (SystemError: AST constructor recursion depth).
    args = [
        sys.executable, "-m", "schemathesis.cli", "--no-color", "--config-file", str(config), "run", str(schema),
        "--url", web, "--header", f"Authorization: Token {token}", "--phases", PHASES, "--checks", CHECKS,
        "--max-time", str(max_time), "--max-examples", str(max_examples), "--workers", "1",
        "--request-timeout", "30",
    ]  # fmt: skip
    # In the config's folder: schemathesis keeps its cache (.schemathesis/) in the working directory.
    result = subprocess.run(args, capture_output=True, text=True, timeout=max_time + 120, cwd=config.parent)
    report = readable(result.stdout + result.stderr)
    print(report)
    assert result.returncode == 0, report[-20000:]


def readable(report: str, width: int = 2000) -> str:
    # A Hypothesis error can quote a whole source file on one line.
    return "\n".join(line if len(line) <= width else line[:width] + " …" for line in report.splitlines())


def test_the_api_answers_as_its_schema_says_for_an_editor(
    schema_file: Path, known_ids: Path, web: str, editor: User
) -> None:
    schemathesis(schema_file, known_ids, web, issue_token(editor), max_time=50, max_examples=40)


def test_the_api_answers_as_its_schema_says_for_an_operator(
    schema_file: Path, known_ids: Path, web: str, operator: User
) -> None:
    schemathesis(schema_file, known_ids, web, issue_token(operator), max_time=20, max_examples=15)

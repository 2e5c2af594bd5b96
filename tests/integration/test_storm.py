"""Issue 13's storm: 8 API clients for 60 s against real daphne, two workers and the
scheduler (tests/storm), doing trigger, trigger with Idempotency-Key (keys sometimes
resent), cancel, replay with edited params, log reads and websocket follows on three
jobs of short steps. Run with `-s` to see the figures; they are also written to
bench/results/storm_test.json."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.http_server import running_server
from tests.storm import StormReport, StormSetup, run_storm, storm_setup

CLIENTS = 8
DURATION_S = 60.0
RESULTS = Path(__file__).resolve().parents[2] / "bench" / "results" / "storm_test.json"

pytestmark = pytest.mark.timeout(240)


@pytest.fixture
def setup(transactional_db: None, tmp_path: Path) -> Iterator[StormSetup]:
    with running_server() as http, storm_setup(tmp_path, http.base, users=CLIENTS) as storm:
        yield storm


def show(report: StormReport) -> dict[str, Any]:
    figures = report.figures()
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps({**figures, "problems": report.problems()}, indent=2) + "\n")
    print("\nstorm figures:", json.dumps(figures, indent=2))
    print("problems:", json.dumps(report.problems(), indent=2))
    return figures


def test_storm_has_no_5xx_deadlocks_stuck_runs_or_duplicates_within_the_pools(setup: StormSetup) -> None:
    report = run_storm(setup, clients=CLIENTS, duration_s=DURATION_S)
    figures = show(report)
    problems = report.problems()
    # The storm really happened: every kind of request was made, and the sampler saw the stack.
    assert set(figures["endpoints"]) == {
        "trigger", "trigger_idem", "cancel", "replay", "run", "logs", "logs_txt", "ws_follow",
    }  # fmt: skip
    assert report.connections.max_by_process.get("web", 0) > 0, "no connection labelled storm-web was seen"
    assert figures["record_step_executions"] > 0 and figures["step_start_lines"] > 0  # the checks saw steps
    assert figures["server_errors_5xx"] == 0, problems["server_errors"]
    assert figures["transport_errors"] == 0, problems["transport_errors"]
    assert figures["deadlocks_pg_stat_database"] == 0, (problems["deadlocks"], problems["retried"])
    assert figures["deadlock_lines_in_process_output"] == 0, problems["deadlock_lines"]
    assert figures["deadlocks_server_log"] in (0, None)  # None: the server's log is not where Debian keeps it
    assert figures["not_terminal_after_drain"] == 0, problems["not_terminal"]
    assert figures["duplicate_step_executions"] == 0, problems["duplicates"]
    assert figures["max_pg_connections"] <= figures["pg_connection_bound"], figures["max_pg_connections_by_process"]
    assert figures["idempotency_mismatches"] == 0, problems["idempotency"]
    # The websocket contract (API.md): every follow gets its lines once, in order, then `end`.
    assert figures["ws_contract_violations"] == 0, (problems["ws_violations"], problems["errors"])
    assert set(figures["ws_outcomes"]) == {"end"}, problems["ws_failures"]

"""Every API operation, every role: a role can do exactly what DESIGN.md says and nothing more.

viewer reads; operator also triggers, cancels and replays (params, enabled, log level);
editor also overrides step op_kwargs and edits jobs and connectors. Anonymous is 401, a
role below the one needed is 403, and a refused request changes nothing.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User

from core.models import AuditEvent
from core.roles import EDITOR, OPERATOR, ROLES, VIEWER
from jobs.models import Connector, Job
from runs.models import Run
from runs.services import run_trigger
from tests.conftest import _user, api_client
from tests.factories import ConnectorFactory, end_as, make_job

IDLE = {"callable": "workers.builtins:noop", "queue": "idle"}  # no test worker consumes "idle"
OP_KWARGS = {"steps": {"F0001": {"op_kwargs": {"callable": "workers.builtins:noop"}}}}
NOOP = {"callable": "workers.builtins:noop"}
NEW_JOB = {"id": "made-here", "name": "Made here", "steps": [{"name": "F0001", "type": "python", "op_kwargs": NOOP}]}
NEW_CONNECTOR = {"name": "made-here", "kind": "sqlite", "url": "sqlite:///made-here.db"}

# (method, path, body, the weakest role that may do it)
OPERATIONS: list[tuple[str, str, dict[str, Any] | None, str]] = [
    ("get", "/api/v1/jobs/", None, VIEWER),
    ("get", "/api/v1/jobs/{job}/", None, VIEWER),
    ("post", "/api/v1/jobs/", NEW_JOB, EDITOR),
    ("patch", "/api/v1/jobs/{job}/", {"description": "changed"}, EDITOR),
    ("delete", "/api/v1/jobs/{spare_job}/", None, EDITOR),
    ("get", "/api/v1/connectors/", None, VIEWER),
    ("post", "/api/v1/connectors/", NEW_CONNECTOR, EDITOR),
    ("patch", "/api/v1/connectors/{connector}/", {"options": {}}, EDITOR),
    ("delete", "/api/v1/connectors/{connector}/", None, EDITOR),
    ("get", "/api/v1/jobs/{job}/runs/", None, VIEWER),
    ("post", "/api/v1/jobs/{job}/runs/", {"params": {"n": 2}}, OPERATOR),
    ("post", "/api/v1/jobs/{job}/runs/", OP_KWARGS, EDITOR),
    ("get", "/api/v1/runs/", None, VIEWER),
    ("get", "/api/v1/runs/{queued}/", None, VIEWER),
    ("get", "/api/v1/runs/{queued}/logs/", None, VIEWER),
    ("get", "/api/v1/runs/{queued}/logs.txt", None, VIEWER),
    ("post", "/api/v1/runs/{queued}/cancel/", None, OPERATOR),
    ("post", "/api/v1/runs/{finished}/replay/", {"log_level": "DEBUG"}, OPERATOR),
    ("post", "/api/v1/runs/{finished}/replay/", OP_KWARGS, EDITOR),
    ("get", "/api/v1/schedule/?start=2026-11-01&end=2026-11-08", None, VIEWER),
    ("get", "/api/v1/schema/", None, VIEWER),
]
USERS = (None, "outsider", *ROLES)


@pytest.fixture
def objects(db: None) -> dict[str, str]:
    job = make_job(IDLE, params={"n": 1})
    spare = make_job(IDLE)
    queued = run_trigger(job_id=job.id, triggered_by="api")[0]
    finished = end_as(run_trigger(job_id=job.id, triggered_by="api")[0], "SUCCEEDED")
    connector = ConnectorFactory(kind="sqlite", url="sqlite:///spare.db")
    return {"job": job.id, "spare_job": spare.id, "queued": queued.id, "finished": finished.id,
            "connector": connector.name}  # fmt: skip


def _who(name: str | None) -> User | None:
    if name is None:
        return None
    return _user(f"u-{name}", None if name == "outsider" else name)


def _state() -> tuple[Any, ...]:
    """What a refused request must leave alone."""
    return (
        sorted(Job.objects.values_list("id", "description")),
        sorted(Connector.objects.values_list("name", "options")),
        sorted(Run.objects.values_list("id", "state")),
        AuditEvent.objects.count(),
    )


def _allowed(user: str | None, needed: str) -> bool:
    return user in ROLES and ROLES.index(user) >= ROLES.index(needed)


@pytest.mark.parametrize("user", USERS)
@pytest.mark.parametrize(("method", "path", "body", "needed"), OPERATIONS, ids=lambda v: str(v)[:40])
def test_each_role_does_exactly_what_its_role_allows(
    objects: dict[str, str], user: str | None, method: str, path: str, body: dict[str, Any] | None, needed: str
) -> None:
    client = api_client(_who(user))
    before = _state()
    response = getattr(client, method)(path.format(**objects), body, format="json")
    if _allowed(user, needed):
        assert response.status_code < 300, (response.status_code, response.content[:300])
        return
    assert response.status_code == (401 if user is None else 403), response.content[:300]
    assert response["Content-Type"].startswith("application/json")
    assert _state() == before

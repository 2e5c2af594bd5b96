"""Shared fixtures: role users, API clients, and a real Celery worker for the session."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis
from django.conf import settings
from django.contrib.auth.models import Group, User
from rest_framework.test import APIClient

from accounts.tokens import issue_token
from core.roles import EDITOR, OPERATOR, ROLES, VIEWER
from jobs.models import Job
from runs import logstore
from runs.models import Run
from runs.retention import HOUSEKEEPING_JOB_ID
from runs.services import run_trigger

from .factories import make_job
from .http_server import LocalServer, running_server
from .ldap_server import LdapServer, start_slapd, stop_slapd
from .processes import Process, start_scheduler, start_worker


def _user(username: str, role: str | None) -> User:
    user = User.objects.create_user(username, password="pw-" + username)
    if role:
        # Groups come from a migration, but transactional tests truncate them away.
        user.groups.add(Group.objects.get_or_create(name=role)[0])
    return user


@pytest.fixture
def roles(db: None) -> None:
    for name in ROLES:
        Group.objects.get_or_create(name=name)


@pytest.fixture
def viewer(db: None) -> User:
    return _user("vera", VIEWER)


@pytest.fixture
def operator(db: None) -> User:
    return _user("otto", OPERATOR)


@pytest.fixture
def editor(db: None) -> User:
    return _user("edna", EDITOR)


@pytest.fixture
def outsider(db: None) -> User:
    return _user("oscar", None)


def api_client(user: User | None) -> APIClient:
    """An API client authenticated with `user`'s token (anonymous for None)."""
    client = APIClient()
    if user is not None:
        client.credentials(HTTP_AUTHORIZATION=f"Token {issue_token(user)}")
    return client


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup: None, django_db_blocker: Any) -> None:
    """Tests start from empty job tables: the built-in housekeeping job that a migration
    creates (and transactional tests truncate away) is installed by the tests that use it."""
    with django_db_blocker.unblock():
        Job.objects.filter(id=HOUSEKEEPING_JOB_ID).delete()


@pytest.fixture(scope="session")
def clean_redis() -> Iterator[None]:
    """Remove this session's Redis keys (its own prefix) when the session ends."""
    yield
    client = redis.Redis.from_url(settings.REDIS_URL)
    for key in client.scan_iter(match=f"{settings.REDIS_PREFIX}*", count=1000):
        client.delete(key)


@pytest.fixture(scope="session")
def celery_worker_process(django_db_setup: None, django_db_blocker: object, clean_redis: None) -> Iterator[Process]:
    """A real `celery worker` process on the test database, for the whole session."""
    worker = start_worker()
    yield worker
    worker.stop()


@pytest.fixture
def worker(celery_worker_process: Process, transactional_db: None) -> Process:
    """Tests that need steps executed: a live worker and committed (transactional) data."""
    return celery_worker_process


@pytest.fixture
def scheduler(transactional_db: None) -> Iterator[Process]:
    """A real `manage.py scheduler` ticking fast (cron, the reaper, waiting runs)."""
    process = start_scheduler(NOMAFLOW_SCHEDULER_TICK_S="0.2")
    yield process
    process.stop()


@pytest.fixture(scope="session")
def slapd() -> Iterator[LdapServer]:
    """A private slapd with ~5,000 people and the role groups, once per session."""
    server = start_slapd()
    yield server
    stop_slapd(server)


@pytest.fixture
def run(db: None) -> Run:
    """A queued run of a one-step job, with one log line (for pages and admin views)."""
    job = make_job({"callable": "workers.builtins:noop"})
    run, _ = run_trigger(job_id=job.id, triggered_by="cli")
    logstore.persist(run.id, [logstore.entry("INFO", "hello", "F0001")])
    return run


@pytest.fixture
def server() -> Iterator[LocalServer]:
    """A local HTTP server (tests/http_server.py) that records what it is sent."""
    with running_server() as server:
        yield server


# Tests that start real processes (a worker, the scheduler, daphne, make run) or drive
# Chromium are marked, so `pytest -m "not integration and not browser"` runs in a minute.
PROCESS_FIXTURES = {"worker", "celery_worker_process", "scheduler", "daphne"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.name.startswith("test_browser_"):
            item.add_marker(pytest.mark.browser)
        elif "integration" in item.path.parts or PROCESS_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)

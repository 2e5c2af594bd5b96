"""/livez and /readyz (nomaflow/health.py) through Django's test client: no login needed,
the real database and Redis checked, 503 naming what fails, and no secret in the body."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.db.migrations.recorder import MigrationRecorder
from django.test import Client, override_settings

from nomaflow import health

ALL_OK = {"database": "ok", "redis": "ok", "migrations": "ok"}
CLOSED_REDIS_WITH_PASSWORD = "redis://:hunter2@127.0.0.1:1/0"  # port 1: nothing listens


def get(path: str, **extra: Any) -> Any:
    return Client().get(path, **extra)


def test_livez_answers_without_login_or_a_query() -> None:
    response = get("/livez")  # no `db` fixture: a query would raise
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert "no-cache" in response["Cache-Control"]


def test_livez_does_not_ask_redis() -> None:
    with override_settings(REDIS_URL=CLOSED_REDIS_WITH_PASSWORD):
        assert get("/livez").status_code == 200


def test_readyz_is_200_with_every_check_ok(db: None) -> None:
    response = get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": ALL_OK}


def test_readyz_is_503_naming_redis_when_it_is_unreachable(db: None) -> None:
    with override_settings(REDIS_URL=CLOSED_REDIS_WITH_PASSWORD):
        response = get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["redis"] == "unreachable: ConnectionError (Connection refused)"
    assert body["checks"]["database"] == "ok" and body["checks"]["migrations"] == "ok"


def test_readyz_shows_no_secret_nor_address_of_what_it_checks(db: None) -> None:
    with override_settings(REDIS_URL=CLOSED_REDIS_WITH_PASSWORD):
        text = get("/readyz").content.decode()
    assert "hunter2" not in text and "127.0.0.1" not in text and "redis://" not in text


def test_readyz_names_unapplied_migrations(db: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """One migration's record removed (inside the test's transaction, rolled back after)."""
    monkeypatch.setattr(health, "_all_migrations_applied", False)  # earlier tests cached "ok"
    latest = MigrationRecorder(connection).migration_qs.filter(app="runs").latest("id")
    latest.delete()
    response = get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["migrations"] == f"unapplied: 1 (runs.{latest.name}); run manage.py migrate"


def test_probes_only_read() -> None:
    assert Client().post("/livez").status_code == 405
    assert Client().post("/readyz").status_code == 405


@override_settings(SECURE_SSL_REDIRECT=True)
def test_probes_over_plain_http_are_not_redirected_to_https(db: None) -> None:
    """A probe calls the process itself, over HTTP: the redirect would fail it."""
    client = Client()  # its middleware is built now, with the redirect on
    assert client.get("/nomaflow/login/").status_code == 301
    assert client.get("/livez").status_code == 200
    assert client.get("/readyz").status_code == 200


def test_probes_are_not_in_the_api_schema(viewer: Any) -> None:
    client = Client()
    client.force_login(viewer)
    paths = client.get("/api/v1/schema/?format=json").json()["paths"]
    assert not [path for path in paths if "livez" in path or "readyz" in path]

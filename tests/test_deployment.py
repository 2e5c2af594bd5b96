"""Deployment settings (issue 12, item 8): the production environment the README documents
passes `check --deploy`, a missing or published SECRET_KEY stops the process, `make run`
keeps a generated key, and every page carries a Content-Security-Policy with no inline
script (which the templates do not need)."""

from __future__ import annotations

import os
import re
import runpy
import secrets
import stat
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import yaml
from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import ImproperlyConfigured
from django.test import Client

from tests.factories import make_job
from tests.processes import ROOT

SETTINGS_FILE = ROOT / "nomaflow" / "settings.py"
TEMPLATES = ROOT / "frontend" / "templates"

# README, "Security model": the environment of a production deployment behind an HTTPS proxy.
PRODUCTION_ENV = {
    "DEBUG": "false",
    "ALLOWED_HOSTS": "nomaflow.example.org",
    "CSRF_TRUSTED_ORIGINS": "https://nomaflow.example.org",
    "SESSION_COOKIE_SECURE": "true",
    "CSRF_COOKIE_SECURE": "true",
    "SECURE_SSL_REDIRECT": "true",
    "SECURE_HSTS_SECONDS": "31536000",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS": "true",
    "SECURE_HSTS_PRELOAD": "true",
    "SECURE_PROXY_SSL_HEADER": "X-Forwarded-Proto:https",
}


def manage(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """manage.py in a clean environment (none of the test session's variables), var/ in tmp_path."""
    db = settings.DATABASES["default"]
    base = {
        "PATH": os.environ["PATH"],
        "NOMAFLOW_VAR_DIR": str(tmp_path),
        "DATABASE_URL": f"postgresql://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
    }
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env={**base, **env}, capture_output=True, text=True, timeout=120
    )


def test_check_deploy_is_clean_with_the_documented_production_environment(tmp_path: Path) -> None:
    done = manage(tmp_path, "check", "--deploy", "--fail-level", "WARNING",
                  SECRET_KEY=secrets.token_urlsafe(50), **PRODUCTION_ENV)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no issues" in done.stdout


@pytest.mark.parametrize("key", [None, "dev-insecure-secret-key-change-me", "change-me-in-production"])
def test_debug_off_refuses_to_start_without_a_secret_key_of_its_own(tmp_path: Path, key: str | None) -> None:
    done = manage(tmp_path, "check", **({} if key is None else {"SECRET_KEY": key}), **PRODUCTION_ENV)
    assert done.returncode != 0
    assert "SECRET_KEY is not set (or is the insecure dev key) and DEBUG is off" in done.stderr
    assert "secrets.token_urlsafe(50)" in done.stderr  # the fix


def test_debug_off_starts_with_the_key_make_run_keeps(tmp_path: Path) -> None:
    (tmp_path / "secret-key").write_text(secrets.token_urlsafe(50))
    done = manage(tmp_path, "check", **PRODUCTION_ENV)
    assert done.returncode == 0, done.stderr


def settings_with(monkeypatch: pytest.MonkeyPatch, **env: str) -> dict[str, object]:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(SETTINGS_FILE))


def test_https_switches_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    off = settings_with(monkeypatch)
    assert (off["SESSION_COOKIE_SECURE"], off["CSRF_COOKIE_SECURE"], off["SECURE_SSL_REDIRECT"]) == (False,) * 3
    assert (off["SECURE_HSTS_SECONDS"], off["SECURE_PROXY_SSL_HEADER"]) == (0, None)

    on = settings_with(monkeypatch, **PRODUCTION_ENV)
    assert (on["SESSION_COOKIE_SECURE"], on["CSRF_COOKIE_SECURE"], on["SECURE_SSL_REDIRECT"]) == (True,) * 3
    assert (on["SECURE_HSTS_SECONDS"], on["SECURE_HSTS_INCLUDE_SUBDOMAINS"], on["SECURE_HSTS_PRELOAD"]) == (
        31536000, True, True,
    )  # fmt: skip
    assert on["SECURE_PROXY_SSL_HEADER"] == ("HTTP_X_FORWARDED_PROTO", "https")


def test_a_malformed_proxy_header_names_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ImproperlyConfigured, match="use Header-Name:value, e.g. X-Forwarded-Proto:https"):
        settings_with(monkeypatch, SECURE_PROXY_SSL_HEADER="X-Forwarded-Proto")


# --- make run and docker compose ------------------------------------------------------


@pytest.fixture
def dev_script() -> ModuleType:
    """scripts/dev.py as a module (it is a script, not a package)."""
    namespace = runpy.run_path(str(ROOT / "scripts" / "dev.py"), run_name="dev")
    module = ModuleType("dev")
    module.__dict__.update(namespace)
    return module


def test_make_run_generates_the_secret_key_once_readable_only_by_its_owner(
    dev_script: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SECRET_KEY")
    dev_script.ensure_secret_key(tmp_path)
    key_file = tmp_path / "secret-key"
    first = key_file.read_text()
    assert len(first) >= 50 and stat.S_IMODE(key_file.stat().st_mode) == 0o600

    dev_script.ensure_secret_key(tmp_path)  # the next `make run`: the same key, sessions survive
    assert key_file.read_text() == first


def test_make_run_leaves_a_secret_key_from_the_environment_alone(
    dev_script: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SECRET_KEY", secrets.token_urlsafe(50))
    dev_script.ensure_secret_key(tmp_path)
    assert not (tmp_path / "secret-key").exists()


def test_docker_compose_has_no_default_secret_key() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    key = compose["x-nomaflow"]["environment"]["SECRET_KEY"]
    assert key.startswith("${SECRET_KEY:?"), key  # `docker compose up` stops with the message
    assert "change-me" not in (ROOT / "docker-compose.yml").read_text()


# --- Content-Security-Policy ----------------------------------------------------------

# Inline script (json_script's application/json blocks are data, not code), event handler
# attributes, style attributes and blocks, javascript: URLs.
INLINE = re.compile(
    r"<script(?![^>]*\bsrc=)(?![^>]*application/json)[^>]*>|<[a-z][^>]*\s(?:on[a-z]+|style)\s*=|<style"
    r"|(?:href|src|action)\s*=\s*[\"']?\s*javascript:",
    re.I,
)


def test_templates_need_no_inline_script_or_style() -> None:
    found = [
        f"{path.relative_to(ROOT)}: {match.group(0)!r}"
        for path in sorted(TEMPLATES.rglob("*.html"))
        for match in INLINE.finditer(path.read_text())
    ]
    assert not found


def csp_of(response: object) -> dict[str, list[str]]:
    header = response["Content-Security-Policy"]  # type: ignore[index]
    return {name: values for name, *values in (part.split() for part in header.split(";") if part.strip())}


def test_pages_carry_a_policy_without_inline_script(db: None, viewer: User) -> None:
    make_job({"callable": "workers.builtins:noop"}, id="etl")
    client = Client()
    client.force_login(viewer)
    for path in ["/nomaflow/", "/nomaflow/runs/", "/nomaflow/schedule/", "/api/v1/docs/"]:
        response = client.get(path)
        assert response.status_code == 200, path
        policy = csp_of(response)
        assert policy["script-src"] == ["'self'"] and policy["style-src"] == ["'self'"], path
        assert policy["frame-ancestors"] == ["'none'"] and policy["connect-src"] == ["'self'"], path
        assert not INLINE.search(response.content.decode()), path
    assert "Content-Security-Policy" in Client().get("/nomaflow/login/")

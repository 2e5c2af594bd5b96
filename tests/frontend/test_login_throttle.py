"""Login throttling (django-axes; issue 12, item 9): both login pages, every backend (local
and the directory), a lockout per user name and address, a clear 429 answer."""

from __future__ import annotations

import runpy
from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone
from pytest_django.fixtures import SettingsWrapper

from tests.ldap_server import SERVICE_DN, SERVICE_PW, SUFFIX, LdapServer
from tests.processes import ROOT

SITE, ADMIN = "/nomaflow/login/", "/admin/login/"
LIMIT = 5  # NOMAFLOW_LOGIN_FAILURE_LIMIT's default


def login(username: str, password: str, page: str = SITE, address: str = "127.0.0.1") -> tuple[int, str]:
    response = Client(REMOTE_ADDR=address).post(f"{page}?next=/nomaflow/", {"username": username, "password": password})
    return response.status_code, response.content.decode()


def fail(times: int, username: str = "vera", page: str = SITE) -> list[int]:
    return [login(username, "wrong", page)[0] for _ in range(times)]


def test_the_fifth_failure_locks_that_name_from_that_address(viewer: User) -> None:
    assert fail(LIMIT - 1) == [200] * (LIMIT - 1)  # the form again, with its error
    status, page = login("vera", "wrong")
    assert status == 429
    assert "Too many sign-in attempts" in page and "Try again in 15 minutes" in page

    assert login("vera", "pw-vera")[0] == 429  # the right password does not get through either
    response = Client().post(SITE, {"username": "vera", "password": "pw-vera"})
    assert response["Retry-After"] == "900"
    assert "Content-Security-Policy" in response  # the lockout page is one of ours


def test_others_are_not_locked_out_by_a_guesser(viewer: User, operator: User) -> None:
    fail(LIMIT)
    assert login("otto", "pw-otto")[0] == 302  # another name, same address
    assert login("vera", "pw-vera", address="10.1.2.3")[0] == 302  # the same name, another address


def test_the_admin_login_page_is_throttled_too(db: None) -> None:
    User.objects.create_superuser("root", password="pw-root")
    assert fail(LIMIT, "root", ADMIN)[-1] == 429
    assert login("root", "pw-root", ADMIN)[0] == 429
    assert login("root", "pw-root", SITE)[0] == 429  # one count for both pages


def test_spellings_of_one_name_share_a_count(viewer: User) -> None:
    statuses = [login(name, "wrong")[0] for name in ["vera", "Vera", "VERA", " vera", "vEra"]]
    assert statuses[-1] == 429


def test_a_good_password_clears_the_count(viewer: User) -> None:
    fail(LIMIT - 1)
    assert login("vera", "pw-vera")[0] == 302
    assert fail(LIMIT - 1) == [200] * (LIMIT - 1)


def test_the_lockout_ends_after_the_cool_off(viewer: User) -> None:
    fail(LIMIT)
    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(seconds=901))
    assert login("vera", "pw-vera")[0] == 302


def test_directory_logins_are_throttled(slapd: LdapServer, settings: SettingsWrapper, roles: None) -> None:
    settings.LDAP_SERVER_URI = slapd.url
    settings.LDAP_BIND_DN, settings.LDAP_BIND_PASSWORD = SERVICE_DN, SERVICE_PW
    settings.LDAP_USER_BASE_DN, settings.LDAP_USER_ATTR = f"ou=staff,{SUFFIX}", "uid"
    settings.AUTHENTICATION_BACKENDS = [
        "axes.backends.AxesStandaloneBackend",
        "django.contrib.auth.backends.ModelBackend",
        "nomaflow.ldap_auth.LDAPBackend",
    ]
    assert login("alice", "pw-alice")[0] == 302  # a directory user signs in
    assert fail(LIMIT, "alice")[-1] == 429
    assert login("alice", "pw-alice")[0] == 429


def test_the_limit_and_the_cool_off_are_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    defaults = runpy.run_path(str(ROOT / "nomaflow" / "settings.py"))
    assert (defaults["AXES_FAILURE_LIMIT"], defaults["AXES_COOLOFF_TIME"]) == (5, timedelta(seconds=900))
    monkeypatch.setenv("NOMAFLOW_LOGIN_FAILURE_LIMIT", "3")
    monkeypatch.setenv("NOMAFLOW_LOGIN_COOLOFF_S", "60")
    changed = runpy.run_path(str(ROOT / "nomaflow" / "settings.py"))
    assert (changed["AXES_FAILURE_LIMIT"], changed["AXES_COOLOFF_TIME"]) == (3, timedelta(seconds=60))

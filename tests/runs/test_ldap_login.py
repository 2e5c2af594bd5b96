"""LDAP login (nomaflow/ldap_auth.py) against a real slapd: roles from directory groups, refusals."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest
from django.contrib.auth import authenticate
from django.contrib.auth.models import User
from django.core.exceptions import ImproperlyConfigured
from django.test import Client
from ldap3 import MODIFY_ADD, MODIFY_DELETE, MODIFY_REPLACE
from pytest_django.fixtures import SettingsWrapper

from nomaflow.ldap_auth import LDAPBackend
from tests.conftest import api_client
from tests.factories import make_job
from tests.ldap_server import SERVICE_DN, SERVICE_PW, STAFF, SUFFIX, LdapServer

SETTINGS_FILE = Path(__file__).resolve().parents[2] / "nomaflow" / "settings.py"
LDAP_BACKEND = "nomaflow.ldap_auth.LDAPBackend"
GROUP = "cn={},ou=groups," + SUFFIX
ERIN = f"uid=erin,ou=staff,{SUFFIX}"


@pytest.fixture
def ldap_on(slapd: LdapServer, settings: SettingsWrapper, roles: None) -> LdapServer:
    settings.LDAP_SERVER_URI = slapd.url
    settings.LDAP_BIND_DN, settings.LDAP_BIND_PASSWORD = SERVICE_DN, SERVICE_PW
    settings.LDAP_USER_BASE_DN, settings.LDAP_USER_ATTR = f"ou=staff,{SUFFIX}", "uid"
    settings.LDAP_GROUP_BASE_DN = f"ou=groups,{SUFFIX}"
    # Spelled differently from the directory on purpose: DNs are compared normalised.
    settings.LDAP_GROUP_VIEWER = GROUP.format("viewer")
    settings.LDAP_GROUP_OPERATOR = GROUP.format("operator").upper()
    settings.LDAP_GROUP_EDITOR = GROUP.format("editor").replace(",", ", ")
    settings.AUTHENTICATION_BACKENDS = ["django.contrib.auth.backends.ModelBackend", LDAP_BACKEND]
    return slapd


def site_login(username: str, password: str, page: str = "/nomaflow/login/") -> tuple[Client, int, str]:
    client = Client()
    response = client.post(f"{page}?next=/nomaflow/", {"username": username, "password": password})
    return client, response.status_code, response.get("Location", "")


def roles_of(username: str) -> set[str]:
    return set(User.objects.get(username=username).groups.values_list("name", flat=True))


@pytest.mark.parametrize(("username", "role"), [("alice", "viewer"), ("bob", "operator"), ("carol", "editor")])
def test_each_role_signs_in_through_the_login_page(ldap_on: LdapServer, username: str, role: str) -> None:
    client, status, location = site_login(username, f"pw-{username}")

    assert (status, location) == (302, "/nomaflow/")
    assert client.get("/nomaflow/").status_code == 200
    assert client.session["_auth_user_backend"] == LDAP_BACKEND
    user = User.objects.get(username=username)
    assert roles_of(username) == {role}
    assert (user.email, user.first_name, user.last_name) == (f"{username}@example.org", username.title(), "Staff")
    assert user.is_staff == (role == "editor") and not user.is_superuser  # the admin is for editors
    assert not user.has_usable_password()  # only the directory knows it


@pytest.mark.parametrize(("username", "admitted"), [("alice", False), ("bob", False), ("carol", True)])
def test_only_an_editor_signs_in_to_the_admin(ldap_on: LdapServer, username: str, admitted: bool) -> None:
    client, status, location = site_login(username, f"pw-{username}", page="/admin/login/")

    assert (status, location) == ((302, "/nomaflow/") if admitted else (200, ""))
    assert (client.get("/admin/").status_code == 200) is admitted


def test_the_api_accepts_the_session_and_applies_the_role(ldap_on: LdapServer) -> None:
    make_job({"callable": "workers.builtins:noop"}, id="etl")
    viewer, _, _ = site_login("alice", "pw-alice")
    operator, _, _ = site_login("bob", "pw-bob")

    assert viewer.get("/api/v1/jobs/").status_code == 200
    assert viewer.post("/api/v1/jobs/etl/runs/", {}, content_type="application/json").status_code == 403
    response = operator.post("/api/v1/jobs/etl/runs/", {}, content_type="application/json")
    assert response.status_code == 201, response.content
    assert response.json()["triggered_by"] == "user:bob"
    assert api_client(None).get("/api/v1/jobs/").status_code == 401


def test_roles_follow_the_directory_at_each_login(ldap_on: LdapServer) -> None:
    assert authenticate(None, username="erin", password="pw-erin") is not None
    assert roles_of("erin") == {"operator"} and not User.objects.get(username="erin").is_staff
    with ldap_on.admin() as directory:
        try:
            directory.modify(GROUP.format("operator"), {"member": [(MODIFY_DELETE, [ERIN])]})
            directory.modify(GROUP.format("editor"), {"member": [(MODIFY_ADD, [ERIN])]})
            assert authenticate(None, username="ERIN", password="pw-erin") is not None  # uid matches any case
            assert roles_of("erin") == {"editor"} and User.objects.get(username="erin").is_staff

            directory.modify(GROUP.format("editor"), {"member": [(MODIFY_DELETE, [ERIN])]})
            assert authenticate(None, username="erin", password="pw-erin") is None  # no role left: refused
            assert roles_of("erin") == set() and not User.objects.get(username="erin").is_staff
        finally:  # the directory is shared by the session: put the groups back as loaded
            for role in ("operator", "editor"):
                members = [f"uid={uid},ou=staff,{SUFFIX}" for uid, roles in STAFF.items() if role in roles]
                directory.modify(GROUP.format(role), {"member": [(MODIFY_REPLACE, members)]})


def test_a_directory_user_without_a_role_is_refused_and_not_created(ldap_on: LdapServer) -> None:
    assert authenticate(None, username="dave", password="pw-dave") is None
    assert not User.objects.filter(username="dave").exists()


@pytest.mark.parametrize(
    ("username", "password"),
    [
        ("*", "pw-alice"),
        (")(uid=*", "pw-alice"),
        ("alice)(uid=*", "pw-alice"),
        ("ali*", "pw-alice"),
        ("alice\x00", "pw-alice"),
        ("alice\\2a", "pw-alice"),
        ("uid=alice,ou=staff,dc=example,dc=org", "pw-alice"),
        ("alice", ""),  # an unauthenticated bind would "succeed"
        ("alice", "pw-alice\x00"),
        ("alice", "wrong"),
        ("nobody", "pw-nobody"),
        ("", "pw-alice"),
    ],
)
def test_injection_attempts_and_bad_credentials_are_refused(ldap_on: LdapServer, username: str, password: str) -> None:
    # The backend itself (ModelBackend, asked first by authenticate(), cannot look up a NUL).
    assert LDAPBackend().authenticate(None, username=username, password=password) is None
    _, status, _ = site_login(username, password)
    assert status == 200  # the form again, with an error
    assert not User.objects.exists()


def test_a_local_account_is_not_taken_over_by_the_directory(ldap_on: LdapServer) -> None:
    local = User.objects.create_user("alice", password="local-pw")

    assert authenticate(None, username="alice", password="pw-alice") is None
    assert authenticate(None, username="alice", password="local-pw") == local


def test_without_group_sync_any_directory_user_signs_in_and_roles_stay_as_set(
    ldap_on: LdapServer, settings: SettingsWrapper
) -> None:
    settings.LDAP_GROUP_BASE_DN = ""

    user = authenticate(None, username="dave", password="pw-dave")

    assert user is not None and roles_of("dave") == set() and not user.is_staff


def test_ldap_off_means_local_accounts_only(ldap_on: LdapServer, settings: SettingsWrapper) -> None:
    settings.LDAP_SERVER_URI = ""

    assert authenticate(None, username="alice", password="pw-alice") is None
    _, status, _ = site_login("alice", "pw-alice")
    assert status == 200


def test_settings_enable_the_backend_only_with_a_server_uri(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LDAP_SERVER_URI", raising=False)
    assert runpy.run_path(str(SETTINGS_FILE))["AUTHENTICATION_BACKENDS"] == [
        "axes.backends.AxesStandaloneBackend",  # login throttling, before any password is tried
        "django.contrib.auth.backends.ModelBackend",
    ]

    monkeypatch.setenv("LDAP_SERVER_URI", "ldaps://ldap.example.org")
    monkeypatch.setenv("LDAP_USER_BASE_DN", "ou=people,dc=example,dc=org")
    assert runpy.run_path(str(SETTINGS_FILE))["AUTHENTICATION_BACKENDS"][-1] == LDAP_BACKEND

    monkeypatch.setenv("LDAP_SERVER_URI", "ldap.example.org")
    with pytest.raises(ImproperlyConfigured, match="use ldap://host:port or ldaps://host:port"):
        runpy.run_path(str(SETTINGS_FILE))

"""REST API: /api/v1/connectors/ (keyed by name, secrets masked on read)."""

from __future__ import annotations

from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import User

from core.models import AuditEvent
from jobs.models import Connector
from tests.conftest import api_client
from tests.factories import ConnectorFactory, make_job

CONNECTORS = "/api/v1/connectors/"
HTTP_OPTIONS = {
    "headers": {"X-Team": "data"},
    "auth": {"type": "bearer", "token": "tok-123"},
    "retry": [{"client_secret": "s3"}],
    "password_hint": "",
}


def url(name: str) -> str:
    return f"{CONNECTORS}{name}/"


@pytest.fixture
def warehouse(db: None) -> Connector:
    return ConnectorFactory(
        name="warehouse", url="postgresql://etl:hunter2@db.example:5432/dw", options={"password": "x"}
    )


# --- who may do what ---------------------------------------------------------------------


def test_anonymous_is_401_and_outsider_is_403(outsider: User, warehouse: Connector) -> None:
    assert api_client(None).get(CONNECTORS).status_code == 401
    assert api_client(None).get(url("warehouse")).status_code == 401
    assert api_client(outsider).get(CONNECTORS).status_code == 403
    assert api_client(outsider).get(url("warehouse")).status_code == 403
    assert api_client(outsider).delete(url("warehouse")).status_code == 403
    assert Connector.objects.filter(name="warehouse").exists()


@pytest.mark.parametrize("role", ["viewer", "operator"])
def test_viewer_and_operator_read_but_cannot_write(
    role: str, request: pytest.FixtureRequest, warehouse: Connector
) -> None:
    client = api_client(request.getfixturevalue(role))
    assert client.get(CONNECTORS).status_code == 200
    assert client.get(url("warehouse")).status_code == 200
    body = {"name": "other", "kind": "sqlite", "url": "sqlite:///x.db"}
    assert client.post(CONNECTORS, body, format="json").status_code == 403
    assert client.patch(url("warehouse"), {"url": "postgresql://h/db"}, format="json").status_code == 403
    assert client.delete(url("warehouse")).status_code == 403
    assert list(Connector.objects.values_list("name", "url")) == [("warehouse", warehouse.url)]


# --- masking -------------------------------------------------------------------------------


def test_passwords_are_masked_on_read(viewer: User, warehouse: Connector) -> None:
    ConnectorFactory(name="api", kind="http", url="https://api.example/v1", options=HTTP_OPTIONS)
    listed = {c["name"]: c for c in api_client(viewer).get(CONNECTORS).json()}
    assert listed["warehouse"] == {
        "name": "warehouse",
        "kind": "postgres",
        "url": "postgresql://etl:***@db.example:5432/dw",
        "options": {"password": "***"},
    }
    assert listed["api"]["url"] == "https://api.example/v1"
    assert listed["api"]["options"] == {
        "headers": {"X-Team": "data"},
        "auth": {"type": "***", "token": "***"},  # everything under a secret key
        "retry": [{"client_secret": "***"}],
        "password_hint": "",
    }
    assert "hunter2" not in str(api_client(viewer).get(url("warehouse")).content)


def test_sig_code_pass_pw_and_lists_under_secret_keys_are_masked(viewer: User) -> None:
    options = {"sig": "s1", "code": "c1", "pass": "p1", "pw": "p2", "api_keys": ["k1", "k2"], "zipcode": "75001"}
    ConnectorFactory(name="api", kind="http", url="https://api.example/v1?sig=s3&region=eu", options=options)
    shown = api_client(viewer).get(url("api")).json()
    assert shown["url"] == "https://api.example/v1?sig=***&region=eu"
    assert shown["options"] == {**{k: "***" for k in ("sig", "code", "pass", "pw")}, "api_keys": ["***", "***"],
                                "zipcode": "75001"}  # fmt: skip


def test_a_url_with_nothing_secret_comes_back_byte_for_byte(viewer: User) -> None:
    ConnectorFactory(name="local", kind="sqlite", url="sqlite:////abs/path/to.db")
    assert api_client(viewer).get(url("local")).json()["url"] == "sqlite:////abs/path/to.db"


def test_writing_the_mask_back_keeps_the_stored_secrets(editor: User) -> None:
    ConnectorFactory(name="api", kind="http", url="https://u:pw@api.example/v1", options=HTTP_OPTIONS)
    client = api_client(editor)
    shown = client.get(url("api")).json()
    shown["options"]["headers"]["X-Team"] = "ops"
    response = client.put(url("api"), shown, format="json")
    assert response.status_code == 200, response.json()
    stored = Connector.objects.get(name="api")
    assert stored.url == "https://u:pw@api.example/v1"
    assert stored.options == {**HTTP_OPTIONS, "headers": {"X-Team": "ops"}}


def test_a_new_password_replaces_the_stored_one(editor: User, warehouse: Connector) -> None:
    response = api_client(editor).patch(url("warehouse"), {"url": "postgresql://etl:new@db2/dw"}, format="json")
    assert response.status_code == 200
    assert response.json()["url"] == "postgresql://etl:***@db2/dw"
    assert Connector.objects.get().url == "postgresql://etl:new@db2/dw"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"url": "postgresql://etl:***@evil.example:5432/dw"}, "url"),
        ({"url": "postgresql://etl:***@db.example:6543/dw"}, "url"),
        ({"url": "postgresql://etl:***@db.example:5432/dw?host=evil.example"}, "url"),
        ({"url": "postgresql://etl:new@evil.example/dw", "options": {"password": "***"}}, "options.password"),
    ],
)
def test_the_mask_towards_a_new_host_or_port_is_400_and_keeps_nothing(
    editor: User, warehouse: Connector, change: dict[str, Any], field: str
) -> None:
    response = api_client(editor).patch(url("warehouse"), change, format="json")
    assert response.status_code == 400, response.json()
    assert list(response.json()["errors"]) == [field]
    assert "give the secret again" in response.json()["detail"]
    assert Connector.objects.get().url == "postgresql://etl:hunter2@db.example:5432/dw"
    assert not AuditEvent.objects.exists()


def test_an_authorization_header_never_follows_the_connector_to_a_new_host(editor: User) -> None:
    options = {"headers": {"Authorization": "Bearer tok-123"}}
    ConnectorFactory(name="api", kind="http", url="https://api.example/v1", options=options)
    client = api_client(editor)
    shown = client.get(url("api")).json()
    moved = client.put(url("api"), {**shown, "url": "https://attacker.example/v1"}, format="json")
    assert moved.status_code == 400
    assert list(moved.json()["errors"]) == ["options.headers.Authorization"]
    kept = client.put(url("api"), {**shown, "url": "https://api.example/v2"}, format="json")
    assert kept.status_code == 200, kept.json()
    assert Connector.objects.get().options == options
    assert Connector.objects.get().url == "https://api.example/v2"


def test_the_mask_without_a_stored_secret_is_400(editor: User) -> None:
    body = {"name": "dw", "kind": "postgres", "url": "postgresql://etl:***@db/dw"}
    response = api_client(editor).post(CONNECTORS, body, format="json")
    assert response.status_code == 400
    assert "url" in response.json()["errors"]
    assert not Connector.objects.exists()


def test_audit_trail_never_holds_a_secret(editor: User, warehouse: Connector) -> None:
    api_client(editor).patch(url("warehouse"), {"url": "postgresql://etl:s3cret@db/dw"}, format="json")
    event = AuditEvent.objects.get(object_type="connector")
    assert (event.actor, event.action, event.object_id) == ("user:edna", "update", "warehouse")
    assert event.diff["url"] == ["postgresql://etl:***@db.example:5432/dw", "postgresql://etl:***@db/dw"]
    assert "s3cret" not in str(event.diff) and "hunter2" not in str(event.diff)


# --- create, update, delete ----------------------------------------------------------------


def test_editor_creates_a_connector_with_env_references(editor: User) -> None:
    body = {"name": "dw", "kind": "postgres", "url": "postgresql://etl:${NOMAFLOW_SECRET_DW_PASSWORD}@db/dw"}
    response = api_client(editor).post(CONNECTORS, body, format="json")
    assert response.status_code == 201, response.json()
    assert response.json() == {**body, "url": "postgresql://etl:***@db/dw", "options": {}}
    assert Connector.objects.get().url == body["url"]
    assert AuditEvent.objects.get().action == "create"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "dw", "kind": "oracle", "url": "oracle://x"}, "kind"),
        ({"name": "dw", "kind": "postgres", "url": "mysql://db/dw"}, "url"),
        ({"name": "dw", "kind": "http", "url": "ftp://host"}, "url"),
        ({"name": "dw", "kind": "ldap", "url": "ldaps://dir", "options": "bind"}, "options"),
        ({"name": "no spaces", "kind": "sqlite", "url": "sqlite:///x.db"}, "name"),
        ({"kind": "sqlite", "url": "sqlite:///x.db"}, "name"),
    ],
)
def test_bad_connector_is_400_and_creates_nothing(editor: User, body: dict[str, Any], field: str) -> None:
    response = api_client(editor).post(CONNECTORS, body, format="json")
    assert response.status_code == 400
    assert field in response.json()["errors"]
    assert not Connector.objects.exists()


@pytest.mark.parametrize(
    ("spec", "field", "name"),
    [
        ({"kind": "postgres", "url": "${DATABASE_URL}"}, "url", "DATABASE_URL"),
        ({"kind": "postgres", "url": "postgresql://etl:${SECRET_KEY}@db/dw"}, "url", "SECRET_KEY"),
        ({"kind": "http", "url": "https://h", "options": {"headers": {"X-Pw": "${EMAIL_HOST_PASSWORD}"}}},
         "options.headers.X-Pw", "EMAIL_HOST_PASSWORD"),
        ({"kind": "ldap", "url": "ldap://dir", "options": {"password": "${DJANGO_SETTINGS_MODULE}"}},
         "options.password", "DJANGO_SETTINGS_MODULE"),
    ],
)  # fmt: skip
def test_a_reference_to_a_nomaflow_setting_is_400_naming_it(
    editor: User, spec: dict[str, Any], field: str, name: str
) -> None:
    response = api_client(editor).post(CONNECTORS, {"name": "dw", **spec}, format="json")
    assert response.status_code == 400
    message = response.json()["errors"][field][0]
    assert f"${{{name}}} is one of nomaflow's own settings and is never resolved" in message
    assert not Connector.objects.exists()


def test_a_reference_outside_the_secret_prefix_is_400_with_the_rule(editor: User) -> None:
    body = {"name": "dw", "kind": "postgres", "url": "postgresql://etl:${HOME}@db/dw"}
    response = api_client(editor).post(CONNECTORS, body, format="json")
    assert response.status_code == 400
    assert "${HOME} is not a secret reference; use a name starting with NOMAFLOW_SECRET_" in response.json()["detail"]
    assert not Connector.objects.exists()


def test_a_postgres_connector_aiming_at_nomaflows_own_database_is_400(editor: User) -> None:
    own = settings.DATABASES["default"]
    for target in (
        f"postgresql://postgres@{own['HOST']}:{own['PORT']}/{own['NAME']}",
        f"postgresql://x@localhost/{own['NAME']}",
    ):
        response = api_client(editor).post(CONNECTORS, {"name": "dw", "kind": "postgres", "url": target}, format="json")
        assert response.status_code == 400, target
        assert "nomaflow's own database" in response.json()["errors"]["url"][0]
    assert not Connector.objects.exists()


def test_connector_name_cannot_change(editor: User, warehouse: Connector) -> None:
    response = api_client(editor).patch(url("warehouse"), {"name": "dw"}, format="json")
    assert response.status_code == 400
    assert list(Connector.objects.values_list("name", flat=True)) == ["warehouse"]


def test_delete_of_an_unused_connector(editor: User, warehouse: Connector) -> None:
    assert api_client(editor).delete(url("warehouse")).status_code == 204
    assert not Connector.objects.exists()
    assert AuditEvent.objects.get().action == "delete"


def test_delete_of_a_connector_in_use_is_409_naming_the_steps(editor: User, warehouse: Connector) -> None:
    make_job({"type": "sql_query", "op_kwargs": {"connector": "warehouse", "sql": "select 1"}}, id="etl")
    response = api_client(editor).delete(url("warehouse"))
    assert response.status_code == 409
    assert "etl/F0001" in response.json()["detail"]
    assert Connector.objects.exists()


def test_unknown_connector_is_404(viewer: User) -> None:
    response = api_client(viewer).get(url("nope"))
    assert response.status_code == 404
    assert response.json()["detail"] == 'connector "nope" does not exist'

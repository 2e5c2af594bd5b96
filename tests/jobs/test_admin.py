"""The Django admin: pages render for a superuser, refuse others, hide secrets, trigger jobs."""

from __future__ import annotations

from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import Permission, User
from django.test import Client

from core.models import AuditEvent
from jobs.models import Connector, Job
from runs.models import Run
from tests.factories import ConnectorFactory, admin_job_form, make_job

SECRET = "s3cr3t-pw"


@pytest.fixture
def admin_client(db: None) -> Client:
    client = Client()
    client.force_login(User.objects.create_superuser("root", password="pw-root"))
    return client


def test_every_admin_page_renders_for_a_superuser(admin_client: Client, run: Run) -> None:
    connector = ConnectorFactory()
    pages = [
        "/admin/", "/admin/jobs/connector/", f"/admin/jobs/connector/{connector.pk}/change/", "/admin/jobs/job/",
        "/admin/jobs/job/add/", f"/admin/jobs/job/{run.job_id}/change/", "/admin/runs/run/",
        f"/admin/runs/run/{run.pk}/change/", "/admin/runs/logline/", "/admin/core/auditevent/",
        f"/admin/core/auditevent/{AuditEvent.objects.get().pk}/change/",
        "/admin/runs/run/?state__exact=QUEUED&triggered_by=cli", "/admin/core/auditevent/?action=trigger",
    ]  # fmt: skip
    for page in pages:
        assert admin_client.get(page).status_code == 200, page


def test_run_page_is_read_only_with_steps_and_a_log_link(admin_client: Client, run: Run) -> None:
    html = admin_client.get(f"/admin/runs/run/{run.pk}/change/").content.decode()
    assert f'href="/api/v1/runs/{run.pk}/logs.txt"' in html
    assert "F0001" in html
    assert 'name="_save"' not in html
    assert admin_client.post(f"/admin/runs/run/{run.pk}/change/", {"state": "FAILED"}).status_code == 403
    assert admin_client.get("/admin/runs/run/add/").status_code == 403


def test_non_staff_user_is_sent_to_the_login_page(db: None) -> None:
    client = Client()
    client.force_login(User.objects.create_user("plain", password="pw-plain"))
    for page in ("/admin/", "/admin/jobs/job/", "/admin/runs/run/"):
        response = client.get(page)
        assert response.status_code == 302 and response["Location"].startswith("/admin/login/"), page


def test_connector_secrets_are_masked_in_list_and_form(admin_client: Client) -> None:
    connector = ConnectorFactory(url=f"postgresql://etl:{SECRET}@db:5432/dw", options={"auth": {"token": SECRET}})
    for page in ("/admin/jobs/connector/", f"/admin/jobs/connector/{connector.pk}/change/"):
        html = admin_client.get(page).content.decode()
        assert SECRET not in html and "etl:***@db:5432" in html, page


def post_connector(client: Client, connector: Connector, url: str, options: str) -> Any:
    data = {"name": connector.name, "kind": connector.kind, "url": url, "options": options}
    return client.post(f"/admin/jobs/connector/{connector.pk}/change/", data)


def test_posting_masked_secrets_back_keeps_the_stored_ones(admin_client: Client) -> None:
    connector = ConnectorFactory(url=f"postgresql://etl:{SECRET}@db/dw", options={"password": SECRET, "x": 1})
    response = post_connector(admin_client, connector, "postgresql://etl:***@db/dw2", '{"password": "***", "x": 2}')
    assert response.status_code == 302
    connector.refresh_from_db()
    assert connector.url == f"postgresql://etl:{SECRET}@db/dw2"
    assert connector.options == {"password": SECRET, "x": 2}


@pytest.mark.parametrize(
    ("url", "options"),
    [
        ("postgresql://etl:***@db2/dw", '{"password": "x"}'),
        ("postgresql://etl:new@db:6543/dw", '{"password": "***"}'),
    ],
)
def test_posting_the_mask_towards_a_new_host_or_port_asks_for_the_secret(
    admin_client: Client, url: str, options: str
) -> None:
    connector = ConnectorFactory(url=f"postgresql://etl:{SECRET}@db/dw", options={"password": SECRET})
    response = post_connector(admin_client, connector, url, options)
    assert response.status_code == 200
    html = response.content.decode()
    assert "give the secret again" in html and SECRET not in html
    connector.refresh_from_db()
    assert (connector.url, connector.options) == (f"postgresql://etl:{SECRET}@db/dw", {"password": SECRET})


@pytest.mark.parametrize(
    ("url", "options", "text"),
    [
        ("${DATABASE_URL}", "{}", "${DATABASE_URL} is one of nomaflow&#x27;s own settings"),
        ("postgresql://x@db/dw", '{"password": "${SECRET_KEY}"}', "options.password: ${SECRET_KEY} is one of"),
        ("postgresql://x@db/dw", '{"password": "${HOME}"}', "${HOME} is not a secret reference"),
    ],
)
def test_the_admin_refuses_references_the_api_refuses(admin_client: Client, url: str, options: str, text: str) -> None:
    connector = ConnectorFactory(url="postgresql://etl@db/dw")
    response = post_connector(admin_client, connector, url, options)
    assert response.status_code == 200
    assert text in response.content.decode()
    connector.refresh_from_db()
    assert connector.url == "postgresql://etl@db/dw"


def test_the_admin_refuses_a_connector_to_nomaflows_own_database(admin_client: Client) -> None:
    own = settings.DATABASES["default"]
    connector = ConnectorFactory(url="postgresql://etl@db/dw")
    response = post_connector(admin_client, connector, f"postgresql://postgres@127.0.0.1/{own['NAME']}", "{}")
    assert response.status_code == 200
    assert "nomaflow&#x27;s own database" in response.content.decode()
    connector.refresh_from_db()
    assert connector.url == "postgresql://etl@db/dw"


def test_the_admin_refuses_an_sqlite_file_outside_the_sqlite_dir(admin_client: Client) -> None:
    connector = ConnectorFactory(kind="sqlite", url="sqlite:///inside.db")
    response = post_connector(admin_client, connector, "sqlite:////etc/nomaflow.db", "{}")
    assert response.status_code == 200
    assert "NOMAFLOW_SQLITE_DIR" in response.content.decode()
    connector.refresh_from_db()
    assert connector.url == "sqlite:///inside.db"


def test_a_user_who_may_only_view_connectors_sees_no_secret(db: None, viewer: User) -> None:
    viewer.is_staff = True
    viewer.save()
    viewer.user_permissions.add(Permission.objects.get(codename="view_connector"))
    options = {"headers": {"Authorization": f"Bearer {SECRET}"}, "api_keys": [SECRET], "sig": SECRET}
    connector = ConnectorFactory(kind="http", url=f"https://u:{SECRET}@api.example/v1?code={SECRET}", options=options)
    client = Client()
    client.force_login(viewer)
    for page in ("/admin/jobs/connector/", f"/admin/jobs/connector/{connector.pk}/change/"):
        response = client.get(page)
        html = response.content.decode()
        assert response.status_code == 200, page
        assert SECRET not in html and "https://u:***@api.example/v1?code=***" in html, page
    assert 'name="_save"' not in html  # the read-only view page


def test_the_audit_page_masks_a_connector_diff_stored_under_an_older_rule(admin_client: Client) -> None:
    event = AuditEvent.objects.create(
        actor="user:edna", action="update", object_type="connector", object_id="api",
        diff={"url": [None, f"https://h/?sig={SECRET}"], "options": [{}, {"pw": SECRET, "api_keys": [SECRET]}]},
    )  # fmt: skip
    html = admin_client.get(f"/admin/core/auditevent/{event.pk}/change/").content.decode()
    assert SECRET not in html and "sig=***" in html


def test_trigger_action_creates_a_run_for_each_selected_job(admin_client: Client) -> None:
    jobs = [make_job({"callable": "workers.builtins:noop"}) for _ in range(2)]
    response = admin_client.post(
        "/admin/jobs/job/", {"action": "trigger_jobs", "_selected_action": [job.pk for job in jobs]}, follow=True
    )
    assert response.status_code == 200
    runs = Run.objects.filter(job__in=jobs)
    assert runs.count() == 2
    assert {r.triggered_by for r in runs} == {"user:root"}
    assert all(r.actor.username == "root" for r in runs)
    html = response.content.decode()
    assert all(f'<a href="/admin/runs/run/{r.pk}/change/">{r.pk}</a> queued' in html for r in runs)


def test_trigger_action_reports_errors_as_messages(admin_client: Client) -> None:
    job = Job.objects.create(id="empty", name="Empty")
    data = {"action": "trigger_jobs", "_selected_action": [job.pk]}
    response = admin_client.post("/admin/jobs/job/", data, follow=True)
    assert "&quot;empty&quot; not triggered: job &quot;empty&quot; has no steps" in response.content.decode()
    assert not Run.objects.exists()


def test_trigger_action_is_offered_only_to_operators(db: None, viewer: User) -> None:
    viewer.is_staff = True
    viewer.save()
    viewer.user_permissions.add(*Permission.objects.filter(codename__in=["view_job", "change_job"]))
    client = Client()
    client.force_login(viewer)
    make_job({"callable": "workers.builtins:noop"})
    assert "trigger_jobs" not in client.get("/admin/jobs/job/").content.decode()


def test_saving_a_job_with_an_invalid_step_shows_the_error(admin_client: Client) -> None:
    Connector.objects.create(name="dw", kind="postgres", url="postgresql://x@h/db")
    data = admin_job_form(
        **{"id": "new-job", "name": "New", "steps-0-type": "sql_query",
           "steps-0-op_kwargs": '{"connector": "warehouse", "sql": "select 1"}'}
    )  # fmt: skip
    response = admin_client.post("/admin/jobs/job/add/", data)
    assert response.status_code == 200
    assert "connector &quot;warehouse&quot; does not exist (known: dw)" in response.content.decode()
    assert not Job.objects.filter(id="new-job").exists()
    data["steps-0-op_kwargs"] = '{"connector": "dw", "sql": "select 1"}'
    assert admin_client.post("/admin/jobs/job/add/", data).status_code == 302
    assert Job.objects.get(id="new-job").steps.get().op_kwargs["connector"] == "dw"

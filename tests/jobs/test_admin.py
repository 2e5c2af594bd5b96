"""The Django admin: pages render for a superuser, refuse others, hide secrets, trigger jobs."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client

from jobs.models import Connector, Job
from runs.models import AuditEvent, Run
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
        f"/admin/runs/run/{run.pk}/change/", "/admin/runs/logline/", "/admin/runs/auditevent/",
        f"/admin/runs/auditevent/{AuditEvent.objects.get().pk}/change/",
        "/admin/runs/run/?state__exact=QUEUED&triggered_by=cli", "/admin/runs/auditevent/?action=trigger",
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


def test_posting_masked_secrets_back_keeps_the_stored_ones(admin_client: Client) -> None:
    connector = ConnectorFactory(url=f"postgresql://etl:{SECRET}@db/dw", options={"password": SECRET, "x": 1})
    response = admin_client.post(
        f"/admin/jobs/connector/{connector.pk}/change/",
        {"name": connector.name, "kind": "postgres", "url": "postgresql://etl:***@db2/dw",
         "options": '{"password": "***", "x": 2}'},
    )  # fmt: skip
    assert response.status_code == 302
    connector.refresh_from_db()
    assert connector.url == f"postgresql://etl:{SECRET}@db2/dw"
    assert connector.options == {"password": SECRET, "x": 2}


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

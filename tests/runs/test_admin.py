"""The admin of what happened and of the site settings: pages render for a superuser and
refuse others; runs, log lines and audit events are read-only; the settings are one row
whose every change, like every job and connector edit in the admin, is audited."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from core.models import AuditEvent
from jobs.models import Connector, Job
from runs.models import LogLine, Run, SiteSettings
from runs.scheduler_lock import SchedulerLock
from runs.services import run_trigger
from tests.factories import ConnectorFactory, admin_job_form, make_job

SECRET = "s3cr3t-pw"


def client_for(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def admin_client(db: None) -> Client:
    return client_for(User.objects.create_superuser("root", password="pw-root"))


@pytest.fixture
def fresh_settings(db: None) -> Any:
    SiteSettings.forget()  # another test's cached row must not leak in, nor ours out
    yield
    SiteSettings.forget()


def pages(run: Run) -> list[str]:
    event = AuditEvent.objects.get(action="trigger")
    line = LogLine.objects.get(run=run)
    return [
        "/admin/runs/sitesettings/1/change/",
        "/admin/runs/run/", f"/admin/runs/run/{run.pk}/change/", "/admin/runs/run/?state__exact=QUEUED",
        "/admin/runs/logline/", f"/admin/runs/logline/{line.pk}/change/", "/admin/runs/logline/?level__exact=INFO",
        "/admin/core/auditevent/", f"/admin/core/auditevent/{event.pk}/change/",
        "/admin/core/auditevent/?actor=cli", "/admin/core/auditevent/?action__exact=trigger",
        "/admin/core/auditevent/?object_type__exact=run", f"/admin/core/auditevent/?object_type=run&object_id={run.pk}",
        f"/admin/core/auditevent/?at__year={event.at.year}&at__month={event.at.month}",
        f"/admin/core/auditevent/?q={run.pk}",
    ]  # fmt: skip


def test_every_page_renders_for_a_superuser(admin_client: Client, run: Run, fresh_settings: None) -> None:
    for page in pages(run):
        assert admin_client.get(page).status_code == 200, page
    response = admin_client.get("/admin/runs/sitesettings/")
    assert response.status_code == 302 and response["Location"] == "/admin/runs/sitesettings/1/change/"


def test_audit_filters_select_the_matching_events(admin_client: Client, run: Run) -> None:
    other, _ = run_trigger(job_id=run.job_id, triggered_by="api")
    response = admin_client.get(f"/admin/core/auditevent/?object_type=run&object_id={run.pk}")
    assert [e.object_id for e in response.context["cl"].result_list] == [run.pk]
    response = admin_client.get("/admin/core/auditevent/?actor=api")
    assert [e.object_id for e in response.context["cl"].result_list] == [other.pk]
    response = admin_client.get("/admin/core/auditevent/?at__year=1999")
    assert list(response.context["cl"].result_list) == []


def test_non_staff_users_are_sent_to_the_login_page(run: Run, outsider: User, fresh_settings: None) -> None:
    client = client_for(outsider)
    for page in [*pages(run), "/admin/runs/sitesettings/"]:
        response = client.get(page)
        assert response.status_code == 302 and response["Location"].startswith("/admin/login/"), page


def test_staff_without_permissions_is_refused(run: Run, viewer: User, fresh_settings: None) -> None:
    viewer.is_staff = True
    viewer.save()
    client = client_for(viewer)
    for page in [*pages(run), "/admin/runs/sitesettings/"]:
        assert client.get(page).status_code == 403, page
    assert client.post("/admin/runs/sitesettings/1/change/", settings_form(retention_days=5)).status_code == 403
    assert SiteSettings.current().retention_days == 90


@pytest.mark.parametrize("model", ["runs/run", "runs/logline", "core/auditevent"])
def test_history_cannot_be_added_changed_or_deleted(admin_client: Client, run: Run, model: str) -> None:
    rows = {"runs/run": run, "runs/logline": LogLine.objects.get(run=run), "core/auditevent": AuditEvent.objects.get()}
    obj = rows[model]
    base = f"/admin/{model}/"
    html = admin_client.get(f"{base}{obj.pk}/change/").content.decode()
    assert 'name="_save"' not in html
    assert admin_client.get(f"{base}add/").status_code == 403
    assert admin_client.post(f"{base}add/", {}).status_code == 403
    assert admin_client.post(f"{base}{obj.pk}/change/", {"state": "FAILED", "message": "x"}).status_code == 403
    assert admin_client.post(f"{base}{obj.pk}/delete/", {"post": "yes"}).status_code == 403
    bulk = admin_client.post(base, {"action": "delete_selected", "_selected_action": [obj.pk], "post": "yes"})
    assert bulk.status_code in (200, 302)  # the changelist offers no delete action: nothing happens
    assert type(obj).objects.filter(pk=obj.pk).exists()
    run.refresh_from_db()
    assert run.state == "QUEUED" and LogLine.objects.get(run=run).message == "hello"


def settings_form(**changes: Any) -> dict[str, Any]:
    form = {
        "retention_days": "90", "cancel_grace_s": "1.5", "heartbeat_timeout_s": "3", "notify_on": '["FAILED"]',
        "notify_emails": "[]", "notify_webhook": "",
    }  # fmt: skip
    return {**form, **changes}


def test_a_settings_change_is_audited_with_its_diff_and_read_at_once(
    admin_client: Client, fresh_settings: None
) -> None:
    assert SiteSettings.current().retention_days == 90
    data = settings_form(retention_days="30", notify_on='["FAILED", "CANCELED"]', notify_emails='["ops@example.com"]')

    response = admin_client.post("/admin/runs/sitesettings/1/change/", data)

    assert response.status_code == 302
    [event] = AuditEvent.objects.all()
    assert (event.actor, event.action, event.object_type, event.object_id) == (
        "user:root",
        "update",
        "sitesettings",
        "1",
    )
    assert event.diff == {
        "retention_days": [90, 30],
        "notify_on": [["FAILED"], ["FAILED", "CANCELED"]],
        "notify_emails": [[], ["ops@example.com"]],
    }
    assert SiteSettings.current().retention_days == 30
    assert SiteSettings.objects.count() == 1


def test_saving_unchanged_settings_records_nothing(admin_client: Client, fresh_settings: None) -> None:
    assert admin_client.post("/admin/runs/sitesettings/1/change/", settings_form()).status_code == 302
    assert not AuditEvent.objects.exists()


@pytest.mark.parametrize(
    ("change", "text"),
    [
        ({"retention_days": "0"}, "greater than or equal to 1"),
        ({"notify_on": '["FAILED", "LATE"]'}, "notify_on: give a list of FAILED, CANCELED, SUCCEEDED"),
        ({"notify_emails": '["not-an-address"]'}, "notify_emails: &quot;not-an-address&quot; is not an email"),
        ({"notify_webhook": "ftp://hooks"}, "Enter a valid URL"),
    ],
)
def test_bad_settings_are_refused_naming_the_field(
    admin_client: Client, fresh_settings: None, change: dict[str, str], text: str
) -> None:
    response = admin_client.post("/admin/runs/sitesettings/1/change/", settings_form(**change))
    assert response.status_code == 200
    assert text in response.content.decode()
    assert not AuditEvent.objects.exists() and SiteSettings.current().retention_days == 90


def test_the_settings_page_shows_the_scheduler_lock_holder_and_ttl(admin_client: Client, fresh_settings: None) -> None:
    page = "/admin/runs/sitesettings/1/change/"
    assert "nobody: no scheduler is running" in admin_client.get(page).content.decode()
    lock = SchedulerLock(holder="sched-host:4242", ttl_s=30)
    assert lock.acquire()
    try:
        html = admin_client.get(page).content.decode()
    finally:
        lock.release()
    assert "sched-host:4242 · took the lock at " in html and " s ago) · TTL " in html and " s left" in html


def test_settings_cannot_be_added_or_deleted(admin_client: Client, fresh_settings: None) -> None:
    SiteSettings.current()
    assert admin_client.get("/admin/runs/sitesettings/add/").status_code == 403
    assert admin_client.post("/admin/runs/sitesettings/1/delete/", {"post": "yes"}).status_code == 403
    assert admin_client.get("/admin/runs/sitesettings/2/change/").status_code == 302  # unknown: back to the index
    assert SiteSettings.objects.count() == 1


def test_job_create_change_and_delete_in_the_admin_are_audited(admin_client: Client) -> None:
    assert admin_client.post("/admin/jobs/job/add/", admin_job_form()).status_code == 302
    step_id = Job.objects.get(id="nightly").steps.get().pk
    changed = admin_job_form(
        name="Nightly load", **{"steps-INITIAL_FORMS": "1", "steps-0-id": step_id, "steps-0-job": "nightly"}
    )
    changed["steps-0-retries"] = "2"
    assert admin_client.post("/admin/jobs/job/nightly/change/", changed).status_code == 302
    assert admin_client.post("/admin/jobs/job/nightly/delete/", {"post": "yes"}).status_code == 302

    events = list(AuditEvent.objects.filter(object_type="job", object_id="nightly").order_by("id"))
    assert [(e.actor, e.action) for e in events] == [
        ("user:root", "create"),
        ("user:root", "update"),
        ("user:root", "delete"),
    ]
    assert events[0].diff["steps"][1][0]["op_kwargs"] == {"callable": "workers.builtins:noop"}
    assert events[1].diff["name"] == ["Nightly", "Nightly load"]
    assert [s["retries"] for s in events[1].diff["steps"][1]] == [2]
    assert events[2].diff["name"] == ["Nightly load", None]
    assert not Job.objects.filter(id="nightly").exists()


def test_connector_edits_in_the_admin_are_audited_without_secrets(admin_client: Client) -> None:
    connector = ConnectorFactory(name="dw", url=f"postgresql://etl:{SECRET}@db/dw", options={"password": SECRET})
    data = {"name": "dw", "kind": "postgres", "url": "postgresql://etl:***@db/dw2", "options": '{"password": "***"}'}

    assert admin_client.post(f"/admin/jobs/connector/{connector.pk}/change/", data).status_code == 302
    bulk = {"action": "delete_selected", "_selected_action": [connector.pk], "post": "yes"}
    assert admin_client.post("/admin/jobs/connector/", bulk).status_code == 302

    events = list(AuditEvent.objects.filter(object_type="connector", object_id="dw").order_by("id"))
    assert [e.action for e in events] == ["update", "delete"]
    assert events[0].diff == {"url": ["postgresql://etl:***@db/dw", "postgresql://etl:***@db/dw2"]}
    assert SECRET not in str([e.diff for e in events])
    assert not Connector.objects.exists()


def test_a_trigger_from_the_admin_is_audited_with_the_user(admin_client: Client) -> None:
    job = make_job({"callable": "workers.builtins:noop"})

    admin_client.post("/admin/jobs/job/", {"action": "trigger_jobs", "_selected_action": [job.pk]})

    run = Run.objects.get(job=job)
    event = AuditEvent.objects.get(action="trigger")
    assert (event.actor, event.object_type, event.object_id) == ("user:root", "run", run.pk)


HOOK = "https://hooks.slack.com/services/T000/B000/s3cr3tPathToken"


def test_a_webhook_change_is_audited_without_its_secret_path(admin_client: Client, fresh_settings: None) -> None:
    assert (
        admin_client.post("/admin/runs/sitesettings/1/change/", settings_form(notify_webhook=HOOK)).status_code == 302
    )
    job_form = admin_job_form(notify_on='["FAILED", "SUCCEEDED"]', notify_webhook=HOOK)
    assert admin_client.post("/admin/jobs/job/add/", job_form).status_code == 302
    job_form = admin_job_form(notify_on='["FAILED", "SUCCEEDED"]', notify_webhook=HOOK + "2")
    job_form.update(
        {"steps-INITIAL_FORMS": "1", "steps-0-id": Job.objects.get().steps.get().pk, "steps-0-job": "nightly"}
    )
    assert admin_client.post("/admin/jobs/job/nightly/change/", job_form).status_code == 302

    site, created, changed = AuditEvent.objects.order_by("id")
    old, new = site.diff["notify_webhook"]
    assert old == "" and new.startswith("https://hooks.slack.com/*** (sha256 ")
    assert created.diff["notify_on"] == [None, ["FAILED", "SUCCEEDED"]]
    masked_before, masked_after = changed.diff["notify_webhook"]  # two URLs on one host still differ
    assert masked_before != masked_after and masked_after.startswith("https://hooks.slack.com/***")
    assert "s3cr3t" not in str([event.diff for event in (site, created, changed)])


def test_the_admin_refuses_to_delete_a_connector_steps_use(admin_client: Client) -> None:
    connector = ConnectorFactory(name="warehouse")
    make_job({"type": "sql_query", "op_kwargs": {"connector": "warehouse", "sql": "select 1"}}, id="etl")

    single = admin_client.post(f"/admin/jobs/connector/{connector.pk}/delete/", {"post": "yes"})
    bulk = {"action": "delete_selected", "_selected_action": [connector.pk], "post": "yes"}
    selected = admin_client.post("/admin/jobs/connector/", bulk)

    for page in (single, selected):
        assert page.status_code == 200  # the "cannot delete" page, not a redirect after deleting
        assert "step etl/F0001 uses connector warehouse" in page.content.decode()
    assert Connector.objects.filter(pk=connector.pk).exists()
    assert not AuditEvent.objects.filter(object_type="connector", action="delete").exists()

"""The jobs catalogue at /nomaflow/: login required, viewers see one card per job."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.test import Client

from runs.services import run_trigger
from tests.factories import make_job


def _client(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_root_redirects_to_the_home_page(db: None) -> None:
    response = Client().get("/")
    assert response.status_code == 302 and response["Location"] == "/nomaflow/"


def test_anonymous_user_is_sent_to_the_login_page(db: None) -> None:
    response = Client().get("/nomaflow/")
    assert response.status_code == 302
    assert response["Location"] == "/nomaflow/login/?next=/nomaflow/"


def test_viewer_sees_a_card_per_job_with_its_last_run(viewer: User) -> None:
    make_job({"callable": "workers.builtins:noop"}, id="nightly-sales", name="Nightly sales", enabled=False)
    job = make_job({"callable": "workers.builtins:noop"}, id="hourly", schedule="0 * * * *")
    run, _ = run_trigger(job_id=job.id, triggered_by="api")
    html = _client(viewer).get("/nomaflow/").content.decode()
    assert "<title>Jobs · nomaflow</title>" in html
    assert 'href="/api/v1/docs/"' in html and 'href="/admin/"' not in html  # Admin is for staff only
    assert "nightly-sales" in html and "Nightly sales" in html and ">disabled<" in html
    assert f'<a class="badge badge-queued" href="/nomaflow/runs/{run.id}">QUEUED</a>' in html
    assert 'href="/nomaflow/jobs/hourly/runs/"' in html
    assert "data-run-job" not in html  # a viewer is not offered the Run button


def test_operator_is_offered_the_run_button(operator: User) -> None:
    make_job({"callable": "workers.builtins:noop"}, id="nightly-sales")
    assert 'data-run-job="nightly-sales"' in _client(operator).get("/nomaflow/").content.decode()


def test_staff_see_the_admin_link(viewer: User) -> None:
    viewer.is_staff = True
    viewer.save()
    assert 'href="/admin/"' in _client(viewer).get("/nomaflow/").content.decode()


def test_outsider_is_refused(outsider: User) -> None:
    response = _client(outsider).get("/nomaflow/")
    assert response.status_code == 403
    assert "viewer role" in response.content.decode()

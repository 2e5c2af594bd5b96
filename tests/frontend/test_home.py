"""The home page: login required, viewers see the jobs."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.test import Client

from tests.factories import make_job


def test_root_redirects_to_the_home_page(db: None) -> None:
    response = Client().get("/")
    assert response.status_code == 302 and response["Location"] == "/nomaflow/"


def test_anonymous_user_is_sent_to_the_admin_login(db: None) -> None:
    response = Client().get("/nomaflow/")
    assert response.status_code == 302
    assert response["Location"] == "/admin/login/?next=/nomaflow/"


def test_viewer_sees_links_and_jobs(viewer: User) -> None:
    make_job({"callable": "workers.builtins:noop"}, id="nightly-sales", name="Nightly sales", enabled=False)
    client = Client()
    client.force_login(viewer)
    html = client.get("/nomaflow/").content.decode()
    assert "<title>nomaflow</title>" in html
    assert 'href="/admin/"' in html and 'href="/api/v1/docs/"' in html
    assert "nightly-sales" in html and "Nightly sales" in html and "<td>no</td>" in html


def test_outsider_is_refused(outsider: User) -> None:
    client = Client()
    client.force_login(outsider)
    assert client.get("/nomaflow/").status_code == 403

"""Every HTML page: who may open it (login, viewer role), what it offers by role, and
the login, 403 and 404 pages themselves."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.test import Client

from frontend.docs import markdown_html
from runs.services import run_trigger
from tests.factories import end_as, make_job

PAGES = [
    "/nomaflow/",
    "/nomaflow/runs/",
    "/nomaflow/jobs/paged/runs/",
    "/nomaflow/schedule/",
    "/nomaflow/docs/troubleshoot/",
    "/nomaflow/workers/",
]


def _client(user: User | None) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


@pytest.fixture
def paged_job(db: None) -> None:
    make_job({"callable": "workers.builtins:noop"}, id="paged")


@pytest.mark.parametrize("path", PAGES)
def test_anonymous_is_sent_to_the_login_page(paged_job: None, path: str) -> None:
    response = _client(None).get(path)
    assert response.status_code == 302 and response["Location"] == f"/nomaflow/login/?next={path}"


@pytest.mark.parametrize("path", PAGES)
def test_outsider_gets_the_403_page(paged_job: None, outsider: User, path: str) -> None:
    response = _client(outsider).get(path)
    html = response.content.decode()
    assert response.status_code == 403
    assert "viewer role" in html and "oscar" in html
    assert 'href="/nomaflow/runs/"' not in html  # no navigation to pages that would refuse too


@pytest.mark.parametrize("path", PAGES)
def test_viewer_opens_every_page(paged_job: None, viewer: User, path: str) -> None:
    response = _client(viewer).get(path)
    assert response.status_code == 200
    assert 'aria-current="page"' in response.content.decode()


def test_unknown_job_and_unknown_path_are_404_pages(viewer: User) -> None:
    for path, says in (
        ("/nomaflow/jobs/nope/runs/", "no job &quot;nope&quot;"),
        ("/nomaflow/x/", "nothing at /nomaflow/x/"),
    ):
        response = _client(viewer).get(path)
        html = response.content.decode()
        assert response.status_code == 404
        assert "Not found" in html and says in html and "<nav" in html


def test_api_404_stays_json(viewer: User) -> None:
    response = _client(viewer).get("/api/v1/jobs/nope/")
    assert response.status_code == 404 and response.json()["detail"] == 'job "nope" does not exist'


def test_login_page_signs_in_and_follows_next(viewer: User) -> None:
    client = Client()
    assert client.get("/nomaflow/login/").status_code == 200
    wrong = client.post("/nomaflow/login/", {"username": "vera", "password": "nope"})
    assert wrong.status_code == 200 and "form-error" in wrong.content.decode()
    response = client.post("/nomaflow/login/", {"username": "vera", "password": "pw-vera", "next": "/nomaflow/runs/"})
    assert response.status_code == 302 and response["Location"] == "/nomaflow/runs/"


def test_admin_login_still_works(viewer: User) -> None:
    viewer.is_staff = True  # the admin signs in staff only
    viewer.save()
    response = Client().post("/admin/login/?next=/nomaflow/", {"username": "vera", "password": "pw-vera"})
    assert response.status_code == 302 and response["Location"] == "/nomaflow/"


def test_logout_is_a_post_back_to_the_login_page(viewer: User) -> None:
    client = _client(viewer)
    response = client.post("/nomaflow/logout/")
    assert response.status_code == 302 and response["Location"] == "/nomaflow/login/"
    assert client.get("/nomaflow/").status_code == 302


def test_runs_list_filters_by_state_and_trigger(viewer: User) -> None:
    job = make_job({"callable": "workers.builtins:noop"}, id="paged")
    ok = end_as(run_trigger(job_id=job.id, triggered_by="cron")[0], "SUCCEEDED")
    bad = end_as(run_trigger(job_id=job.id, triggered_by="user:otto")[0], "FAILED")
    client = _client(viewer)

    def listed(query: str) -> set[str]:
        html = client.get(f"/nomaflow/jobs/paged/runs/?{query}").content.decode()
        return {run.id for run in (ok, bad) if f'data-run-id="{run.id}"' in html}

    assert listed("") == {ok.id, bad.id}
    assert listed("state=FAILED") == {bad.id}
    assert listed("trigger=cron") == {ok.id}
    assert listed("trigger=user") == {bad.id}
    assert listed("trigger=user:otto") == {bad.id}
    html = client.get("/nomaflow/jobs/paged/runs/").content.decode()
    assert "1 / 1 ✓" in html and "0 / 1 — failed at F0001" in html  # step summaries
    assert html.count('class="bar bar-') == 2  # both finished runs in the chart


def test_runs_list_pages_with_cursors(viewer: User) -> None:
    job = make_job({"callable": "workers.builtins:noop"}, id="paged")
    runs = [run_trigger(job_id=job.id, triggered_by="api")[0] for _ in range(3)]
    client = _client(viewer)
    first = client.get("/nomaflow/runs/?page_size=2")
    assert [row[0].id for row in first.context["rows"]] == [runs[2].id, runs[1].id]  # newest first
    assert first.context["next_url"].startswith("/nomaflow/runs/?cursor=")
    second = client.get(first.context["next_url"])
    assert [row[0].id for row in second.context["rows"]] == [runs[0].id]
    assert second.context["previous_url"] and not second.context["next_url"]
    assert client.get("/nomaflow/runs/?cursor=garbage").status_code == 404


def test_troubleshoot_page_shows_the_doc_escaped(viewer: User) -> None:
    html = _client(viewer).get("/nomaflow/docs/troubleshoot/").content.decode()
    doc = Path(__file__).resolve().parents[2] / "docs" / "troubleshoot.md"
    if doc.exists():
        assert "<h1>Troubleshoot</h1>" in html and "<pre>" in html
        assert "<run-id>" not in html and "&lt;run-id&gt;" in html  # the doc's text is escaped
    else:
        assert "not there yet" in html


def test_markdown_is_rendered_with_the_files_own_html_escaped() -> None:
    text = "# Title\n\nline one\nline <b>two</b>\n\n```\ncode <x>\n```\n1. first\n2. `<second>`\n\n"
    text += "[x](javascript:alert(1))"
    html = markdown_html(text)
    assert "<h1>Title</h1>" in html
    assert "<p>line one\nline &lt;b&gt;two&lt;/b&gt;</p>" in html
    assert "<pre><code>code &lt;x&gt;\n</code></pre>" in html
    assert "<li><code>&lt;second&gt;</code></li>" in html
    assert 'href="javascript' not in html

"""Every answer under /api/ is JSON in the API's error shape, Django's own answers included
(an unmatched path, a wrong method, a media type no parser takes, a crash); pages stay HTML.

This module is also the urlconf of the tests that need a view that crashes: the site's
routes and error handlers, plus one crashing API view and one crashing page.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse
from django.test import Client
from django.urls import path
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

import nomaflow.urls as site
from tests.conftest import api_client


class Crash(APIView):
    permission_classes = [AllowAny]

    def get(self, request: Request) -> Response:
        raise RuntimeError("a bug in an API view")


def crashing_page(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("a bug in a page")


urlpatterns = [path("api/v1/crash/", Crash.as_view()), path("nomaflow/crash/", crashing_page), *site.urlpatterns]
handler400, handler403, handler404, handler500 = site.handler400, site.handler403, site.handler404, site.handler500


def assert_api_error(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.content[:200]
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert set(body) == {"detail", "errors"} and body["errors"] == {} and body["detail"]
    return body


@pytest.fixture
def crashing_routes(settings: Any) -> None:
    settings.ROOT_URLCONF = __name__


@pytest.mark.parametrize("method", ["get", "post", "delete", "put"])
@pytest.mark.parametrize("url", ["/api/v1/nope", "/api/v1/nope/", "/api/nope/", "/api/v1/jobs/a/b/c/"])
def test_an_unmatched_api_path_is_a_json_404(db: None, method: str, url: str) -> None:
    response = getattr(Client(), method)(url, HTTP_ACCEPT="text/html")  # even for a browser

    body = assert_api_error(response, 404)
    assert body["detail"].startswith(f"nothing at {url}: check the path") and "/api/v1/schema/" in body["detail"]


def test_delete_of_a_connector_name_no_route_takes_is_a_json_404(editor: User) -> None:
    body = assert_api_error(api_client(editor).delete("/api/v1/connectors/a.b/"), 404)

    assert body["detail"].startswith("nothing at /api/v1/connectors/a.b/")


def test_a_wrong_method_is_a_json_405(editor: User) -> None:
    assert_api_error(api_client(editor).delete("/api/v1/jobs/"), 405)


def test_a_body_no_parser_takes_is_a_json_415(editor: User) -> None:
    response = api_client(editor).post("/api/v1/jobs/", "id: x", content_type="application/yaml")

    assert "application/yaml" in assert_api_error(response, 415)["detail"]


def test_a_crash_in_an_api_view_is_a_json_500_logged_with_its_traceback(
    db: None, crashing_routes: None, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="django.request"):
        response = Client(raise_request_exception=False).get("/api/v1/crash/")

    body = assert_api_error(response, 500)
    assert "a bug" not in body["detail"]  # the exception's text stays in the log
    record = next(r for r in caplog.records if r.name == "django.request")
    assert record.exc_info is not None and str(record.exc_info[1]) == "a bug in an API view"


def test_pages_keep_their_html_error_pages(viewer: User, outsider: User, crashing_routes: None) -> None:
    client = Client(raise_request_exception=False)
    client.force_login(viewer)
    missing, crash = client.get("/nomaflow/nope"), client.get("/nomaflow/crash/")
    client.force_login(outsider)
    docs = client.get("/api/v1/docs/")  # the docs page is a page, under /api/

    assert [r.status_code for r in (missing, crash, docs)] == [404, 500, 403]
    assert all(r["Content-Type"].startswith("text/html") for r in (missing, crash, docs))
    assert b"There is nothing at /nomaflow/nope." in missing.content

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.urls import include, path
from django.views import defaults
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from frontend import views as pages
from frontend.access import viewer_required
from runs.api.errors import django_error
from runs.permissions import IsViewer

# The schema and its docs describe every endpoint: viewers and above only, like the API.
# The schema answers like the API (401/403 JSON); the docs page like the site's pages (the
# login page, or 403). The split view serves Swagger UI's start-up code as a file of its own
# (`?script`), so the page needs no inline script under the Content-Security-Policy.


class SchemaView(SpectacularAPIView):
    permission_classes = [IsViewer]

    def handle_exception(self, exc: Exception) -> Response:
        # A refusal is the API's JSON error, not a YAML document (the schema's default format).
        self.request.accepted_renderer, self.request.accepted_media_type = JSONRenderer(), "application/json"
        return super().handle_exception(exc)


schema = SchemaView.as_view()
api_docs = viewer_required(
    SpectacularSwaggerSplitView.as_view(url_name="schema", template_name="frontend/swagger_ui.html")
)

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/schema/", schema, name="schema"),
    path("api/v1/docs/", api_docs, name="api-docs"),
    path("api/v1/", include("runs.api.urls")),
    path("", include("frontend.urls")),
]

# Django's own error answers: JSON in the API's error shape under /api/ (API.md: unmatched
# paths included), HTML pages in the site's layout elsewhere. The API's views answer their
# own errors (runs/api/errors.py); these cover what no API view answered: a path no route
# matches, a request refused before any view, an exception no handler caught (Django logs
# it with its traceback before calling handler500). The docs page is a page: it refuses
# like the site's pages.
API_PREFIX = "/api/"


def _answers_json(request: HttpRequest) -> bool:
    match = request.resolver_match
    return request.path_info.startswith(API_PREFIX) and not (match is not None and match.url_name == "api-docs")


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    return django_error(request, 400) if _answers_json(request) else defaults.bad_request(request, exception)


def forbidden(request: HttpRequest, exception: Exception) -> HttpResponse:
    return django_error(request, 403, exception) if _answers_json(request) else pages.forbidden(request, exception)


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    return django_error(request, 404, exception) if _answers_json(request) else pages.not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    return django_error(request, 500) if _answers_json(request) else defaults.server_error(request)


handler400 = bad_request
handler403 = forbidden
handler404 = not_found
handler500 = server_error

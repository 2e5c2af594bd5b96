from collections.abc import Callable

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.urls import include, path
from django.views import defaults
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from core.api.errors import JsonErrors, django_error
from core.permissions import IsViewer
from frontend import views as pages
from frontend.access import viewer_required
from nomaflow import health, metrics_view

# The schema and its docs describe every endpoint: viewers and above only, like the API.
# The schema answers like the API (401/403 JSON); the docs page like the site's pages (the
# login page, or 403). The split view serves Swagger UI's start-up code as a file of its own
# (`?script`), so the page needs no inline script under the Content-Security-Policy.


class SchemaView(JsonErrors, SpectacularAPIView):  # a refusal is JSON, not a YAML document
    permission_classes = [IsViewer]


schema = SchemaView.as_view()
api_docs = viewer_required(
    SpectacularSwaggerSplitView.as_view(url_name="schema", template_name="frontend/swagger_ui.html")
)

urlpatterns = [
    path("livez", health.livez, name="livez"),  # probes: outside /api/, no login (nomaflow/health.py)
    path("readyz", health.readyz, name="readyz"),
    path("metrics", metrics_view.metrics_view, name="metrics"),  # Prometheus; token or network (README, "Metrics")
    path("admin/", admin.site.urls),
    path("api/v1/schema/", schema, name="schema"),
    path("api/v1/docs/", api_docs, name="api-docs"),
    path("api/v1/", include("runs.api.urls")),
    path("api/v1/", include("workers.api_urls")),
    path("", include("frontend.urls")),
]

# Django's own error answers: JSON in the API's error shape under /api/ (API.md: unmatched
# paths included), HTML pages in the site's layout elsewhere. The API's views answer their
# own errors (core/api/errors.py); these cover what no API view answered: a path no route
# matches, a request refused before any view, an exception no handler caught (Django logs
# it with its traceback before calling handler500). The docs page is a page: it refuses
# like the site's pages.
API_PREFIX = "/api/"


def _answers_json(request: HttpRequest) -> bool:
    match = request.resolver_match
    return request.path_info.startswith(API_PREFIX) and not (match is not None and match.url_name == "api-docs")


def _json_under_api(code: int, page: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Django's handler for `code`: the API's JSON error under /api/, `page` elsewhere.
    (Django passes handler500 no exception, the others `exception=`.)"""

    def handler(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
        if _answers_json(request):
            return django_error(request, code, exception)
        return page(request) if exception is None else page(request, exception)

    return handler


handler400 = _json_under_api(400, defaults.bad_request)
handler403 = _json_under_api(403, pages.forbidden)
handler404 = _json_under_api(404, pages.not_found)
handler500 = _json_under_api(500, defaults.server_error)

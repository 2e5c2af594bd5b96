from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from frontend.access import viewer_required
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

# HTML error pages in the site's layout (the REST API answers its own JSON errors).
handler403 = "frontend.views.forbidden"
handler404 = "frontend.views.not_found"

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/v1/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("api/v1/", include("runs.api.urls")),
    path("", include("frontend.urls")),
]

# HTML error pages in the site's layout (the REST API answers its own JSON errors).
handler403 = "frontend.views.forbidden"
handler404 = "frontend.views.not_found"

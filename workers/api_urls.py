"""Routes of the workers' API under /api/v1/ (nomaflow/urls.py): runs.api.urls may not
import workers, which is to its right."""

from django.urls import path

from .api import DrainView, GiveBackView, WorkersView

urlpatterns = [
    path("workers/", WorkersView.as_view(), name="api-workers"),
    path("workers/<str:hostname>/drain/", DrainView.as_view(), name="api-worker-drain"),
    path("workers/<str:hostname>/give-back/", GiveBackView.as_view(), name="api-worker-give-back"),
]

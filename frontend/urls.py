from django.urls import path
from django.views.generic import RedirectView

from . import views

app_name = "frontend"

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="frontend:home"), name="root"),
    path("nomaflow/", views.home, name="home"),
]

"""Websocket routes."""

from django.urls import path

from .consumers import RunLogConsumer

websocket_urlpatterns = [
    path("ws/runs/<str:run_id>/", RunLogConsumer.as_asgi()),
]

"""Websocket routes. The run consumer arrives with the live-log issue."""

websocket_urlpatterns: list = []

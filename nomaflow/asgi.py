"""ASGI entry point: HTTP through Django, websockets through the Channels router."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "nomaflow.settings")
# This is the web process: a thread per request, so bounded connections (settings.py). Only
# for this process's settings: a process it starts (a test's worker) must not inherit it,
# as a Celery pool child cannot use a pool made before its fork.
_pool_by_default = "NOMAFLOW_DB_POOL" not in os.environ
os.environ.setdefault("NOMAFLOW_DB_POOL", "true")
django_asgi_app = get_asgi_application()  # set up Django before importing consumers
if _pool_by_default:
    del os.environ["NOMAFLOW_DB_POOL"]

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402

from nomaflow.body_limit import BodyLimit  # noqa: E402
from runs.routing import websocket_urlpatterns  # noqa: E402
from runs.ws_auth import websocket_auth  # noqa: E402

# daphne serves no files; without a proxy in front, the admin and API docs need this.
serve_static = settings.DEBUG or settings.NOMAFLOW_SERVE_STATIC
http_app = ASGIStaticFilesHandler(django_asgi_app) if serve_static else django_asgi_app

application = ProtocolTypeRouter(
    {
        "http": BodyLimit(http_app, settings.NOMAFLOW_MAX_BODY_BYTES),
        # Origin checked (browsers), then session or token user; see runs/ws_auth.py.
        "websocket": websocket_auth(URLRouter(websocket_urlpatterns)),
    }
)

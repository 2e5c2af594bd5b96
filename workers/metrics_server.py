"""The metrics port of a worker or a scheduler (NOMAFLOW_METRICS_PORT), and the Celery hooks
the metrics need (connected in workers/apps.py).

A Celery worker runs its steps in the processes of its prefork pool. Each of them writes its
metrics to files in PROMETHEUS_MULTIPROC_DIR (prometheus-client's multiprocess mode, turned
on by that variable as the processes start), and the main process serves their sum. So the
variable is set by whatever starts the worker, to a directory of that worker instance's own
(`PROMETHEUS_MULTIPROC_DIR=$(mktemp -d) celery -A nomaflow worker`); files a previous run of
the instance left there are removed at start. A scheduler is one process and serves its own.
Both answer only those that core/metrics_access.py lets in, as the web's /metrics does.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from django.conf import settings
from prometheus_client import CollectorRegistry, make_wsgi_app, multiprocess

from core import metrics_access

# Stamped on every task message as it is sent (by whichever process sends it: the web for a
# run's first step, the worker that ends a step for the next one), so the worker that claims
# the step knows how long it waited in the queue (runs/measures.py, step_claimed).
SENT_AT_HEADER = "nomaflow_sent_at"
MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"
LISTEN_ADDRESS = "0.0.0.0"  # a scraper on another host; who may read is core/metrics_access's rule

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def stamp_sent_at(headers: dict[str, Any] | None = None, **_: Any) -> None:
    """Celery's before_task_publish: the message leaves now."""
    if headers is not None:
        headers[SENT_AT_HEADER] = time.time()


def start_worker_metrics(**_: Any) -> None:
    """Celery's worker_init, in the worker's main process before its pool starts: serve the
    sum of every pool process's metrics on NOMAFLOW_METRICS_PORT, if set."""
    port = settings.NOMAFLOW_METRICS_PORT
    if not port:
        return
    directory = os.environ.get(MULTIPROC_DIR, "")
    if not directory or not Path(directory).is_dir():
        # Celery logs and forgets an exception from a signal handler; a worker that cannot
        # report must not start looking healthy.
        raise SystemExit(
            f"NOMAFLOW_METRICS_PORT={port} needs {MULTIPROC_DIR}: an existing directory of this worker's own, set "
            f"before the worker starts, e.g. {MULTIPROC_DIR}=$(mktemp -d) celery -A nomaflow worker"
        )
    remove_stale_files(Path(directory), own_pid=os.getpid())
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=directory)
    serve(port, registry)


def mark_process_dead(**_: Any) -> None:
    """Celery's worker_process_shutdown, in a pool process that exits: its live gauges go."""
    if os.environ.get(MULTIPROC_DIR):
        multiprocess.mark_process_dead(os.getpid())


def remove_stale_files(directory: Path, *, own_pid: int) -> None:
    """Remove what an earlier run of this worker left (`counter_1234.db`): its counts would be
    added to this run's. This process's own files, made as the metrics were defined, stay."""
    for path in directory.glob("*.db"):
        if path.stem.rpartition("_")[2] != str(own_pid):
            path.unlink(missing_ok=True)


def serve(port: int, registry: Any) -> WSGIServer:
    """Serve `registry` on `port` from a daemon thread; a port that is taken stops the process."""
    try:
        server = make_server(LISTEN_ADDRESS, port, guarded(make_wsgi_app(registry)), _Server, _QuietHandler)
    except OSError as exc:
        raise SystemExit(
            f"NOMAFLOW_METRICS_PORT={port}: cannot listen ({exc.strerror}); give each worker and scheduler "
            "on a host a port of its own"
        ) from None
    threading.Thread(target=server.serve_forever, name="nomaflow-metrics", daemon=True).start()
    return server


def guarded(app: WsgiApp) -> WsgiApp:
    """`app` for the requests core/metrics_access lets in; a plain-text 401/403 for the others."""

    def guarded_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        refused = metrics_access.refusal(environ.get("REMOTE_ADDR", ""), environ.get("HTTP_AUTHORIZATION", ""))
        if refused is None:
            return app(environ, start_response)
        headers = [("Content-Type", metrics_access.CONTENT_TYPE), *refused.headers.items()]
        start_response(f"{refused.status} {refused.reason}", headers)
        return [refused.body.encode()]

    return guarded_app


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True  # a scrape in progress never holds up the process's exit


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass  # a scrape every 15 s is not news for the worker's log

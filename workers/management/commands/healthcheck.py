"""`python manage.py healthcheck worker|scheduler`: a container probe for this host's process.

Exits 0 when healthy and 1 when not, printing one line that says why (Docker keeps it in
`docker inspect`, Kubernetes in the pod's events).

- `worker`: a Celery worker on this host answers a ping through the broker. Its node name
  ends with `@<hostname>` (celery's default `celery@%h`, and every nomaflow start line
  keeps `@%h`); `--node` names one instead.
- `scheduler`: the scheduler's loop touched its heartbeat file
  (NOMAFLOW_SCHEDULER_HEARTBEAT_FILE) within NOMAFLOW_SCHEDULER_HEARTBEAT_MAX_AGE_S. It does
  so every round, as leader or follower, so a follower waiting to take over is healthy.
"""

from __future__ import annotations

import socket
import sys
import time
from typing import Any

from celery import current_app as celery_app  # the project's app (nomaflow/__init__.py): no app imports nomaflow
from celery.utils.nodenames import host_format
from django.conf import settings
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Exit 0 if this host's worker answers a ping, or the scheduler ticked lately; 1 otherwise."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("process", choices=["worker", "scheduler"])
        parser.add_argument("--node", help="worker: the node name to ping, e.g. celery@%%h (default: any on this host)")
        parser.add_argument("--timeout", type=float, default=2.0, help="worker: seconds to wait for a reply")

    def handle(self, *args: Any, process: str, node: str | None, timeout: float, **options: Any) -> None:
        healthy, why = check_worker(node, timeout) if process == "worker" else check_scheduler()
        if not healthy:
            self.stderr.write(f"{process} unhealthy: {why}")
            sys.exit(1)
        self.stdout.write(f"{process} ok: {why}")


def check_worker(node: str | None, timeout: float) -> tuple[bool, str]:
    if node is not None:
        node = host_format(node)
        replies = celery_app.control.ping(destination=[node], timeout=timeout)
    else:
        # Only workers whose name matches reply, and the first reply ends the wait.
        node = f"*@{socket.gethostname()}"
        replies = celery_app.control.ping(pattern=node, matcher="glob", limit=1, timeout=timeout)
    answered = sorted(name for reply in replies for name in reply)
    if not answered:
        return False, f"no worker {node} answered a ping within {timeout:g} s (is it running, is the broker up?)"
    return True, f"{', '.join(answered)} answered a ping"


def check_scheduler() -> tuple[bool, str]:
    path = settings.NOMAFLOW_SCHEDULER_HEARTBEAT_FILE
    max_age = settings.NOMAFLOW_SCHEDULER_HEARTBEAT_MAX_AGE_S
    try:
        age = time.time() - path.stat().st_mtime
        role = path.read_text().strip()  # empty while being written
    except OSError:
        return False, f"no heartbeat file {path} (is `manage.py scheduler` running with this setting?)"
    if age > max_age:
        return False, f"last round {age:.1f} s ago (over NOMAFLOW_SCHEDULER_HEARTBEAT_MAX_AGE_S={max_age:g})"
    return True, f"last round {age:.1f} s ago" + (f", as {role}" if role else "")

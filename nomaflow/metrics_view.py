"""`GET /metrics` of the web process: Prometheus' text exposition of this process's metrics
(core/metrics.py) and of the fleet as Celery and the broker see it at scrape time.

Outside /api/ and without a login, like the health probes: a scraper has no session. Who
may read is core/metrics_access's rule (a bearer token, or an allowed network); a refusal
is one line of plain text, never the login page.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator, Sequence

from django.conf import settings
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import Metric

from core import metrics, metrics_access
from jobs.models import Step
from workers import fleet

logger = logging.getLogger(__name__)


@never_cache
@require_safe
def metrics_view(request: HttpRequest) -> HttpResponse:
    refused = metrics_access.refusal(request.META.get("REMOTE_ADDR", ""), request.headers.get("Authorization", ""))
    if refused is not None:
        return HttpResponse(
            refused.body, status=refused.status, content_type=metrics_access.CONTENT_TYPE, headers=refused.headers
        )
    return HttpResponse(generate_latest(WebMetrics()), content_type=CONTENT_TYPE_LATEST)


class WebMetrics:
    """What the web process exposes: its own registry, then the fleet's gauges."""

    def collect(self) -> Iterator[Metric]:
        yield from REGISTRY.collect()
        yield from fleet_metrics()


def fleet_metrics() -> Sequence[Metric]:
    """Live workers and, per queue a step is routed to or a worker consumes, the workers on it
    and its depth. workers.fleet answers an empty fleet when the broker is down (the gauges
    then say 0 workers: none can be reached)."""
    workers = fleet.fleet_snapshot()
    serving = Counter(queue for worker in workers for queue in worker.queues)
    queues = configured_queues() | fleet.served_queues(workers)
    depths = fleet.queue_depths(queues)
    return metrics.fleet_families(
        workers_up=len(workers), workers_by_queue={queue: serving[queue] for queue in queues}, depths=depths
    )


def configured_queues() -> set[str]:
    """The queues that jobs' steps are routed to, and Celery's default one. Without the
    database the scrape still answers, with what the workers say."""
    try:
        routed = set(Step.objects.order_by().values_list("queue", flat=True).distinct())
    except DatabaseError as exc:
        logger.warning("metrics: the steps' queues could not be read: %s", exc)
        routed = set()
    return {settings.CELERY_TASK_DEFAULT_QUEUE, *routed}

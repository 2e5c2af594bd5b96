"""Reads of the Workers page and `GET /workers/`: the live workers as Celery knows them
(workers.fleet), what the StepRun records say each one runs, the queues it was drained
from here (the audit trail), and the workers recently lost (steps reaped `worker lost`)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.utils import timezone

from core.models import AuditEvent
from runs.choices import REASON_WORKER_LOST, StepState
from runs.models import StepRun

from .fleet import Worker, fleet_snapshot, queue_depths, served_queues

# The audit trail's names for a worker and its two actions (workers/services.py).
AUDIT_OBJECT = "worker"
DRAIN, GIVE_BACK = "drain", "give_back"
LOST_HOURS = 24  # "recently lost": a day, so last night's losses are still there in the morning
LOST_WINDOW = timedelta(hours=LOST_HOURS)
LOST_LIMIT = 50


@dataclass(frozen=True)
class LiveWorker:
    worker: Worker
    steps: list[StepRun]  # RUNNING on this worker, oldest first
    drained: tuple[str, ...]  # queues drained from it here (not since given back), for "give back"


@dataclass(frozen=True)
class LostStep:
    """A step reaped `worker lost`: the last sign of a worker that stopped answering."""

    step: StepRun
    live: bool  # a worker of that name answers again

    @property
    def hostname(self) -> str:
        return node_of(self.step.worker)


@dataclass(frozen=True)
class QueueLoad:
    name: str
    depth: int  # messages waiting in the broker
    workers: int  # live workers consuming from it


@dataclass(frozen=True)
class Fleet:
    workers: list[LiveWorker]
    # RUNNING on a worker that did not answer: lost, or cut off, until its heartbeat says
    # (the scheduler reaps it `worker lost` after the heartbeat timeout), oldest first.
    unanswered: list[StepRun]
    lost: list[LostStep]
    queues: list[QueueLoad]  # every queue a live worker consumes from or was drained from, by name


def fleet_overview(*, now: datetime | None = None) -> Fleet:
    """The whole fleet, from one cached Celery answer, three queries and one broker round trip."""
    workers = fleet_snapshot()
    names = {w.hostname for w in workers}
    running = steps_running()
    by_node: dict[str, list[StepRun]] = defaultdict(list)
    for step in running:
        by_node[node_of(step.worker)].append(step)
    drained = drained_queues(workers)
    return Fleet(
        workers=[LiveWorker(w, by_node[w.hostname], drained.get(w.hostname, ())) for w in workers],
        unanswered=[step for step in running if node_of(step.worker) not in names],
        lost=steps_lost(since=(now or timezone.now()) - LOST_WINDOW, live=names),
        queues=queue_loads(workers, also=[q for queues in drained.values() for q in queues]),
    )


def queue_loads(workers: list[Worker], also: Iterable[str] = ()) -> list[QueueLoad]:
    """The queues `workers` consume from, and `also` (a drained queue's steps wait there)."""
    depths = queue_depths(served_queues(workers) | set(also))
    return [QueueLoad(name, depth, sum(name in w.queues for w in workers)) for name, depth in sorted(depths.items())]


def node_of(step_worker: str) -> str:
    """The Celery node name of StepRun.worker (`<node name>:<pid of the pool process>`)."""
    return step_worker.rpartition(":")[0]


def steps_running() -> list[StepRun]:
    return list(StepRun.objects.filter(state=StepState.RUNNING).order_by("started_at", "pk"))


def steps_lost(*, since: datetime, live: set[str]) -> list[LostStep]:
    lost = StepRun.objects.filter(reason=REASON_WORKER_LOST, finished_at__gte=since).order_by("-finished_at")
    return [LostStep(step, node_of(step.worker) in live) for step in lost[:LOST_LIMIT]]


def drained_queues(workers: Iterable[Worker]) -> dict[str, tuple[str, ...]]:
    """{hostname: queues} drained here since the worker started and not consumed again
    (a restarted worker consumes its own queues again, whatever was drained before)."""
    started = {w.hostname: w.started_at for w in workers}
    events = AuditEvent.objects.filter(object_type=AUDIT_OBJECT, object_id__in=started, action__in=(DRAIN, GIVE_BACK))
    last: dict[str, dict[str, str]] = defaultdict(dict)  # hostname → queue → last action
    for event in events.order_by("at", "id"):
        since = started[event.object_id]
        if since is None or event.at >= since:
            last[event.object_id][event.diff.get("queue", "")] = event.action
    queues = {w.hostname: w.queues for w in workers}
    return {
        hostname: tuple(sorted(q for q, action in actions.items() if action == DRAIN and q not in queues[hostname]))
        for hostname, actions in last.items()
    }

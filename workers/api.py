"""`/workers/`: the live worker fleet (viewer role), and draining a worker from a queue
and giving it back (editor role)."""

from __future__ import annotations

from typing import Protocol

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import APIException, NotFound
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api.schema import ErrorSerializer
from core.audit import actor_label
from core.errors import InputError
from core.permissions import IsViewer, ViewerReadsEditorWrites
from runs.links import run_path
from runs.models import StepRun

from . import selectors, services
from .fleet import Worker, live_workers

QUEUE_MAX = 200  # twice what a step can name (StepRun.queue): anything longer is not a queue of ours


class QueueChange(Protocol):
    def __call__(self, *, worker: Worker, queue: str, by: str) -> None: ...


class CurrentStepSerializer(serializers.Serializer):
    """A step RUNNING on a worker, as its StepRun record says."""

    run = serializers.CharField(source="run_id", help_text="run id")
    step = serializers.CharField(source="name", help_text="step name")
    type = serializers.CharField()
    queue = serializers.CharField()
    started_at = serializers.DateTimeField()
    process = serializers.SerializerMethodField(help_text="pid of the pool process running it")
    url = serializers.SerializerMethodField(help_text="the run's page")

    def get_process(self, step: StepRun) -> int | None:
        pid = step.worker.rpartition(":")[2]
        return int(pid) if pid.isdigit() else None

    def get_url(self, step: StepRun) -> str:
        return run_path(step.run_id)


class WorkerSerializer(serializers.Serializer):
    hostname = serializers.CharField(source="worker.hostname", help_text="Celery node name, e.g. celery@host1")
    host = serializers.CharField(source="worker.host")
    pid = serializers.IntegerField(source="worker.pid", help_text="pid of the worker's main process")
    queues = serializers.ListField(child=serializers.CharField(), source="worker.queues", help_text="consumed now")
    drained = serializers.ListField(
        child=serializers.CharField(), help_text="queues drained from it here, that it can be given back"
    )
    concurrency = serializers.IntegerField(source="worker.concurrency", help_text="pool processes")
    version = serializers.CharField(source="worker.version", help_text='"celery 5.5.3"; empty if not said in time')
    started_at = serializers.DateTimeField(source="worker.started_at", allow_null=True)
    last_seen = serializers.DateTimeField(source="worker.last_seen", help_text="when it last answered")
    steps = CurrentStepSerializer(many=True, help_text="what it runs now")


class LostWorkerSerializer(serializers.Serializer):
    """A worker that stopped answering with a step running: the step was reaped `worker lost`."""

    hostname = serializers.CharField(help_text="Celery node name of the lost worker")
    worker = serializers.CharField(source="step.worker", help_text="`<node name>:<pid>` of the pool process")
    lost_at = serializers.DateTimeField(source="step.finished_at", help_text="when its step was reaped")
    run = serializers.CharField(source="step.run_id")
    step = serializers.CharField(source="step.name")
    queue = serializers.CharField(source="step.queue")
    url = serializers.SerializerMethodField(help_text="the run's page")
    live = serializers.BooleanField(help_text="a worker of that name answers again")

    def get_url(self, lost: selectors.LostStep) -> str:
        return run_path(lost.step.run_id)


class UnansweredStepSerializer(serializers.Serializer):
    """A step RUNNING on a worker that did not answer: cut off or lost, until its heartbeat
    stops long enough for the scheduler to reap it `worker lost`."""

    hostname = serializers.SerializerMethodField(help_text="Celery node name of the worker that does not answer")
    worker = serializers.CharField(help_text="`<node name>:<pid>` of the pool process")
    run = serializers.CharField(source="run_id")
    step = serializers.CharField(source="name")
    queue = serializers.CharField()
    started_at = serializers.DateTimeField()
    heartbeat_at = serializers.DateTimeField(help_text="the worker's last heartbeat for it")
    url = serializers.SerializerMethodField(help_text="the run's page")

    def get_hostname(self, step: StepRun) -> str:
        return selectors.node_of(step.worker)

    def get_url(self, step: StepRun) -> str:
        return run_path(step.run_id)


class QueueSerializer(serializers.Serializer):
    name = serializers.CharField()
    depth = serializers.IntegerField(help_text="messages waiting in the broker")
    workers = serializers.IntegerField(help_text="live workers consuming from it")


class FleetSerializer(serializers.Serializer):
    workers = WorkerSerializer(many=True, help_text="every worker that answered within 1 s, by hostname")
    unanswered = UnansweredStepSerializer(many=True, help_text="steps RUNNING on a worker that did not answer")
    lost = LostWorkerSerializer(
        many=True, help_text=f"steps reaped `worker lost` in the last {selectors.LOST_HOURS} hours, newest first"
    )
    queues = QueueSerializer(many=True, help_text="every queue a live worker consumes from, or was drained from")


class QueueChoiceSerializer(serializers.Serializer):
    queue = serializers.CharField(max_length=QUEUE_MAX, help_text="a queue name, e.g. gpu")


class QueueChangeSerializer(serializers.Serializer):
    hostname = serializers.CharField()
    queue = serializers.CharField()
    consuming = serializers.BooleanField(help_text="whether the worker now takes messages from the queue")


class WorkerDidNotAnswer(APIException):
    """503, with Retry-After like the API's other 503s: the worker may only have been busy."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_code = "worker_did_not_answer"
    wait = 1  # DRF's exception handler answers it as Retry-After


class WorkersView(APIView):
    """Every live worker with the steps it runs now, the workers recently lost, and the queues
    consumed with their depth (viewer role). Built from Celery's own inspect answers (cached
    for a few seconds) and the StepRun records: a worker that does not answer within 1 s is left out."""

    permission_classes = [IsViewer]

    @extend_schema(responses={200: FleetSerializer})
    def get(self, request: Request) -> Response:
        return Response(FleetSerializer(selectors.fleet_overview()).data)


_NOT_LIVE = OpenApiResponse(ErrorSerializer, description="no live worker has this hostname")


class DrainView(APIView):
    """Stop a worker taking messages from one of its queues (editor role). It finishes what
    it runs, and what it already took from the queue; Celery forgets the drain if it restarts.
    503 also when the worker does not acknowledge within 1 s (busy, or gone): nothing is audited."""

    permission_classes = [ViewerReadsEditorWrites]

    @extend_schema(request=QueueChoiceSerializer, responses={202: QueueChangeSerializer, 404: _NOT_LIVE})
    def post(self, request: Request, hostname: str) -> Response:
        return _queue_change(request, hostname, services.worker_drain, consuming=False)


class GiveBackView(APIView):
    """Let a worker take messages again from a queue it was drained from here (editor role).
    503 also when the worker does not acknowledge within 1 s (busy, or gone): nothing is audited."""

    permission_classes = [ViewerReadsEditorWrites]

    @extend_schema(request=QueueChoiceSerializer, responses={202: QueueChangeSerializer, 404: _NOT_LIVE})
    def post(self, request: Request, hostname: str) -> Response:
        return _queue_change(request, hostname, services.worker_give_back, consuming=True)


def _queue_change(request: Request, hostname: str, change: QueueChange, *, consuming: bool) -> Response:
    # A body that is no JSON object is refused before the worker is looked up (a broadcast);
    # an unknown worker is 404 before its queue is checked against the worker's queues.
    if not isinstance(request.data, dict):
        raise InputError('the request body must be a JSON object: {"queue": "<queue name>"}')
    worker = _live(hostname)
    choice = QueueChoiceSerializer(data=request.data)
    choice.is_valid(raise_exception=True)
    queue = choice.validated_data["queue"]
    try:
        change(worker=worker, queue=queue, by=actor_label(request.user))
    except services.WorkerSilent as error:
        raise WorkerDidNotAnswer(str(error)) from error
    body = {"hostname": hostname, "queue": queue, "consuming": consuming}
    return Response(QueueChangeSerializer(body).data, status=status.HTTP_202_ACCEPTED)


def _live(hostname: str) -> Worker:
    """The worker as it answers now: a write acts on what it consumes now, not on the cache."""
    workers = live_workers()
    worker = next((w for w in workers if w.hostname == hostname), None)
    if worker is None:
        names = ", ".join(w.hostname for w in workers) or "none"
        raise NotFound(f'worker "{hostname}" is not live: no worker of that name answered (live workers: {names})')
    return worker

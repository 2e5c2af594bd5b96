"""Draining a worker from a queue and giving it back: Celery's own cancel_consumer and
add_consumer control commands, audited like every editor action.

A drained worker finishes what it runs and what it already took from the queue (at most
one message per process: prefetch multiplier 1), and takes nothing more from it. Celery
forgets a drain when the worker restarts: it consumes the queues of its command line again.
"""

from __future__ import annotations

from collections.abc import Callable

from core.errors import InputError
from core.models import AuditEvent

from . import fleet
from .fleet import Worker
from .selectors import AUDIT_OBJECT, DRAIN, GIVE_BACK, drained_queues


class WorkerSilent(Exception):
    """The worker did not acknowledge the command in time (it may be busy, or gone)."""


def worker_drain(*, worker: Worker, queue: str, by: str) -> None:
    """Stop `worker` taking messages from `queue` (one it consumes now), for `by`."""
    if queue not in worker.queues:
        raise InputError(
            f'worker {worker.hostname} does not consume from queue "{queue}"; it consumes: {_names(worker.queues)}',
            {"queue": [f"not a queue of this worker (its queues: {_names(worker.queues)})"]},
        )
    _send(fleet.stop_consuming, worker, queue)
    _audit(by, DRAIN, worker, queue)


def worker_give_back(*, worker: Worker, queue: str, by: str) -> None:
    """Let `worker` take messages from `queue` again, after it was drained from it here, for `by`."""
    drained = drained_queues([worker]).get(worker.hostname, ())
    if queue not in drained:
        already = " (it consumes from it now)" if queue in worker.queues else ""
        raise InputError(
            f'worker {worker.hostname} was not drained from queue "{queue}"{already}; '
            f"queues to give back: {_names(drained)}",
            {"queue": [f"not a queue drained from this worker{already}"]},
        )
    _send(fleet.start_consuming, worker, queue)
    _audit(by, GIVE_BACK, worker, queue)


def _send(command: Callable[[str, str], bool], worker: Worker, queue: str) -> None:
    acknowledged = command(worker.hostname, queue)
    # Its queues changed (or may have): the next look at the fleet asks the workers again.
    fleet.forget_snapshot()
    if not acknowledged:
        raise WorkerSilent(f"worker {worker.hostname} did not answer in time; look at the Workers page and try again")


def _audit(actor: str, action: str, worker: Worker, queue: str) -> None:
    AuditEvent.objects.create(
        actor=actor, action=action, object_type=AUDIT_OBJECT, object_id=worker.hostname, diff={"queue": queue}
    )


def _names(queues: tuple[str, ...]) -> str:
    return ", ".join(queues) or "none"

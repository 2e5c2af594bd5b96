from celery import signals
from django.apps import AppConfig

from . import metrics_server


class WorkersConfig(AppConfig):
    name = "workers"

    def ready(self) -> None:
        # The metrics' Celery hooks (workers/metrics_server.py): every process that sends a step
        # stamps it; a worker's main process serves its pool's metrics, a pool process leaving
        # drops its live gauges. dispatch_uid: connected once, however often ready() runs.
        hooks = [
            (signals.before_task_publish, metrics_server.stamp_sent_at),
            (signals.worker_init, metrics_server.start_worker_metrics),
            (signals.worker_process_shutdown, metrics_server.mark_process_dead),
        ]
        for signal, hook in hooks:
            signal.connect(hook, weak=False, dispatch_uid=f"nomaflow.metrics.{hook.__name__}")
        # jobs validates steps against the types registered here (jobs/step_types.py): it may
        # not import workers, which is to its right. Imported here, once every app is loaded,
        # as a step type's module may reach for models.
        from jobs import step_types

        from .steps import REGISTRY

        for step_type in REGISTRY.values():
            step_types.register(step_type)

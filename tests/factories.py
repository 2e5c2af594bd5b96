"""factory_boy factories for jobs, steps and connectors."""

from __future__ import annotations

from typing import Any

import factory

from jobs.models import Connector, Job, Step
from runs.models import Run


class ConnectorFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Connector
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"conn{n}")
    kind = "postgres"
    url = "postgresql://postgres@127.0.0.1:5432/postgres"


class JobFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Job

    id = factory.Sequence(lambda n: f"job-{n}")
    name = factory.LazyAttribute(lambda job: job.id.replace("-", " ").title())
    params = factory.LazyFunction(dict)


class StepFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Step

    job = factory.SubFactory(JobFactory)
    position = factory.Sequence(lambda n: n + 1)
    name = factory.LazyAttribute(lambda step: f"F{step.position:04d}")
    type = "python"
    op_kwargs = factory.LazyFunction(lambda: {"callable": "workers.builtins:noop"})


def make_job(*steps: dict[str, Any], **job_fields: Any) -> Job:
    """A job with the given steps, named F0001, F0002, … unless a step says otherwise.

    Each step is a dict of Step fields; `callable` and other op_kwargs may be given flat
    for python steps: make_job({"callable": "workers.builtins:sleep", "seconds": 1}).
    """
    job = JobFactory(**job_fields)
    for position, spec in enumerate(steps, start=1):
        spec = dict(spec)
        fields = {k: spec.pop(k) for k in list(spec) if k in _STEP_FIELDS}
        fields.setdefault("op_kwargs", spec)
        StepFactory(job=job, position=position, name=fields.pop("name", f"F{position:04d}"), **fields)
    return job


_STEP_FIELDS = {"name", "type", "op_kwargs", "enabled", "retries", "retry_delay_s", "timeout_s", "queue"}


def end_as(run: Run, *states: str) -> Run:
    """Move a queued run's steps to `states` (PENDING leaves a step alone) and the run to
    FAILED or SUCCEEDED, through the guarded transitions, as a worker would."""
    run.mark_running()
    for step, state in zip(run.steps.order_by("position"), states, strict=True):
        if state != "PENDING":
            step.claim(worker="w")
            step.finish(state)
    run.finish("FAILED" if "FAILED" in states else "SUCCEEDED")
    return Run.objects.get(pk=run.pk)


def admin_job_form(**changes: Any) -> dict[str, Any]:
    """The POST body of the admin's job form: one noop python step, with `changes` on top."""
    form = {
        "id": "nightly", "name": "Nightly", "description": "", "params": "{}", "timezone": "UTC", "catchup": "skip",
        "max_concurrent_runs": "1", "log_level": "INFO", "notify_on": "[]", "notify_emails": "[]", "enabled": "on",
        "steps-TOTAL_FORMS": "1", "steps-INITIAL_FORMS": "0", "steps-MIN_NUM_FORMS": "0", "steps-MAX_NUM_FORMS": "1000",
        "steps-0-position": "1", "steps-0-name": "F0001", "steps-0-type": "python", "steps-0-enabled": "on",
        "steps-0-op_kwargs": '{"callable": "workers.builtins:noop"}', "steps-0-retries": "0",
        "steps-0-retry_delay_s": "0", "steps-0-queue": "default",
    }  # fmt: skip
    return {**form, **changes}

"""runs.services.run_trigger: validation, the snapshot, idempotency. No worker needed:
runs stay QUEUED, and bad input must leave no row behind."""

from __future__ import annotations

from typing import Any

import pytest

from core.errors import InputError
from core.models import AuditEvent
from jobs.models import Job
from runs.models import Run, StepRun
from runs.services import run_trigger
from tests.factories import ConnectorFactory, make_job

pytestmark = pytest.mark.django_db


def trigger(job: Job, overrides: Any = None, **kwargs: Any) -> Run:
    return run_trigger(job_id=job.id, overrides=overrides, triggered_by=kwargs.pop("triggered_by", "api"), **kwargs)[0]


def assert_refused(job: Job, overrides: Any, field: str, text: str) -> None:
    with pytest.raises(InputError) as refused:
        trigger(job, overrides)
    assert field in refused.value.errors, refused.value.errors
    assert text in refused.value.detail
    assert not Run.objects.exists() and not StepRun.objects.exists() and not AuditEvent.objects.exists()


def test_trigger_creates_a_queued_run_with_pending_steps_and_an_audit_event() -> None:
    job = make_job({"callable": "workers.builtins:noop"}, {"callable": "workers.builtins:noop", "enabled": False})

    run = trigger(job, triggered_by="user:otto")

    assert (run.state, run.triggered_by, run.log_level) == ("QUEUED", "user:otto", "INFO")
    assert list(run.steps.values_list("name", "state", "reason")) == [
        ("F0001", "PENDING", ""),
        ("F0002", "CANCELED", "skipped: disabled"),
    ]
    event = AuditEvent.objects.get()
    assert (event.actor, event.action, event.object_id) == ("user:otto", "trigger", run.id)


def test_snapshot_merges_params_and_step_overrides() -> None:
    job = make_job(
        {"callable": "workers.builtins:echo", "message": "a", "level": "INFO"},
        {"callable": "workers.builtins:noop"},
        params={"env": "prod", "limit": 10},
    )

    run = trigger(
        job,
        {
            "params": {"env": "sandbox", "new": True},
            "steps": {"F0001": {"op_kwargs": {"message": "b"}}, "F0002": {"enabled": False}},
            "log_level": "DEBUG",
        },
    )

    assert run.parameters == {
        "params": {"env": "sandbox", "limit": 10, "new": True},
        "steps": {
            "F0001": {
                "op_kwargs": {"callable": "workers.builtins:echo", "message": "b", "level": "INFO"},
                "enabled": True,
            },
            "F0002": {"op_kwargs": {"callable": "workers.builtins:noop"}, "enabled": False},
        },
    }
    assert run.log_level == "DEBUG"
    job.refresh_from_db()
    assert job.params == {"env": "prod", "limit": 10}  # the job itself is untouched


def test_unknown_job_raises_does_not_exist() -> None:
    with pytest.raises(Job.DoesNotExist):
        run_trigger(job_id="nope", triggered_by="api")


@pytest.mark.parametrize(
    ("overrides", "field", "text"),
    [
        ([], "", "must be a JSON object"),
        ({"params": [1, 2]}, "params", "must be an object"),
        ({"params": {"limit": "ten"}}, "params.limit", "expected number"),
        ({"steps": {"F9999": {"enabled": False}}}, "steps.F9999", 'unknown step "F9999" (steps: F0001)'),
        ({"steps": {"F0001": True}}, "steps.F0001", "must be an object"),
        ({"steps": {"F0001": {"enabled": "no"}}}, "steps.F0001.enabled", "true or false"),
        (
            {"steps": {"F0001": {"op_kwargs": {"callable": "os:system"}}}},
            "steps.F0001.op_kwargs.callable",
            "NOMAFLOW_PYTHON_STEP_MODULES",
        ),
        (
            {"steps": {"F0001": {"op_kwargs": {"seconds": 1}}}},
            "steps.F0001.op_kwargs.callable",
            "cannot take these op_kwargs",
        ),
        ({"steps": {"F0001": {"enabled": False}}}, "steps", "every step is disabled"),
        ({"log_level": "TRACE"}, "log_level", "INFO or DEBUG"),
        ({"colour": "red"}, "colour", 'unknown field "colour"'),
    ],
)
def test_bad_overrides_are_refused_with_the_field_and_nothing_is_created(overrides: Any, field: str, text: str) -> None:
    job = make_job({"callable": "workers.builtins:noop"}, params={"limit": 10})
    if field == "":
        with pytest.raises(InputError, match=text):
            trigger(job, overrides)
        assert not Run.objects.exists()
        return
    assert_refused(job, overrides, field, text)


def test_a_reference_to_a_missing_param_is_refused() -> None:
    job = make_job({"callable": "workers.builtins:echo", "message": "{{ params.who }}"})

    assert_refused(job, {}, "steps.F0001.op_kwargs", "there is no param who")


def test_an_unknown_connector_is_refused_naming_the_known_ones() -> None:
    ConnectorFactory(name="erp")
    ConnectorFactory(name="sandbox")
    job = make_job(
        {"type": "sql_query", "op_kwargs": {"connector": "{{ params.db }}", "sql": "select 1"}}, params={"db": "erp"}
    )

    assert_refused(job, {"params": {"db": "warehouse"}}, "steps.F0001.op_kwargs.connector",
                   'connector "warehouse" does not exist (known: erp, sandbox)')  # fmt: skip


def test_the_same_idempotency_key_returns_the_same_run() -> None:
    job = make_job({"callable": "workers.builtins:noop"})

    first, created = run_trigger(
        job_id=job.id, overrides={"params": {"a": 1}}, triggered_by="api", idempotency_key="k1"
    )
    again, created_again = run_trigger(
        job_id=job.id, overrides={"params": {"a": 1}}, triggered_by="api", idempotency_key="k1"
    )

    assert (created, created_again) == (True, False)
    assert again.pk == first.pk and Run.objects.count() == 1


def test_reusing_an_idempotency_key_with_another_body_is_refused() -> None:
    job = make_job({"callable": "workers.builtins:noop"})
    run_trigger(job_id=job.id, overrides={}, triggered_by="api", idempotency_key="k1")

    with pytest.raises(InputError, match="different body"):
        run_trigger(job_id=job.id, overrides={"params": {"a": 2}}, triggered_by="api", idempotency_key="k1")
    assert Run.objects.count() == 1


def test_runs_over_the_concurrency_limit_wait_undispatched() -> None:
    job = make_job({"callable": "workers.builtins:noop"}, max_concurrent_runs=2)

    runs = [trigger(job) for _ in range(3)]

    dispatched = [Run.objects.get(pk=r.pk).dispatched_at is not None for r in runs]
    assert dispatched == [True, True, False]

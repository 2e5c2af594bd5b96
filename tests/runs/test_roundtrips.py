"""runs.roundtrips: several models' rows in one round trip (PostgreSQL), and rows read by hand-written
SQL made into instances exactly as the ORM makes them."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.models import Value
from django.db.models.functions import Lower
from django.test.utils import CaptureQueriesContext

from core.audit import audit_event
from core.models import AuditEvent
from runs.models import Run, StepRun
from runs.roundtrips import execute_together, insert_together, instances
from runs.statements import select_sql
from runs.transitions import SqlNames
from tests.factories import make_job

pytestmark = pytest.mark.django_db


def test_rows_of_three_models_go_in_one_statement_and_come_back_with_their_keys() -> None:
    job = make_job({"callable": "workers.builtins:noop"})
    run = Run(job=job, parameters={"params": {"note": "it's 100% ok; really"}}, triggered_by="api")
    steps = [StepRun(run=run, position=p, name=f"F{p:04d}", type="python", state="PENDING") for p in (1, 2)]
    event = audit_event(actor="api", action="trigger", obj=run, diff={"overrides": {"x": ";"}})

    with CaptureQueriesContext(connection) as queries:
        insert_together([run], steps, [event])

    assert len(queries) == 1
    assert all(isinstance(s.pk, int) for s in steps) and isinstance(event.pk, int)
    assert list(run.steps.order_by("position").values_list("pk", "name")) == [(s.pk, s.name) for s in steps]
    assert Run.objects.get().parameters == {"params": {"note": "it's 100% ok; really"}}
    assert AuditEvent.objects.get(pk=event.pk).diff == {"overrides": {"x": ";"}}
    assert not run._state.adding


def test_empty_batches_are_skipped() -> None:
    job = make_job({"callable": "workers.builtins:noop"})
    run = Run(job=job, parameters={}, triggered_by="api")

    insert_together([run], [], [])

    assert Run.objects.filter(pk=run.pk).exists()


def test_every_field_is_stored_as_bulk_create_stores_it() -> None:
    at = "2026-11-28T10:00Z"

    def rows() -> tuple[Run, StepRun, AuditEvent]:
        job = make_job({"callable": "workers.builtins:noop"})  # one each: one cron fire per job and time
        run = Run(job=job, parameters={"params": {"n": [1, None]}}, triggered_by="cron", scheduled_for=at, queued_at=at)
        step = StepRun(run=run, position=1, name="F0001", type="http", state="PENDING", timeout_s=2.5, task_id="t")
        event = audit_event(actor="cron", action="trigger", obj=run, diff={"overrides": {}})
        event.at = at
        return run, step, event

    ours, theirs = rows(), rows()
    insert_together([ours[0]], [ours[1]], [ours[2]])
    for obj in theirs:
        type(obj).objects.bulk_create([obj])

    ids = {"id", "run_id", "job_id", "object_id"}
    for mine, twin in zip(ours, theirs, strict=True):
        stored, expected = (type(obj).objects.filter(pk=obj.pk).values().get() for obj in (mine, twin))
        assert {k: v for k, v in stored.items() if k not in ids} == {k: v for k, v in expected.items() if k not in ids}


def test_a_batch_with_an_expression_is_stored_by_djangos_own_insert() -> None:
    """pre_save hands over a db_default or an F() as an expression, which only Django's insert
    compiler turns into SQL: that batch leaves the shared statement, the others stay in it."""
    job = make_job({"callable": "workers.builtins:noop"})
    run = Run(job=job, parameters={}, triggered_by=Lower(Value("API")))
    event = audit_event(actor="a", action="trigger", obj=job)

    insert_together([run], [event])

    assert Run.objects.get(pk=run.pk).triggered_by == "api"
    assert AuditEvent.objects.filter(pk=event.pk).exists()


@pytest.mark.parametrize(("model", "without"), [(Run, ()), (Run, ("parameters",)), (StepRun, ())])
def test_rows_read_by_hand_become_the_instances_the_orm_reads(model: type, without: tuple[str, ...]) -> None:
    """select_sql and instances both follow the model's fields: a field added to Run or
    StepRun is read and converted on the claim's and the step end's path too."""
    job = make_job({"callable": "workers.builtins:noop"})
    run = Run.objects.create(job=job, parameters={"params": {"n": [1, "two"]}}, triggered_by="api", log_level="DEBUG")
    step = StepRun.objects.create(run=run, position=1, name="F0001", type="python", state="PENDING", timeout_s=1.5)
    pk = (run if model is Run else step).pk

    rows = execute_together([(select_sql(model, f"{SqlNames(model).col('id')} = %s", without=without), [pk])])[0]
    [read] = instances(model, rows, without=without)

    expected = model.objects.get(pk=pk)
    assert read.get_deferred_fields() == {model._meta.get_field(name).attname for name in without}
    for field in model._meta.concrete_fields:
        if field.name not in without:
            assert getattr(read, field.attname) == getattr(expected, field.attname), field.name
    assert not read._state.adding

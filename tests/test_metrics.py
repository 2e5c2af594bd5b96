"""The metrics (core/metrics.py, runs/measures.py, nomaflow/metrics_view.py): who may read
/metrics (token, allowed networks, loopback by default) and how the others are refused;
every label bounded; each event counted once, after its commit, never for a rollback.
(tests/integration/test_metrics_scrape.py scrapes real processes after real runs.)"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.test import Client
from django.utils import timezone
from prometheus_client import REGISTRY
from prometheus_client.metrics import MetricWrapperBase

from core import metrics
from nomaflow.env import env_networks
from runs import measures
from runs.models import Run
from runs.services import run_cancel, run_trigger, steps_reap_lost
from tests.factories import make_job
from workers import metrics_server, scheduler

NOOP = {"callable": "workers.builtins:noop"}
TOKEN = "s3cret-scrape-token"
OUTSIDE = "203.0.113.7"  # TEST-NET-3: never loopback, never allowed by default


def sample(name: str, **labels: str) -> float:
    """The current value of a sample in this process's registry (0 if it was never recorded)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


def scrape(remote: str = "127.0.0.1", authorization: str | None = None, method: str = "get") -> Any:
    headers = {"HTTP_AUTHORIZATION": authorization} if authorization is not None else {}
    return getattr(Client(), method)("/metrics", REMOTE_ADDR=remote, **headers)


@pytest.fixture
def token(settings: Any) -> str:
    settings.NOMAFLOW_METRICS_TOKEN = TOKEN
    return TOKEN


# --- access -----------------------------------------------------------------------------------


def assert_refused(response: Any, status: int) -> None:
    assert response.status_code == status
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    body = response.content.decode()
    assert "<" not in body and "nomaflow_" not in body  # a line of text: neither a page nor a metric
    assert TOKEN not in body


@pytest.mark.django_db
def test_loopback_reads_the_exposition_by_default() -> None:
    response = scrape()
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    body = response.content.decode()
    assert "# TYPE nomaflow_runs_finished_total counter" in body
    assert "# TYPE nomaflow_step_duration_seconds histogram" in body
    assert "# TYPE nomaflow_workers_up gauge" in body
    assert response["Cache-Control"].startswith("max-age=0")


@pytest.mark.django_db
def test_ipv6_loopback_and_ipv4_mapped_loopback_are_loopback() -> None:
    assert scrape("::1").status_code == 200
    assert scrape("::ffff:127.0.0.1").status_code == 200


@pytest.mark.django_db
def test_another_network_is_403_without_a_token_configured() -> None:
    assert_refused(scrape(OUTSIDE), 403)


@pytest.mark.django_db
def test_another_network_is_401_when_a_token_could_let_it_in(token: str) -> None:
    response = scrape(OUTSIDE)
    assert_refused(response, 401)
    assert response["WWW-Authenticate"] == "Bearer"


@pytest.mark.django_db
def test_the_bearer_token_lets_in_from_anywhere(token: str) -> None:
    assert scrape(OUTSIDE, f"Bearer {token}").status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize(
    "authorization", ["Bearer wrong", f"Bearer {TOKEN}x", f"Basic {TOKEN}", f"Token {TOKEN}", "Bearer", TOKEN]
)
def test_a_wrong_token_is_401_even_from_an_allowed_network(token: str, authorization: str) -> None:
    assert_refused(scrape("127.0.0.1", authorization), 401)


@pytest.mark.django_db
def test_a_token_is_401_when_none_is_configured() -> None:
    assert_refused(scrape("127.0.0.1", "Bearer "), 401)
    assert_refused(scrape("127.0.0.1", "Bearer anything"), 401)


@pytest.mark.django_db
def test_an_allowlisted_network_reads_and_loopback_no_longer_does(settings: Any) -> None:
    settings.NOMAFLOW_METRICS_ALLOW = [ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("fd00::/8")]
    assert scrape("10.20.30.40").status_code == 200
    assert scrape("::ffff:10.20.30.40").status_code == 200
    assert scrape("fd12::1").status_code == 200
    assert_refused(scrape("127.0.0.1"), 403)
    assert_refused(scrape("11.0.0.1"), 403)


@pytest.mark.django_db
def test_an_empty_allowlist_lets_only_the_token_in(settings: Any, token: str) -> None:
    settings.NOMAFLOW_METRICS_ALLOW = []
    assert_refused(scrape("127.0.0.1"), 401)
    assert scrape("127.0.0.1", f"Bearer {token}").status_code == 200


@pytest.mark.django_db
def test_a_request_without_a_peer_address_needs_the_token(token: str) -> None:
    assert_refused(scrape(""), 401)
    assert_refused(scrape("not-an-address"), 401)


@pytest.mark.django_db
@pytest.mark.parametrize("method", ["post", "put", "delete"])
def test_only_get_and_head_are_answered(method: str) -> None:
    response = scrape(method=method)
    assert response.status_code == 405
    assert b"<" not in response.content


def test_the_worker_port_applies_the_same_rule(token: str) -> None:
    app = metrics_server.guarded(lambda environ, start_response: [b"metrics"])
    answers: list[str] = []

    def call(**environ: str) -> bytes:
        return b"".join(app(environ, lambda status, headers: answers.append(status)))

    assert call(REMOTE_ADDR="127.0.0.1") == b"metrics"
    assert call(REMOTE_ADDR=OUTSIDE, HTTP_AUTHORIZATION=f"Bearer {token}") == b"metrics"
    refused = call(REMOTE_ADDR=OUTSIDE)
    assert answers[-1] == "401 Unauthorized" and TOKEN.encode() not in refused


@pytest.mark.parametrize("value", ["10.0.0.0/33", "localhost", "10.0.0.0/8,,bogus"])
def test_a_bad_network_stops_the_settings(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("NOMAFLOW_METRICS_ALLOW", value)
    with pytest.raises(ImproperlyConfigured, match="NOMAFLOW_METRICS_ALLOW: .* is not a network"):
        env_networks("NOMAFLOW_METRICS_ALLOW", "")


def test_networks_take_bare_addresses_and_host_bits() -> None:
    assert env_networks("UNSET_FOR_THIS_TEST", "10.1.2.3,192.168.1.7/24") == [
        ipaddress.ip_network("10.1.2.3/32"),
        ipaddress.ip_network("192.168.1.0/24"),
    ]


# --- labels -----------------------------------------------------------------------------------


def every_metric() -> Iterator[MetricWrapperBase]:
    return (value for value in vars(metrics).values() if isinstance(value, MetricWrapperBase))


def test_every_metric_is_named_by_convention_with_bounded_labels() -> None:
    found = list(every_metric())
    assert len(found) >= 12
    for metric in found:
        name = metric._name
        assert name.startswith("nomaflow_"), name
        assert set(metric._labelnames) <= metrics.LABELS, (name, metric._labelnames)
        if metric._type == "histogram":
            assert name.endswith("_seconds"), name
        if metric._type == "counter":
            assert not name.endswith("_total"), name  # the client adds it


@pytest.mark.parametrize(
    ("triggered_by", "kind"),
    [("cron", "cron"), ("api", "api"), ("cli", "cli"), ("user:ann", "user"), ("user:", "user"),
     ("system", "other"), ("robot:x", "other"), ("", "other")],
)  # fmt: skip
def test_the_trigger_label_is_a_kind_never_a_name(triggered_by: str, kind: str) -> None:
    assert metrics.trigger_kind(triggered_by) == kind


def test_fleet_gauges_name_queues_with_or_without_workers() -> None:
    families = metrics.fleet_families(workers_up=2, workers_by_queue={"default": 2, "gpu": 0}, depths={"gpu": 4})
    samples = {(s.name, tuple(s.labels.items())): s.value for family in families for s in family.samples}
    assert samples == {
        ("nomaflow_workers_up", ()): 2,
        ("nomaflow_queue_workers", (("queue", "default"),)): 2,
        ("nomaflow_queue_workers", (("queue", "gpu"),)): 0,
        ("nomaflow_queue_depth", (("queue", "gpu"),)): 4,
    }


@pytest.mark.django_db
def test_no_label_carries_a_run_id_or_a_user_name(django_capture_on_commit_callbacks: Any) -> None:
    job = make_job(NOOP)
    with django_capture_on_commit_callbacks(execute=True):
        run, _ = run_trigger(job_id=job.id, triggered_by="user:zebediah")
        run_cancel(run_id=run.id, by="user:zebediah")
    values = {
        value for family in REGISTRY.collect() if family.name.startswith("nomaflow_")
        for s in family.samples for value in s.labels.values()
    }  # fmt: skip
    assert job.id in values
    assert not any(run.id in value or "zebediah" in value for value in values)


# --- counted once, after the commit -------------------------------------------------------------


@pytest.mark.django_db
def test_a_trigger_counts_when_it_commits_and_not_when_it_rolls_back(django_capture_on_commit_callbacks: Any) -> None:
    job = make_job(NOOP)
    before = sample("nomaflow_runs_triggered_total", job=job.id, trigger="api")
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(RuntimeError):
        with transaction.atomic():
            run_trigger(job_id=job.id, triggered_by="api")
            raise RuntimeError("rolled back")
    assert sample("nomaflow_runs_triggered_total", job=job.id, trigger="api") == before

    with django_capture_on_commit_callbacks(execute=True):
        run_trigger(job_id=job.id, triggered_by="api")
    assert sample("nomaflow_runs_triggered_total", job=job.id, trigger="api") == before + 1


@pytest.mark.django_db
def test_canceling_a_queued_run_counts_its_end_and_cancel_latency_not_a_duration(
    django_capture_on_commit_callbacks: Any,
) -> None:
    job = make_job(NOOP)
    run, _ = run_trigger(job_id=job.id, triggered_by="api")
    with django_capture_on_commit_callbacks(execute=True):
        run_cancel(run_id=run.id, by="user:ann")
    assert sample("nomaflow_runs_finished_total", job=job.id, state="CANCELED") == 1
    assert sample("nomaflow_cancel_latency_seconds_count", job=job.id) == 1
    assert 0 <= sample("nomaflow_cancel_latency_seconds_sum", job=job.id) < 5
    assert sample("nomaflow_run_duration_seconds_count", job=job.id, state="CANCELED") == 0  # it never started


@pytest.mark.django_db
def test_a_reaped_step_counts_once_as_worker_lost(django_capture_on_commit_callbacks: Any) -> None:
    job = make_job(NOOP, NOOP)
    run, _ = run_trigger(job_id=job.id, triggered_by="api")
    first = run.steps.get(name="F0001")
    first.claim(worker="w1@host:42")
    run.mark_running()
    lines_before = sample("nomaflow_log_lines_written_total")
    later = timezone.now() + timedelta(seconds=10)
    for _ in range(2):  # the second pass finds nothing: nothing counted twice
        with django_capture_on_commit_callbacks(execute=True):
            steps_reap_lost(now=later)
    assert sample("nomaflow_steps_worker_lost_total", job=job.id, type="python") == 1
    assert sample("nomaflow_steps_finished_total", job=job.id, type="python", state="FAILED") == 1
    assert sample("nomaflow_step_duration_seconds_count", job=job.id, type="python", state="FAILED") == 1
    assert sample("nomaflow_runs_finished_total", job=job.id, state="FAILED") == 1
    assert sample("nomaflow_run_duration_seconds_count", job=job.id, state="FAILED") == 1
    assert sample("nomaflow_log_lines_written_total") == lines_before + 2  # the reaper's two lines


@pytest.mark.django_db
def test_a_cron_fire_observes_its_lag_once(django_capture_on_commit_callbacks: Any) -> None:
    job = make_job(NOOP, schedule="* * * * *")
    at = timezone.now().replace(second=0, microsecond=0)
    with django_capture_on_commit_callbacks(execute=True):
        scheduler.fire_cron(job, at, now=at + timedelta(seconds=2.5))
        scheduler.fire_cron(job, at, now=at + timedelta(seconds=3))  # the same fire again: no run, no lag
    assert Run.objects.filter(job=job).count() == 1
    assert sample("nomaflow_scheduler_fire_lag_seconds_count", job=job.id) == 1
    assert sample("nomaflow_scheduler_fire_lag_seconds_sum", job=job.id) == pytest.approx(2.5)


@pytest.mark.django_db
def test_the_leader_gauge_follows_the_lead() -> None:
    job_scheduler = scheduler.Scheduler()
    try:
        led = job_scheduler.step()  # leads unless a scheduler process of this session still holds the lock
        assert sample("nomaflow_scheduler_leader") == int(led)
    finally:
        job_scheduler.stop()
    assert sample("nomaflow_scheduler_leader") == 0


@pytest.mark.django_db
def test_a_claim_observes_the_wait_since_its_message_was_sent() -> None:
    job = make_job({**NOOP, "queue": "metrics-unit"})
    run, _ = run_trigger(job_id=job.id, triggered_by="api")
    step_run = run.steps.get()
    assert step_run.claim(worker="w")
    measures.step_claimed(step_run, job.id, sent_at=step_run.started_at.timestamp() - 0.25)
    measures.step_claimed(step_run, job.id, sent_at=None)  # a message from before the stamp: not measured
    assert sample("nomaflow_step_queued_seconds_count", job=job.id, queue="metrics-unit") == 1
    assert sample("nomaflow_step_queued_seconds_sum", job=job.id, queue="metrics-unit") == pytest.approx(0.25)


def test_stale_multiprocess_files_go_and_this_process_files_stay(tmp_path: Any) -> None:
    for name in ("counter_11.db", "histogram_11.db", "gauge_max_12.db", "counter_99.db", "notes.txt"):
        (tmp_path / name).write_text("")
    metrics_server.remove_stale_files(tmp_path, own_pid=99)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["counter_99.db", "notes.txt"]


def test_every_task_message_is_stamped_as_it_is_sent() -> None:
    headers: dict[str, Any] = {"id": "x"}
    metrics_server.stamp_sent_at(headers=headers)
    assert abs(headers[metrics_server.SENT_AT_HEADER] - timezone.now().timestamp()) < 5

"""The Run detail page /nomaflow/runs/<id>: who may see it, what each role is offered,
and what the first paint holds (header, steps with a failed step's traceback, the log's tail)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.contrib.auth.models import User
from django.test import Client

from frontend import run_detail
from runs import logstore
from runs.models import Run
from runs.services import run_replay, run_trigger
from tests.factories import end_as, make_job

NOOP = {"callable": "workers.builtins:noop"}
T0 = datetime(2026, 3, 1, 13, 4, 5, 678_000, tzinfo=UTC)


def _client(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _page(user: User, run: Run) -> str:
    response = _client(user).get(f"/nomaflow/runs/{run.id}")
    assert response.status_code == 200
    return response.content.decode()


@pytest.fixture
def failed_run(db: None) -> Run:
    """etl: F0001 SUCCEEDED, F0002 FAILED (with a traceback), F0003 pending; three log lines."""
    make_job(NOOP, NOOP, NOOP, id="etl")
    run, _ = run_trigger(job_id="etl", triggered_by="user:otto", overrides={"log_level": "DEBUG"})
    run = end_as(run, "SUCCEEDED", "FAILED", "PENDING")
    run.steps.filter(name="F0002").update(
        error="RuntimeError: boom <b>", traceback='Traceback…\n  File "x.py"\nRuntimeError: boom'
    )
    logstore.persist(
        run.id,
        [
            logstore.Entry(T0, "INFO", "", "run started"),
            logstore.Entry(T0, "WARNING", "F0001", "<script>alert(1)</script>"),
            logstore.Entry(T0, "ERROR", "F0002", "boom"),
        ],
    )
    return Run.objects.get(pk=run.pk)


@pytest.fixture
def running_run(db: None) -> Run:
    make_job(NOOP, id="live")
    run, _ = run_trigger(job_id="live", triggered_by="cron")
    run.mark_running()
    return run


# --- who may see it ----------------------------------------------------------------------------


def test_anonymous_is_sent_to_the_login_page(failed_run: Run) -> None:
    response = Client().get(f"/nomaflow/runs/{failed_run.id}")
    assert response.status_code == 302
    assert response["Location"] == f"/nomaflow/login/?next=/nomaflow/runs/{failed_run.id}"


def test_outsider_is_refused(outsider: User, failed_run: Run) -> None:
    response = _client(outsider).get(f"/nomaflow/runs/{failed_run.id}")
    assert response.status_code == 403
    assert "viewer role" in response.content.decode()
    assert _client(outsider).get(f"/nomaflow/runs/{failed_run.id}?traceback=F0002").status_code == 403


def test_unknown_run_is_404(viewer: User) -> None:
    assert _client(viewer).get("/nomaflow/runs/nosuchrun").status_code == 404


# --- what each role is offered -----------------------------------------------------------------


def test_viewer_sees_the_run_but_no_cancel_or_replay(viewer: User, failed_run: Run, running_run: Run) -> None:
    for run in (failed_run, running_run):
        html = _page(viewer, run)
        assert f'data-run-id="{run.id}"' in html
        assert 'data-action="cancel"' not in html and 'data-action="replay"' not in html
        assert 'data-can-operate="false"' in html


def test_operator_gets_replay_on_a_finished_run_and_cancel_on_a_running_one(
    operator: User, failed_run: Run, running_run: Run
) -> None:
    finished = _page(operator, failed_run)
    assert '<button type="button" class="btn" data-action="replay">' in finished
    assert 'data-action="cancel" hidden>' in finished
    running = _page(operator, running_run)
    assert '<button type="button" class="btn btn-danger" data-action="cancel">' in running
    assert 'data-action="replay" hidden>' in running
    assert 'data-can-edit="false"' in running


def test_editor_may_edit_op_kwargs_in_the_replay_modal(editor: User, failed_run: Run) -> None:
    assert 'data-can-edit="true"' in _page(editor, failed_run)


# --- what the first paint holds ----------------------------------------------------------------


def test_header_shows_job_link_state_trigger_level_and_snapshot(viewer: User, failed_run: Run) -> None:
    html = _page(viewer, failed_run)
    assert '<a class="run-job" href="/nomaflow/jobs/etl/runs/"' in html
    assert f'data-copy="{failed_run.id}"' in html
    assert '<span class="badge badge-failed">FAILED</span>' in html
    assert "<dd>user:otto</dd>" in html and "<dd>DEBUG</dd>" in html
    assert "Finished</dt>" in html and 'data-field="finished-row" hidden' not in html
    assert "&quot;callable&quot;: &quot;workers.builtins:noop&quot;" in html  # the snapshot, as text


def test_in_flight_run_shows_started_but_not_finished(viewer: User, running_run: Run) -> None:
    html = _page(viewer, running_run)
    assert '<div data-field="finished-row" hidden>' in html
    assert 'data-live="connecting"' in html and "LIVE LOG · connecting" in html


def test_steps_show_state_type_duration_reason_and_the_failed_steps_traceback(viewer: User, failed_run: Run) -> None:
    html = _page(viewer, failed_run)
    assert '<li class="tl-step" data-step="F0001" data-state="SUCCEEDED" title="python">' in html
    assert '<span class="dot dot-failed" role="img" aria-label="failed">' in html
    assert '<div class="tl-reason">upstream failed</div>' not in html  # end_as left F0003 pending
    assert "RuntimeError: boom &lt;b&gt;" in html
    assert "data-loaded>Traceback…\n  File &quot;x.py&quot;\nRuntimeError: boom</pre>" in html


def test_log_lines_are_rendered_as_text_with_their_seq_level_and_step(viewer: User, failed_run: Run) -> None:
    html = _page(viewer, failed_run)
    assert (
        '<div class="ll ll-warning" data-seq="2" data-step="F0001"><time class="ll-ts" '
        'datetime="2026-03-01T13:04:05.678Z">13:04:05.678</time> <span class="ll-level">WARNING</span> '
        '<span class="ll-msg">&lt;script&gt;alert(1)&lt;/script&gt;</span></div>'
    ) in html
    assert 'data-last-seq="3"' in html
    assert 'data-action="earlier" hidden' in html  # the whole log is on the page
    assert 'href="/api/v1/runs/' + failed_run.id + '/logs.txt" download' in html


def test_a_long_log_opens_on_its_tail(viewer: User, failed_run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(run_detail, "INITIAL_LINES", 2)
    html = _page(viewer, failed_run)
    assert 'data-seq="1"' not in html and 'data-seq="2"' in html and 'data-seq="3"' in html
    assert 'data-action="earlier" hidden' not in html


def test_a_replay_links_back_to_its_original(viewer: User, failed_run: Run) -> None:
    replay = run_replay(run_id=failed_run.id, overrides={}, triggered_by="user:otto")
    html = _page(viewer, replay)
    assert f'<a class="run-replay-of" href="/nomaflow/runs/{failed_run.id}">{failed_run.id}</a>' in html


def test_traceback_of_a_step_as_text(viewer: User, failed_run: Run) -> None:
    client = _client(viewer)
    response = client.get(f"/nomaflow/runs/{failed_run.id}?traceback=F0002")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert response.content.decode().endswith("RuntimeError: boom")
    assert client.get(f"/nomaflow/runs/{failed_run.id}?traceback=F0001").content == b""
    assert client.get(f"/nomaflow/runs/{failed_run.id}?traceback=F9999").status_code == 404

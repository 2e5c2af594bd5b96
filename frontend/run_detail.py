"""The Run detail page `/nomaflow/runs/<id>`: header, step timeline and the log's tail.

The page is complete at first paint (run, steps and the last INITIAL_LINES log lines are
rendered here); run_detail.js then follows the run over the websocket. `?traceback=<step>`
answers one step's traceback as text, for a step that failed after the page was loaded.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from django.http import Http404, HttpRequest, HttpResponse
from django.urls import reverse

from runs import selectors
from runs.choices import StepState
from runs.logstore import READ_FIELDS, clock
from runs.models import Run, StepRun
from runs.parameters import stopped_step

from .access import render_page, viewer_required

INITIAL_LINES = 2000  # the log opens on its tail; earlier lines are paged in on demand


@viewer_required
def run_detail(request: HttpRequest, id: str) -> HttpResponse:
    """The run `id` (404 if unknown), for users with the viewer role."""
    run = _run(id)
    steps = list(run.steps.all())
    traceback_of = request.GET.get("traceback")
    if traceback_of is not None:
        return _traceback(steps, traceback_of)
    lines = _log_tail(run)
    return render_page(request, "frontend/run_detail.html", _context(run, steps, lines))


def _run(run_id: str) -> Run:
    try:
        return selectors.run_detail().get(pk=run_id)
    except Run.DoesNotExist:
        raise Http404(f'run "{run_id}" does not exist') from None


def _traceback(steps: list[StepRun], name: str) -> HttpResponse:
    step = next((s for s in steps if s.name == name), None)
    if step is None:
        raise Http404(f'this run has no step "{name}"')
    # The selector defers tracebacks (run lists never need them): this loads one.
    return HttpResponse(step.traceback, content_type="text/plain; charset=utf-8")


def _log_tail(run: Run) -> list[dict[str, Any]]:
    # seq has no gaps, so the tail is a range: one short index scan even at 200,000 lines.
    after = max(0, run.last_seq - INITIAL_LINES)
    rows = selectors.log_lines(run_id=run.pk, after=after, upto=run.last_seq).values_list(*READ_FIELDS)
    return [_line_row(*row) for row in rows]


def _line_row(seq: int, ts: datetime, level: str, step: str, message: str) -> dict[str, Any]:
    """A log line as _run_log_line.html shows it: `clock` is UTC until the browser localizes it."""
    ts = ts.astimezone(UTC)
    iso = f"{ts:%Y-%m-%dT%H:%M:%S}.{ts.microsecond // 1000:03d}Z"
    return {"seq": seq, "level": level, "step": step, "message": message, "iso": iso, "clock": clock(ts)}


def _context(run: Run, steps: list[StepRun], lines: list[dict[str, Any]]) -> dict[str, Any]:
    stopped = stopped_step(steps)
    return {
        "run": run,
        "steps": [_step_row(step) for step in steps],
        "lines": lines,
        "has_earlier": bool(lines) and lines[0]["seq"] > 1,
        "parameters_json": _snapshot_json(run.parameters),
        "urls": {
            "api_run": reverse("api-run-detail", args=[run.pk]),
            "cancel": reverse("api-run-cancel", args=[run.pk]),
            "replay": reverse("api-run-replay", args=[run.pk]),
            "logs": reverse("api-run-logs", args=[run.pk]),
            "log_text": reverse("api-run-log-text", args=[run.pk]),
            "job_runs": reverse("frontend:job_runs", args=[run.job_id]),
            "workers": reverse("api-workers"),
        },
        # For the Replay modal: the snapshot it starts from and the step its shortcuts re-run.
        "page_data": {
            "job": run.job_id,
            "log_level": run.log_level,
            "parameters": run.parameters,
            "steps": [{"name": step.name, "type": step.type} for step in steps],
            "stopped_step": stopped.name if stopped else None,
        },
    }


def _snapshot_json(parameters: dict[str, Any]) -> str:
    # jsonb stores keys shortest first ("steps" before "params"); people read params first.
    ordered = {key: parameters[key] for key in ("params", "steps") if key in parameters}
    return json.dumps({**ordered, **parameters}, indent=2)


def _step_row(step: StepRun) -> dict[str, Any]:
    """What a step row shows; a failed step's traceback is loaded here, the others never."""
    failed = step.state == StepState.FAILED
    return {
        "name": step.name,
        "type": step.type,
        "state": step.state,
        "reason": step.reason,
        "duration_s": step.duration_s,
        "queue": step.queue,
        "worker": step.worker,
        "error": step.error,
        "traceback": step.traceback if failed else "",
    }

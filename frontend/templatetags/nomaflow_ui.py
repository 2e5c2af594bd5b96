"""Template helpers shared by every page: state badges, UTC timestamps the browser
localizes, and durations formatted like common.js formats them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django import template
from django.utils.html import format_html
from django.utils.safestring import SafeString

from runs.links import run_path

register = template.Library()

STATES = {"QUEUED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELED"}


@register.simple_tag
def state_badge(state: str, url: str = "") -> SafeString:
    """A coloured run-state badge; a link when `url` is given (the same markup as common.js)."""
    css = f"badge badge-{state.lower()}" if state in STATES else "badge"
    if url:
        return format_html('<a class="{}" href="{}">{}</a>', css, url, state)
    return format_html('<span class="{}">{}</span>', css, state)


@register.simple_tag
def run_badge(run: Any) -> SafeString:
    """The state badge of `run`, linking to its Run detail page."""
    return state_badge(run.state, run_url(run.id))


@register.filter
def run_url(run_id: str) -> str:
    """/nomaflow/runs/<id>: the `url` of a Run in the API (API.md)."""
    return run_path(run_id)


@register.simple_tag
def local_time(ts: datetime | None, style: str = "datetime") -> SafeString:
    """A <time> in UTC that common.js rewrites to the browser's timezone (UTC stays on hover)."""
    if ts is None:
        return format_html('<span class="muted">—</span>')
    utc = ts.astimezone(UTC)
    iso = utc.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    text = utc.strftime("%Y-%m-%d %H:%M:%S UTC")
    return format_html('<time datetime="{}" data-local="{}" title="{}">{}</time>', iso, style, text, text)


@register.filter
def duration(seconds: float | None) -> str:
    """850 ms, 1.2 s, 42 s, 3 min 05 s, 2 h 04 min; an em dash for none."""
    if seconds is None:
        return "—"
    if seconds < 1:
        return f"{round(seconds * 1000)} ms"
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 60:
        return f"{round(seconds)} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"

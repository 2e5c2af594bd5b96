"""The Run detail page in a browser, against a live daphne and a real worker: live dots and
streaming lines, auto-scroll that pauses and resumes, the step filter and the level chip,
cancel, replay with "only the failed step", and what a viewer is offered (its limits: test_browser_run_limits.py)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from django.contrib.auth.models import User
from playwright.sync_api import Locator, Page, WebSocketRoute, expect

from runs.models import Run
from tests.factories import make_job
from tests.processes import wait_terminal

from .browser import shot, stop_run, trigger_run
from .conftest import SignIn

NOOP = {"callable": "workers.builtins:noop"}
T0 = datetime(2026, 3, 1, 13, 4, 5, 678_000, tzinfo=UTC)  # 14:04:05.678 in the browser (Europe/Paris)


def _open(page: Page, live_url: str, run: Run) -> Page:
    page.goto(f"{live_url}/nomaflow/runs/{run.id}")
    return page


def _dot(page: Page, step: str) -> Locator:
    return page.locator(f'.tl-step[data-step="{step}"] .dot')


def _has_class(name: str) -> re.Pattern[str]:
    return re.compile(rf"(^|\s){name}(\s|$)")


def _scroll_gap(page: Page) -> float:
    """Pixels between the bottom of the log's view and the bottom of its content."""
    return page.eval_on_selector(".log-scroll", "s => s.scrollHeight - s.scrollTop - s.clientHeight")


def _settled_scroll_top(page: Page) -> float:
    """The log's scrollTop once a (smooth) wheel scroll has stopped moving it."""
    return page.evaluate(
        """() => new Promise((resolve) => {
             const box = document.querySelector(".log-scroll");
             let last = -1;
             const check = () => {
               if (box.scrollTop === last) resolve(last);
               else { last = box.scrollTop; setTimeout(() => requestAnimationFrame(check), 50); }
             };
             check();
           })"""
    )


def _shown_steps(page: Page) -> set[str]:
    return set(page.eval_on_selector_all("#log-lines .ll", "lines => lines.map(l => l.dataset.step)"))


# --- live ----------------------------------------------------------------------------------------


def test_dots_turn_blue_then_green_while_lines_stream_in(live_url: str, signed_in: SignIn, viewer: User) -> None:
    make_job(
        {"callable": "workers.builtins:sleep", "seconds": 3},
        {"callable": "workers.builtins:emit_lines", "count": 80, "size": 40, "rate": 20},
        NOOP,
        id="streamer",
    )  # fmt: skip
    page = signed_in(viewer)
    run = trigger_run("streamer")
    _open(page, live_url, run)
    expect(_dot(page, "F0001")).to_have_class(_has_class("dot-running"))
    expect(page.locator(".live")).to_have_attribute("data-live", "streaming")
    expect(page.locator(".live-text")).to_have_text("LIVE LOG · streaming")
    expect(page.locator(".run-state .badge")).to_have_text("RUNNING")
    expect(page.locator('[data-field="finished-row"]')).to_be_hidden()
    shot(page, "run-detail-running-sleep")

    # F0002 emits a line every 50 ms: line 30 is on the page while the step still runs.
    expect(page.locator("#log-lines .ll-msg", has_text=re.compile(r"^line 30 x"))).to_be_visible()
    expect(_dot(page, "F0002")).to_have_class(_has_class("dot-running"))
    expect(_dot(page, "F0001")).to_have_class(_has_class("dot-succeeded"))
    expect(page.locator('.tl-step[data-step="F0001"] .tl-duration')).to_have_text(re.compile(r"^\d\.\d s$"))
    shot(page, "run-detail-streaming")

    for step in ("F0001", "F0002", "F0003"):
        expect(_dot(page, step)).to_have_class(_has_class("dot-succeeded"))
    expect(page.locator(".run-state .badge")).to_have_text("SUCCEEDED")
    expect(page.locator('[data-field="finished-row"]')).to_be_visible()
    expect(page.locator(".live-text")).to_have_text("LOG")
    run = wait_terminal(run)
    # Every stored line is on the page, once, in seq order, with its local time.
    seqs = page.eval_on_selector_all("#log-lines .ll", "lines => lines.map(l => Number(l.dataset.seq))")
    assert seqs == list(range(1, run.last_seq + 1))
    first = run.log_lines.order_by("seq").first()
    assert first is not None
    local = first.ts.astimezone(ZoneInfo("Europe/Paris"))  # the browser context's timezone
    clock = f"{local:%H:%M:%S}.{local.microsecond // 1000:03d}"
    expect(page.locator("#log-lines .ll .ll-ts").first).to_have_text(clock)
    shot(page, "run-detail-succeeded")


def test_scrolling_up_pauses_auto_scroll_and_scrolling_down_resumes_it(
    live_url: str, signed_in: SignIn, viewer: User
) -> None:
    make_job({"callable": "workers.builtins:emit_lines", "count": 600, "size": 60, "rate": 40}, id="chatty")
    page = signed_in(viewer)
    run = trigger_run("chatty")
    _open(page, live_url, run)
    expect(page.locator("#log-lines .ll-msg", has_text=re.compile(r"^line 80 x"))).to_be_attached()
    assert _scroll_gap(page) <= 8  # following the tail

    page.hover(".log-scroll")
    page.mouse.wheel(0, -400)
    paused = page.locator('[data-action="jump"]')
    expect(paused).to_be_visible()
    top = _settled_scroll_top(page)
    seen = page.locator("#log-lines .ll").count()
    expect(page.locator("#log-lines .ll-msg", has_text=re.compile(rf"^line {seen + 40} x"))).to_be_attached()
    assert page.eval_on_selector(".log-scroll", "s => s.scrollTop") == top  # the reader's view did not move
    assert _scroll_gap(page) > 8
    shot(page, "run-detail-paused")

    page.mouse.wheel(0, 100_000)  # back to the bottom
    expect(paused).to_be_hidden()
    now = page.locator("#log-lines .ll").count()
    expect(page.locator("#log-lines .ll-msg", has_text=re.compile(rf"^line {now + 40} x"))).to_be_attached()
    assert _scroll_gap(page) <= 8  # following again
    stop_run(run)


def test_step_filter_and_level_chip(live_url: str, signed_in: SignIn, viewer: User) -> None:
    make_job(
        {"callable": "workers.builtins:echo", "message": "all good"},
        {"callable": "workers.builtins:echo", "message": "careful now", "level": "WARNING"},
        {"callable": "workers.builtins:echo", "message": "that went wrong", "level": "ERROR"},
        id="levels",
    )  # fmt: skip
    run = wait_terminal(trigger_run("levels"))
    page = _open(signed_in(viewer), live_url, run)
    lines = page.locator("#log-lines .ll")
    expect(lines).to_have_count(run.last_seq)

    page.click('.tl-step[data-step="F0002"] .tl-row')
    expect(page.locator('.tl-step[data-step="F0002"] .tl-row')).to_have_attribute("aria-pressed", "true")
    expect(page.locator(".log-filter")).to_have_text("step F0002")
    expect(lines.filter(has_text="careful now")).to_have_count(1)
    expect(lines.filter(has_text="all good")).to_have_count(0)
    assert _shown_steps(page) == {"F0002"}

    page.click('[data-action="level"]')
    expect(page.locator('[data-action="level"]')).to_have_attribute("aria-pressed", "true")
    expect(lines).to_have_count(1)
    expect(lines.first).to_contain_text("WARNING careful now")
    shot(page, "run-detail-step-and-level-filter")

    page.click('.tl-step[data-step="F0002"] .tl-row')  # again: all steps, the chip still on
    expect(lines).to_have_count(2)
    expect(lines.nth(1)).to_contain_text("ERROR that went wrong")
    expect(page.locator('[data-action="all-steps"]')).to_be_hidden()

    page.click('.tl-step[data-step="F0003"] .tl-row')
    page.click('[data-action="all-steps"]')
    page.click('[data-action="level"]')
    expect(lines).to_have_count(run.last_seq)
    page.set_viewport_size({"width": 1024, "height": 640})  # a small laptop
    expect(page.locator("a[download]")).to_be_in_viewport()
    shot(page, "run-detail-1024")


def test_a_burst_of_lines_keeps_the_page_to_its_window_of_lines(live_url: str, signed_in: SignIn, viewer: User) -> None:
    make_job({"callable": "workers.builtins:emit_lines", "count": 15_000, "size": 40}, id="burst")
    page = signed_in(viewer)
    run = trigger_run("burst")
    _open(page, live_url, run)
    last = page.locator("#log-lines .ll-msg", has_text=re.compile(r"^line 15000 x"))
    expect(last).to_be_in_viewport(timeout=60_000)  # followed to the end
    expect(page.locator(".live-text")).to_have_text("LOG")
    count = page.locator("#log-lines .ll").count()
    assert 0 < count <= 10_000  # the DOM holds a window, not the whole log
    expect(page.locator('[data-action="earlier"]')).to_be_visible()  # (scrolled out of view, above)
    assert _scroll_gap(page) <= 8
    run = wait_terminal(run)
    seqs = page.eval_on_selector_all("#log-lines .ll", "lines => lines.map(l => Number(l.dataset.seq))")
    assert seqs == list(range(run.last_seq - count + 1, run.last_seq + 1))
    shot(page, "run-detail-burst")


def test_a_lost_frame_is_refetched_and_a_dropped_socket_resumes_after_the_last_seq(
    live_url: str, signed_in: SignIn, viewer: User
) -> None:
    make_job({"callable": "workers.builtins:emit_lines", "count": 200, "size": 30, "rate": 40}, id="bad-network")
    page = signed_in(viewer)
    connections: list[tuple[WebSocketRoute, WebSocketRoute]] = []
    lost: list[int] = []  # the first seq of the log frame that never reached the page

    def through_a_bad_network(page_side: WebSocketRoute) -> None:
        server_side = page_side.connect_to_server()
        connections.append((page_side, server_side))

        def relay(message: str | bytes) -> None:
            frame = json.loads(message)
            if frame["type"] == "log" and not lost and frame["lines"][0]["seq"] > 20:
                lost.append(frame["lines"][0]["seq"])
                return
            page_side.send(message)

        server_side.on_message(relay)

    page.route_web_socket(re.compile(r"/ws/runs/"), through_a_bad_network)
    run = trigger_run("bad-network")
    _open(page, live_url, run)
    expect(page.locator("#log-lines .ll-msg", has_text=re.compile(r"^line 60 x"))).to_be_attached()
    assert lost and len(connections) == 1
    page_side, server_side = connections[0]
    page_side.close()  # the connection drops
    server_side.close()
    expect(page.locator(".live")).to_have_attribute("data-live", "reconnecting")
    shot(page, "run-detail-reconnecting")
    expect(page.locator(".live")).to_have_attribute("data-live", "streaming")
    expect(page.locator(".live-text")).to_have_text("LOG", timeout=30_000)

    run = wait_terminal(run)
    resumed_after = int(re.search(r"after=(\d+)", connections[1][0].url).group(1))  # type: ignore[union-attr]
    assert resumed_after >= 60
    seqs = page.eval_on_selector_all("#log-lines .ll", "lines => lines.map(l => Number(l.dataset.seq))")
    assert seqs == list(range(1, run.last_seq + 1))  # the lost frame refetched, nothing twice


# --- actions -------------------------------------------------------------------------------------


def test_cancel_of_a_running_run(live_url: str, signed_in: SignIn, operator: User) -> None:
    make_job({"callable": "workers.builtins:sleep", "seconds": 60}, NOOP, id="sleeper")
    page = signed_in(operator)
    run = trigger_run("sleeper")
    _open(page, live_url, run)
    expect(_dot(page, "F0001")).to_have_class(_has_class("dot-running"))
    expect(page.locator('[data-action="replay"]')).to_be_hidden()
    page.click('[data-action="cancel"]')
    dialog = page.locator("#cancel-dialog")
    expect(dialog).to_be_visible()
    shot(page, "run-detail-cancel-confirm")
    dialog.locator('button[value="cancel"]').click()

    expect(page.locator(".run-state .badge")).to_have_text("CANCELED")
    expect(page.locator("#log-lines .ll").last).to_contain_text("run cancelled by user:otto")
    expect(_dot(page, "F0001")).to_have_class(_has_class("dot-canceled"))
    expect(page.locator('.tl-step[data-step="F0002"] .tl-reason')).to_have_text("canceled by user:otto")
    expect(page.locator('[data-action="cancel"]')).to_be_hidden()
    expect(page.locator('[data-action="replay"]')).to_be_visible()
    shot(page, "run-detail-canceled")
    run = wait_terminal(run)
    assert (run.state, run.canceled_by) == ("CANCELED", "user:otto")
    assert run.log_lines.order_by("-seq").values_list("message", flat=True)[0] == "run cancelled by user:otto"


def test_keep_running_in_the_confirmation_cancels_nothing(live_url: str, signed_in: SignIn, operator: User) -> None:
    make_job({"callable": "workers.builtins:sleep", "seconds": 60}, id="kept")
    page = signed_in(operator)
    run = trigger_run("kept")
    _open(page, live_url, run)
    page.click('[data-action="cancel"]')
    page.locator('#cancel-dialog button[value="keep"]').click()
    expect(page.locator("#cancel-dialog")).to_be_hidden()
    expect(page.locator('[data-action="cancel"]')).to_be_enabled()
    run.refresh_from_db()
    assert run.canceled_by is None
    page.click('[data-action="cancel"]')  # and now for real, so the worker is free for the next test
    page.locator('#cancel-dialog button[value="cancel"]').click()
    assert wait_terminal(run).state == "CANCELED"


def test_replay_only_the_failed_step(live_url: str, signed_in: SignIn, operator: User) -> None:
    make_job(
        {"callable": "workers.builtins:sleep", "seconds": 2},
        {"callable": "workers.builtins:fail", "message": "bad input", "when": "{{ params.should_fail }}"},
        NOOP,
        id="flaky-etl",
        params={"should_fail": True},
    )  # fmt: skip
    page = signed_in(operator)
    original = trigger_run("flaky-etl")
    _open(page, live_url, original)
    expect(_dot(page, "F0001")).to_have_class(_has_class("dot-running"))
    expect(page.locator('[data-action="replay"]')).to_be_hidden()
    # It fails while we watch: the badge, the dot and the buttons follow.
    expect(page.locator(".run-state .badge")).to_have_text("FAILED")
    expect(_dot(page, "F0002")).to_have_class(_has_class("dot-failed"))
    expect(page.locator('[data-action="replay"]')).to_be_visible()
    expect(page.locator('[data-action="cancel"]')).to_be_hidden()
    original = wait_terminal(original)

    # The failed step opens to its error and its traceback (fetched: it failed after the render).
    page.click('.tl-step[data-step="F0002"] .tl-row')
    failure = page.locator('.tl-step[data-step="F0002"] .tl-failure')
    expect(failure.locator(".tl-error")).to_contain_text("bad input")
    expect(failure.locator(".tl-traceback")).to_contain_text("Traceback")
    expect(page.locator('.tl-step[data-step="F0003"] .tl-reason')).to_have_text("upstream failed")
    shot(page, "run-detail-failed")

    page.click('[data-action="replay"]')
    modal = page.locator("dialog.params-modal")
    expect(modal).to_be_visible()
    modal.get_by_role("button", name=re.compile("Only the failed step")).click()
    expect(modal.locator('input[data-step="F0001"]')).not_to_be_checked()
    expect(modal.locator('input[data-step="F0002"]')).to_be_checked()
    expect(modal.locator('input[data-step="F0003"]')).not_to_be_checked()
    modal.locator('[data-param="should_fail"]').uncheck()
    shot(page, "run-detail-replay-modal")
    modal.locator("button[type=submit]").click()

    page.wait_for_url(re.compile(r"/nomaflow/runs/(?!" + original.id + ")[0-9a-z]+$"))
    replay = Run.objects.get(replay_of=original)
    assert page.url.endswith(f"/nomaflow/runs/{replay.id}")
    assert {name: s["enabled"] for name, s in replay.parameters["steps"].items()} == {
        "F0001": False,
        "F0002": True,
        "F0003": False,
    }
    expect(page.locator(".run-replay-of")).to_have_attribute("href", f"/nomaflow/runs/{original.id}")
    expect(page.locator(".run-state .badge")).to_have_text("SUCCEEDED")
    expect(page.locator('.tl-step[data-step="F0001"] .tl-reason')).to_have_text("skipped: disabled")
    expect(_dot(page, "F0002")).to_have_class(_has_class("dot-succeeded"))
    shot(page, "run-detail-replay")
    page.click(".run-replay-of")
    page.wait_for_url(f"{live_url}/nomaflow/runs/{original.id}")


def test_viewer_sees_no_cancel_or_replay(live_url: str, signed_in: SignIn, viewer: User) -> None:
    make_job({"callable": "workers.builtins:sleep", "seconds": 60}, id="watched", params={"region": "eu"})
    page = signed_in(viewer, permissions=["clipboard-read", "clipboard-write"])
    run = trigger_run("watched")
    _open(page, live_url, run)
    expect(_dot(page, "F0001")).to_have_class(_has_class("dot-running"))
    assert page.locator('[data-action="cancel"], [data-action="replay"]').count() == 0
    # Anyone may read: the parameters snapshot opens, the run id copies.
    page.click(".run-params summary")
    expect(page.locator(".run-params pre")).to_contain_text('"region": "eu"')
    page.click(".run-id")
    expect(page.locator(".run-copied")).to_have_text("copied")
    assert page.evaluate("navigator.clipboard.readText()") == run.id
    shot(page, "run-detail-viewer")
    status = page.evaluate(
        """async (url) => (await fetch(url, {method: 'POST', headers: {
             'X-CSRFToken': document.querySelector('meta[name=csrf-token]').content}})).status""",
        f"/api/v1/runs/{run.id}/cancel/",
    )
    assert status == 403
    run.refresh_from_db()
    assert run.canceled_by is None
    stop_run(run)

// The Run detail page: header, step timeline and live log of one run.
//
// The server renders the whole page; this module follows the run over the websocket
// (log, step and run frames), refetches over REST what a frame cannot carry (a seq gap,
// the state after a reconnect, a step's traceback), says when a waiting step's queue has no
// live worker, and wires the actions: copy the id, filter by step or level, cancel (with a
// confirmation) and replay (the params modal).

import { ApiError, fetchJSON, formatDuration, setBadgeState, timeElement } from "./common.js";
import { LogView } from "./log_view.js";
import { openParamsModal } from "./params_modal.js";
import { RunSocket } from "./run_live.js";

const TERMINAL = new Set(["SUCCEEDED", "FAILED", "CANCELED"]);
const GAP_PAGE = 10000; // lines per REST request when refilling a seq gap
const ROUTING_GRACE_MS = 2000; // a step normally leaves its queue well within this
const ROUTING_RECHECK_MS = 5000;
const LIVE_TEXT = {
  connecting: "LIVE LOG · connecting",
  streaming: "LIVE LOG · streaming",
  reconnecting: "LIVE LOG · reconnecting…",
  ended: "LOG",
  refused: "LIVE LOG · off: too many live logs open; close a tab and reload",
};

const root = document.getElementById("run");
const data = JSON.parse(document.getElementById("run-data").textContent);
const $ = (selector, scope = root) => scope.querySelector(selector);
const stepsList = $("#steps");
const cancelButton = $('[data-action="cancel"]');
const replayButton = $('[data-action="replay"]');
let selectedStep = "";

const log = new LogView({
  scroller: $(".log-scroll"),
  list: $("#log-lines"),
  template: document.getElementById("tpl-log-line"),
  earlier: $('[data-action="earlier"]'),
  paused: $('[data-action="jump"]'),
  empty: $(".log-empty"),
  error: $(".log-error"),
  logsUrl: root.dataset.logsUrl,
  lastSeq: Number(root.dataset.lastSeq),
});

// --- header ----------------------------------------------------------------------------

function setTime(field, iso) {
  const holder = $(`[data-field="${field}"]`);
  const current = holder.querySelector(":scope > time");
  if (iso && (!current || current.getAttribute("datetime") !== iso)) holder.replaceChildren(timeElement(iso));
}

/** A Run or RunSummary (API.md) onto the header: badge, times, buttons. */
function applyRun(run) {
  root.dataset.state = run.state;
  setBadgeState($('[data-field="state"] .badge'), run.state);
  setTime("started", run.started_at);
  setTime("finished", run.finished_at);
  $('[data-field="finished-row"]').hidden = !run.finished_at;
  if (cancelButton) {
    cancelButton.hidden = run.state !== "RUNNING";
    if (run.state !== "RUNNING") resetCancelButton();
  }
  if (replayButton) replayButton.hidden = !TERMINAL.has(run.state);
  if (run.steps) run.steps.forEach(applyStep);
  if ("stopped_step" in run) data.stopped_step = run.stopped_step; // a Run (REST), not a RunSummary
}

function copyRunId(button) {
  const note = $(".run-copied");
  const done = (text) => {
    note.textContent = text;
    note.hidden = false;
    setTimeout(() => { note.hidden = true; }, 1800);
  };
  navigator.clipboard.writeText(button.dataset.copy).then(
    () => done("copied"),
    () => {
      // No clipboard permission: select the id so that Ctrl/Cmd+C copies it.
      getSelection().selectAllChildren(button);
      done("selected — press Ctrl+C");
    },
  );
}

// --- step timeline ---------------------------------------------------------------------

function stepRow(name) {
  return [...stepsList.children].find((row) => row.dataset.step === name);
}

/** A StepRun (API.md) onto its row: dot, duration, reason, error. */
function applyStep(step) {
  const row = stepRow(step.name);
  if (!row) return;
  row.dataset.state = step.state;
  const button = $(".tl-row", row);
  if (step.state === "FAILED" && !button.hasAttribute("aria-expanded")) button.setAttribute("aria-expanded", "false");
  const dot = $(".dot", row);
  dot.className = `dot dot-${step.state.toLowerCase()}`;
  dot.setAttribute("aria-label", step.state.toLowerCase());
  $(".tl-duration", row).textContent = step.duration_s === null ? "" : formatDuration(step.duration_s);
  const reason = $(".tl-reason", row);
  reason.textContent = step.reason;
  reason.hidden = !step.reason;
  $(".tl-error", row).textContent = step.error || "";
  $(".tl-queue", row).textContent = step.queue;
  $(".tl-worker", row).textContent = step.worker;
  $(".tl-on", row).hidden = !step.worker;
  if (step.state !== "PENDING") $(".tl-waiting", row).hidden = true;
}

function selectStep(name) {
  selectedStep = name;
  for (const row of stepsList.children) {
    $(".tl-row", row).setAttribute("aria-pressed", String(row.dataset.step === name));
  }
  $('[data-action="all-steps"]').hidden = !name;
  const filter = $(".log-filter");
  filter.hidden = !name;
  $("code", filter).textContent = name;
  log.setFilter({ step: name });
}

/** A FAILED step opens to its error and traceback (loaded on first opening if the step
 * failed after the page was rendered). */
async function toggleFailure(row) {
  const box = $(".tl-failure", row);
  box.hidden = !box.hidden;
  $(".tl-row", row).setAttribute("aria-expanded", String(!box.hidden));
  const traceback = $(".tl-traceback", row);
  if (box.hidden || "loaded" in traceback.dataset) return;
  const url = new URL(location.href);
  url.search = new URLSearchParams({ traceback: row.dataset.step });
  const response = await fetch(url, { credentials: "same-origin" });
  if (response.ok) {
    traceback.textContent = await response.text();
    traceback.dataset.loaded = "";
  }
}

stepsList.addEventListener("click", (event) => {
  const button = event.target.closest(".tl-row");
  if (!button) return;
  const row = button.closest(".tl-step");
  selectStep(row.dataset.step === selectedStep ? "" : row.dataset.step);
  if (row.dataset.state === "FAILED") toggleFailure(row);
});
$('[data-action="all-steps"]').addEventListener("click", () => selectStep(""));

const levelChip = $('[data-action="level"]');
levelChip.addEventListener("click", () => {
  const on = levelChip.getAttribute("aria-pressed") !== "true";
  levelChip.setAttribute("aria-pressed", String(on));
  log.setFilter({ level: on ? "WARNING" : "" });
});

// --- routing ---------------------------------------------------------------------------
// A step whose queue no live worker serves would sit PENDING without a word. Only once the
// next step has waited a little does the page ask the fleet (GET /api/v1/workers/: a Celery
// broadcast on the server, cached there a few seconds), then again while the step still waits.

/** The step a worker should pick up now: the first PENDING one while none runs. */
function waitingStep() {
  if (TERMINAL.has(root.dataset.state)) return null;
  const rows = [...stepsList.children];
  if (rows.some((row) => row.dataset.state === "RUNNING")) return null;
  return rows.find((row) => row.dataset.state === "PENDING") || null;
}

/** The queues live workers consume from now (a drained queue is not among its worker's). */
async function servedQueues() {
  const fleet = await fetchJSON(root.dataset.workersUrl);
  return new Set(fleet.workers.flatMap((worker) => worker.queues));
}

let routingTimer = 0;
let routingRow = null; // the step the clock runs for

// The timer stays set while a check is under way, so frames arriving meanwhile start no second round.
async function checkRouting() {
  const row = waitingStep();
  if (!row || row !== routingRow) {
    // It left the queue (or another step waits now, since less long): start again.
    if (routingRow) $(".tl-waiting", routingRow).hidden = true;
    routingTimer = 0;
    watchRouting();
    return;
  }
  const queue = $(".tl-queue", row).textContent;
  try {
    $(".tl-waiting", row).hidden = (await servedQueues()).has(queue);
  } catch (err) {
    if (!(err instanceof ApiError)) throw err;
    if (err.status >= 400 && err.status < 500) return; // not this user's to see: stay quiet
    // Unreachable or failing for now: ask again at the next round.
  }
  routingTimer = setTimeout(checkRouting, ROUTING_RECHECK_MS);
}

/** After any change: start the clock when a step starts waiting. */
function watchRouting() {
  if (routingTimer) return;
  routingRow = waitingStep();
  if (routingRow) routingTimer = setTimeout(checkRouting, ROUTING_GRACE_MS);
}

// --- live ------------------------------------------------------------------------------

async function refresh() {
  applyRun(await fetchJSON(root.dataset.apiRun));
}

/** Lines between the last seq seen and `next` that never arrived: fetch them over REST. */
async function fillGap(next) {
  while (log.seenSeq + 1 < next) {
    const before = log.seenSeq;
    const page = await fetchJSON(`${root.dataset.logsUrl}?after=${before}&limit=${GAP_PAGE}`);
    log.ingest(page.lines);
    if (!page.more || log.seenSeq === before) break; // nothing more stored (e.g. retention)
  }
}

async function onFrame(frame) {
  if (frame.type === "log") {
    if (frame.lines.length) await fillGap(frame.lines[0].seq);
    log.ingest(frame.lines);
  } else if (frame.type === "step") {
    applyStep(frame.step);
    watchRouting();
  } else if (frame.type === "run") {
    applyRun(frame.run);
    watchRouting();
  } else if (frame.type === "end") {
    await fillGap(frame.last_seq + 1);
    await refresh(); // finished_at and every step's final state, whatever frames were missed
  }
}

function setLive(status) {
  const live = $(".live");
  live.dataset.live = status;
  $(".live-text", live).textContent = LIVE_TEXT[status];
}

if (!TERMINAL.has(root.dataset.state)) {
  const socket = new RunSocket({
    path: root.dataset.wsPath,
    after: () => log.seenSeq,
    onFrame,
    onStatus: setLive,
    // Whatever changed between the page's render (or the drop) and this connection.
    onOpen: () => refresh().catch((err) => console.error("run refresh", err)),
  });
  socket.connect();
  watchRouting();
}

// --- actions ---------------------------------------------------------------------------

function showAlert(text) {
  const alert = $(".run-alert");
  alert.textContent = text;
  alert.hidden = !text;
}

function resetCancelButton() {
  cancelButton.disabled = false;
  cancelButton.textContent = "✕ Cancel";
}

function wireCancel() {
  const dialog = document.getElementById("cancel-dialog");
  cancelButton.addEventListener("click", () => {
    dialog.returnValue = "";
    dialog.showModal();
  });
  dialog.addEventListener("close", async () => {
    if (dialog.returnValue !== "cancel") return;
    cancelButton.disabled = true;
    cancelButton.textContent = "Canceling…";
    showAlert("");
    try {
      applyRun(await fetchJSON(root.dataset.cancelUrl, { method: "POST" }));
    } catch (err) {
      if (!(err instanceof ApiError)) throw err;
      resetCancelButton();
      showAlert(`Could not cancel: ${err.detail}`);
      if (err.status === 409) refresh();
    }
  });
}

function replayShortcuts() {
  const stopped = data.stopped_step; // the API's word (Run.stopped_step), as `rerun` decides it
  if (!stopped) return [];
  const names = data.steps.map((s) => s.name);
  const at = names.indexOf(stopped);
  const original = data.parameters.steps;
  return [
    {
      label: `Only the failed step (${stopped})`,
      apply(state) {
        for (const name of names) state.steps[name].enabled = name === stopped;
      },
    },
    {
      label: `From the failed step (${stopped})`,
      apply(state) {
        names.forEach((name, i) => {
          state.steps[name].enabled = i >= at && (original[name].enabled || name === stopped);
        });
      },
    },
  ];
}

function wireReplay() {
  replayButton.addEventListener("click", () => {
    openParamsModal({
      title: `Replay ${root.dataset.jobId} · ${root.dataset.runId}`,
      submitLabel: "↻ Replay",
      submitUrl: root.dataset.replayUrl,
      steps: data.steps,
      initial: { log_level: data.log_level, params: data.parameters.params, steps: data.parameters.steps },
      canEditOpKwargs: root.dataset.canEdit === "true",
      shortcuts: replayShortcuts(),
    });
  });
}

$(".run-id").addEventListener("click", (event) => copyRunId(event.currentTarget));
if (cancelButton) wireCancel();
if (replayButton) wireReplay();

// Schedule: week and month calendars of cron fires in the browser's timezone.
//
// Days are local calendar days built with Date(y, m, d) (local midnight), so a DST day
// is 23 or 25 hours long and every fire lands on the local day and time it has there.
// The period is sent to GET /api/v1/schedule/ as the UTC instants of those midnights.
// State lives in the URL (?view=week|month&date=YYYY-MM-DD&job=), so a view can be linked.

import { el, fetchJSON, formatDateTime, formatUTC } from "./common.js";

const MONTH_CHIPS = 5; // chips per day in the month view before "+n more"
const DOW = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

const calendar = document.getElementById("calendar");
const rangeLabel = document.getElementById("cal-range");
const jobSelect = document.getElementById("cal-job");
const errorBanner = document.getElementById("cal-error");

const pad = (n) => String(n).padStart(2, "0");
const dayKey = (d) => `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
const addDays = (d, n) => new Date(d.getFullYear(), d.getMonth(), d.getDate() + n);
const hhmm = (d) => `${pad(d.getHours())}:${pad(d.getMinutes())}`;

function parseDay(text) {
  const match = /^(\d{4})-(\d{2})-(\d{2})$/.exec(text || "");
  if (!match) return null;
  return new Date(Number(match[1]), Number(match[2]) - 1, Number(match[3]));
}

function today() {
  const now = new Date();
  return new Date(now.getFullYear(), now.getMonth(), now.getDate());
}

function readState() {
  const query = new URLSearchParams(window.location.search);
  return {
    view: query.get("view") === "month" ? "month" : "week",
    date: parseDay(query.get("date")) || today(),
    job: query.get("job") || "",
  };
}

function writeState(state) {
  const query = new URLSearchParams({ view: state.view, date: dayKey(state.date) });
  if (state.job) query.set("job", state.job);
  window.history.replaceState(null, "", `${window.location.pathname}?${query}`);
}

/** The local days shown: Monday..Sunday of the date's week, or the weeks covering its month. */
function daysOf(state) {
  const monday = (d) => addDays(d, -((d.getDay() + 6) % 7));
  if (state.view === "week") {
    const first = monday(state.date);
    return Array.from({ length: 7 }, (_, i) => addDays(first, i));
  }
  const first = monday(new Date(state.date.getFullYear(), state.date.getMonth(), 1));
  const lastOfMonth = new Date(state.date.getFullYear(), state.date.getMonth() + 1, 0);
  const days = [];
  for (let d = first; d <= lastOfMonth || days.length % 7; d = addDays(d, 1)) days.push(d);
  return days;
}

function rangeText(state, days) {
  if (state.view === "month") {
    return state.date.toLocaleDateString(undefined, { month: "long", year: "numeric" });
  }
  const fmt = { day: "numeric", month: "short", year: "numeric" };
  return `${days[0].toLocaleDateString(undefined, fmt)} – ${days[6].toLocaleDateString(undefined, fmt)}`;
}

function chip(entry) {
  const at = new Date(entry.at);
  const when = `${formatDateTime(at)} (${formatUTC(at)})`;
  const content = [el("span", { class: "t" }, hhmm(at)), entry.job];
  if (!entry.run) {
    return el("span", { class: "chip chip-future", title: `${entry.job} · next fire ${when}` }, content);
  }
  const state = entry.run.state;
  return el("a", {
    class: `chip chip-${state.toLowerCase()}`, href: entry.run.url, "data-run-id": entry.run.id,
    title: `${entry.job} · run ${entry.run.id} · ${state} · ${when}`,
  }, content);
}

function dayCell(day, entries, state) {
  const classes = ["cal-day"];
  if (state.view === "month" && day.getMonth() !== state.date.getMonth()) classes.push("is-other");
  if (dayKey(day) === dayKey(today())) classes.push("is-today");
  const shown = state.view === "month" ? entries.slice(0, MONTH_CHIPS) : entries;
  const chips = el("div", { class: "chips" }, shown.map(chip));
  if (shown.length < entries.length) {
    const more = el("a", { class: "chip-more", href: "#" }, `+${entries.length - shown.length} more`);
    more.addEventListener("click", (event) => {
      event.preventDefault();
      render({ ...state, view: "week", date: day });
    });
    chips.append(more);
  }
  const label = day.toLocaleDateString(undefined, { weekday: "long", day: "numeric", month: "long" });
  return el("div", { class: classes.join(" "), "data-day": dayKey(day), "aria-label": label },
    el("span", { class: "cal-date" }, state.view === "month" ? String(day.getDate()) : `${DOW[(day.getDay() + 6) % 7]} ${day.getDate()}`),
    chips);
}

let generation = 0;

async function render(state) {
  writeState(state);
  for (const button of document.querySelectorAll("[data-view]")) {
    button.setAttribute("aria-pressed", String(button.dataset.view === state.view));
  }
  jobSelect.value = state.job;
  const days = daysOf(state);
  rangeLabel.textContent = rangeText(state, days);
  const start = days[0];
  const end = addDays(days[days.length - 1], 1);
  const query = new URLSearchParams({ start: start.toISOString(), end: end.toISOString() });
  if (state.job) query.set("job", state.job);
  const mine = ++generation;
  calendar.setAttribute("aria-busy", "true");
  errorBanner.textContent = "";
  let entries = [];
  try {
    entries = await fetchJSON(`/api/v1/schedule/?${query}`);
  } catch (err) {
    errorBanner.textContent = err.detail || String(err);
  }
  if (mine !== generation) return; // a newer render started meanwhile
  const byDay = new Map(days.map((d) => [dayKey(d), []]));
  for (const entry of entries) {
    const bucket = byDay.get(dayKey(new Date(entry.at)));
    if (bucket) bucket.push(entry);
  }
  const header = (state.view === "week" ? days.map((d) => `${DOW[(d.getDay() + 6) % 7]}`) : DOW)
    .map((name) => el("div", { class: "cal-dow" }, name));
  calendar.className = `calendar ${state.view}`;
  calendar.replaceChildren(...(state.view === "month" ? header : []),
    ...days.map((day) => dayCell(day, byDay.get(dayKey(day)), state)));
  calendar.setAttribute("aria-busy", "false");
  current = state;
}

let current = readState();

function move(step) {
  const d = current.date;
  let date;
  if (step === 0) date = today();
  else if (current.view === "week") date = addDays(d, 7 * step);
  else date = new Date(d.getFullYear(), d.getMonth() + step, 1);
  render({ ...current, date });
}

for (const button of document.querySelectorAll("[data-view]")) {
  button.addEventListener("click", () => render({ ...current, view: button.dataset.view }));
}
for (const button of document.querySelectorAll("[data-move]")) {
  button.addEventListener("click", () => move(Number(button.dataset.move)));
}
jobSelect.addEventListener("change", () => render({ ...current, job: jobSelect.value }));
document.getElementById("cal-tz").textContent = `times in ${Intl.DateTimeFormat().resolvedOptions().timeZone}`;
render(current);

// Shared helpers for every page module: JSON fetch with CSRF, times in the browser's
// timezone (UTC on hover), durations, state badges, and a tiny DOM builder.
// Text always goes in through textContent, never innerHTML.

export const RUN_STATES = ["QUEUED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELED"];

/** An API error: HTTP status, the one-sentence `detail`, and `errors` keyed by dotted field path. */
export class ApiError extends Error {
  constructor(status, detail, errors = {}) {
    super(detail);
    this.status = status;
    this.detail = detail;
    this.errors = errors;
  }
}

export function csrfToken() {
  const meta = document.querySelector('meta[name="csrf-token"]');
  if (meta && meta.content) return meta.content;
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : "";
}

/**
 * fetch() for the REST API: sends `body` as JSON with the CSRF token, resolves to the
 * parsed JSON of a 2xx answer, rejects with ApiError (status, detail, errors) otherwise.
 */
export async function fetchJSON(url, { method = "GET", body, headers = {} } = {}) {
  const init = { method, credentials: "same-origin", headers: { Accept: "application/json", ...headers } };
  if (method !== "GET" && method !== "HEAD") init.headers["X-CSRFToken"] = csrfToken();
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(url, init);
  } catch (err) {
    throw new ApiError(0, `the server could not be reached (${err.message}); check your connection and retry`);
  }
  const data = await response.json().catch(() => null);
  if (!response.ok) {
    const detail = (data && data.detail) || `the server answered ${response.status} ${response.statusText}`;
    throw new ApiError(response.status, detail, (data && data.errors) || {});
  }
  return data;
}

const pad = (n, width = 2) => String(n).padStart(width, "0");

function toDate(value) {
  return value instanceof Date ? value : new Date(value);
}

/** HH:MM:SS.mmm in the browser's timezone (log lines). */
export function formatTime(value) {
  const d = toDate(value);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

/** YYYY-MM-DD HH:MM:SS in the browser's timezone. */
export function formatDateTime(value) {
  const d = toDate(value);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** YYYY-MM-DD HH:MM:SS.mmm UTC: the hover title of every local timestamp. */
export function formatUTC(value) {
  const iso = toDate(value).toISOString(); // 2026-11-28T12:15:02.123Z
  return `${iso.slice(0, 10)} ${iso.slice(11, 23)} UTC`;
}

/** 850 ms, 1.2 s, 42 s, 3 min 05 s, 2 h 04 min (the same as the `duration` template filter). */
export function formatDuration(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return "—";
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  if (seconds < 10) return `${seconds.toFixed(1)} s`;
  if (seconds < 60) return `${Math.round(seconds)} s`;
  const total = Math.round(seconds);
  const minutes = Math.floor(total / 60);
  if (minutes < 60) return `${minutes} min ${pad(total % 60)} s`;
  return `${Math.floor(minutes / 60)} h ${pad(minutes % 60)} min`;
}

const TIME_FORMATS = { datetime: formatDateTime, time: formatTime };

/**
 * Rewrite every <time data-local="datetime|time" datetime="…Z"> under `root` to the
 * browser's timezone, with the UTC time as its title. Idempotent.
 */
export function localizeTimes(root = document) {
  for (const el of root.querySelectorAll("time[data-local]")) {
    const iso = el.getAttribute("datetime");
    const format = TIME_FORMATS[el.dataset.local] || formatDateTime;
    if (!iso) continue;
    el.textContent = format(iso);
    el.title = formatUTC(iso);
  }
}

/** A <time> element for `iso` in local time with UTC on hover (null → an em dash). */
export function timeElement(iso, style = "datetime") {
  if (!iso) return el("span", { class: "muted" }, "—");
  const node = el("time", { datetime: iso, "data-local": style });
  node.textContent = (TIME_FORMATS[style] || formatDateTime)(iso);
  node.title = formatUTC(iso);
  return node;
}

/** A run-state badge, a link when `href` is given (the markup of the `state_badge` tag). */
export function stateBadge(state, href = "") {
  const cls = RUN_STATES.includes(state) ? `badge badge-${state.toLowerCase()}` : "badge";
  return el(href ? "a" : "span", href ? { class: cls, href } : { class: cls }, state);
}

/** Update an existing badge element in place (live state changes). */
export function setBadgeState(node, state) {
  node.className = RUN_STATES.includes(state) ? `badge badge-${state.toLowerCase()}` : "badge";
  node.textContent = state;
}

/**
 * el("a", {href: "/x", class: "btn"}, "text", childNode): attributes set with
 * setAttribute (`on*` keys as listeners), string children as text nodes.
 */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// The Run-with-parameters modal, also the Replay modal (same shape, other URL).
//
//   import { openParamsModal } from "./params_modal.js";
//   const run = await openParamsModal({
//     title: "Run nightly-sales",            // dialog heading
//     submitLabel: "Run",                    // primary button text (default "Run")
//     submitUrl: "/api/v1/jobs/nightly-sales/runs/",   // POSTed the Overrides body (API.md)
//     steps: [{name: "F0001", type: "sql_query"}, …],  // in order
//     initial: {                             // pre-filled values
//       log_level: "INFO",
//       params: {target_connector: "warehouse", days: 3},
//       steps: {F0001: {op_kwargs: {…}, enabled: true}, …},
//     },
//     canEditOpKwargs: false,                // editor role: per-step op_kwargs textareas
//     shortcuts: [{label: "Only the failed step", apply(state) { … }}],  // optional buttons
//     extraBody: (state) => ({rerun: "failed_step"}),  // optional: more keys for the body
//     navigate: true,                        // default: go to the new run's page after 201
//   });
//
// Resolves to the created Run (the 201 body) once the server accepted it (and, with
// `navigate`, sets location to run.url), or to null if the user closed the dialog.
//
// `state` (what shortcuts' apply() receive and may change in place; the form is redrawn
// from it afterwards): {log_level, params: {name: value}, steps: {NAME: {enabled,
// op_kwargs}}, extra: {}}. `state.extra` is merged into the body as is, so a shortcut
// can also set e.g. `state.extra.rerun = "failed_step"`.
//
// The body sent: {log_level, params: every param, steps: {NAME: {enabled}}} plus
// `op_kwargs` for the steps whose JSON an editor changed (an operator never sends
// op_kwargs: the API answers 403 to that). Client-side checks first (each param keeps
// the JSON type of its initial value, op_kwargs must be a JSON object, one step must
// stay enabled); then a 400's `errors` are shown next to the field they name
// ("params.days", "steps.F0004.op_kwargs.sql", …), anything else above the form.
// Keyboard: the first field has focus, Tab stays inside, Esc closes; focus returns to
// the element that had it before.

import { ApiError, el, fetchJSON } from "./common.js";

let counter = 0;

export function openParamsModal(options) {
  return new Promise((resolve) => new ParamsModal(options, resolve).open());
}

function jsonType(value) {
  if (value === null || value === undefined) return "null";
  if (Array.isArray(value)) return "array";
  return typeof value; // string, number, boolean, object
}

function clone(value) {
  return value === undefined ? undefined : JSON.parse(JSON.stringify(value));
}

class ParamsModal {
  constructor(options, resolve) {
    this.opts = { submitLabel: "Run", navigate: true, shortcuts: [], canEditOpKwargs: false, ...options };
    this.resolve = resolve;
    this.id = `pm${++counter}`;
    const initial = this.opts.initial || {};
    this.initial = {
      log_level: initial.log_level || "INFO",
      params: clone(initial.params || {}),
      steps: {},
    };
    for (const step of this.opts.steps) {
      const given = (initial.steps || {})[step.name] || {};
      this.initial.steps[step.name] = {
        op_kwargs: clone(given.op_kwargs || {}),
        enabled: given.enabled !== undefined ? Boolean(given.enabled) : true,
      };
    }
    this.state = { ...clone(this.initial), extra: {} };
    this.fields = new Map(); // dotted path -> {input, error}
    this.returnFocus = document.activeElement;
  }

  open() {
    this.dialog = this.build();
    document.body.append(this.dialog);
    this.dialog.addEventListener("cancel", (event) => { event.preventDefault(); this.close(null); });
    this.dialog.addEventListener("keydown", (event) => this.trapTab(event));
    this.dialog.showModal();
    // The first field (not the close button in the header) has focus.
    const first = this.dialog.querySelector(`input[name="${this.id}-log_level"]:checked`)
      || this.dialog.querySelector("input, select, textarea");
    if (first) first.focus();
  }

  close(result) {
    this.dialog.close();
    this.dialog.remove();
    if (this.returnFocus && this.returnFocus.focus) this.returnFocus.focus();
    this.resolve(result);
  }

  trapTab(event) {
    if (event.key !== "Tab") return;
    const nodes = [...this.dialog.querySelectorAll("input, select, textarea, button, a[href]")]
      .filter((node) => !node.disabled && node.offsetParent !== null);
    if (!nodes.length) return;
    const first = nodes[0];
    const last = nodes[nodes.length - 1];
    if (event.shiftKey && document.activeElement === first) { event.preventDefault(); last.focus(); }
    else if (!event.shiftKey && document.activeElement === last) { event.preventDefault(); first.focus(); }
  }

  // --- building the form ------------------------------------------------------------

  build() {
    const titleId = `${this.id}-title`;
    this.banner = el("div", { class: "form-banner", role: "alert" });
    this.body = el("div", { class: "modal-body" });
    this.submitButton = el("button", { type: "submit", class: "btn btn-primary" }, this.opts.submitLabel);
    const form = el("form", { method: "dialog", novalidate: true },
      el("div", { class: "modal-head" },
        el("h2", { id: titleId }, this.opts.title || "Run with parameters"),
        el("button", { type: "button", class: "btn btn-quiet btn-close", "aria-label": "Close", onclick: () => this.close(null) }, "✕")),
      this.body,
      el("div", { class: "modal-foot" },
        el("button", { type: "button", class: "btn", onclick: () => this.close(null) }, "Cancel"),
        this.submitButton));
    form.addEventListener("submit", (event) => { event.preventDefault(); this.submit(); });
    this.renderBody();
    return el("dialog", { class: "modal params-modal", "aria-labelledby": titleId }, form);
  }

  renderBody() {
    this.fields.clear();
    const sections = [
      this.banner,
      this.opts.shortcuts.length ? this.shortcutsSection() : null,
      this.logLevelSection(),
      Object.keys(this.state.params).length ? this.paramsSection() : null,
      this.stepsSection(),
    ];
    this.body.replaceChildren(...sections.filter(Boolean));
  }

  register(path, input, error) {
    this.fields.set(path, { input, error });
    if (input) input.setAttribute("aria-describedby", error.id);
  }

  errorNode(path) {
    return el("p", { class: "form-error", id: `${this.id}-err-${path.replace(/[^\w-]/g, "_")}` });
  }

  shortcutsSection() {
    return el("div", { class: "shortcuts", role: "group", "aria-label": "Shortcuts" },
      this.opts.shortcuts.map((shortcut) => el("button", {
        type: "button", class: "btn btn-small",
        onclick: () => { this.readForm(false); shortcut.apply(this.state); this.renderBody(); this.clearErrors(); },
      }, shortcut.label)));
  }

  logLevelSection() {
    const error = this.errorNode("log_level");
    const radios = ["INFO", "DEBUG"].map((level) => {
      const input = el("input", { type: "radio", name: `${this.id}-log_level`, value: level,
        checked: this.state.log_level === level, "data-field": "log_level" });
      return el("label", { class: "switch" }, input, level);
    });
    this.register("log_level", radios[0].querySelector("input"), error);
    return el("fieldset", { class: "modal-section" }, el("legend", {}, "Log level"),
      el("div", { class: "log-levels" }, radios), error);
  }

  paramsSection() {
    const rows = Object.entries(this.state.params).map(([name, value]) => this.paramRow(name, value));
    const error = this.errorNode("params");
    this.register("params", null, error);
    return el("fieldset", { class: "modal-section" }, el("legend", {}, "Parameters"), rows, error);
  }

  paramRow(name, value) {
    const path = `params.${name}`;
    const type = jsonType(this.initial.params[name]);
    const inputId = `${this.id}-param-${name}`;
    const error = this.errorNode(path);
    let input;
    if (type === "boolean") {
      input = el("input", { type: "checkbox", id: inputId, checked: Boolean(value) });
    } else if (type === "string") {
      input = el("input", { type: "text", id: inputId, value: value === null ? "" : String(value), spellcheck: "false" });
    } else if (type === "number") {
      input = el("input", { type: "text", inputmode: "decimal", id: inputId, value: String(value) });
    } else {
      input = el("textarea", { id: inputId, rows: 2, spellcheck: "false" });
      input.value = JSON.stringify(value, null, 1);
    }
    input.dataset.param = name;
    input.dataset.type = type;
    this.register(path, input, error);
    const hint = type === "string" ? null : el("span", { class: "hint" }, type === "null" ? "JSON" : type);
    return el("div", { class: "param-row" }, el("label", { for: inputId }, name),
      el("div", { class: "param-input" }, input, hint, error));
  }

  stepsSection() {
    const error = this.errorNode("steps");
    this.register("steps", null, error);
    const hint = this.opts.canEditOpKwargs
      ? el("p", { class: "hint muted" }, "op_kwargs are merged into each step's definition for this run only.")
      : null;
    return el("fieldset", { class: "modal-section" }, el("legend", {}, "Steps"), hint,
      this.opts.steps.map((step) => this.stepRow(step)), error);
  }

  stepRow(step) {
    const config = this.state.steps[step.name];
    const base = `steps.${step.name}`;
    const toggle = el("input", { type: "checkbox", checked: config.enabled, "data-step": step.name,
      "aria-label": `run step ${step.name}` });
    const row = el("div", { class: `step-row${config.enabled ? "" : " is-off"}`, "data-step-row": step.name });
    toggle.addEventListener("change", () => row.classList.toggle("is-off", !toggle.checked));
    const stepError = this.errorNode(base);
    this.register(base, toggle, stepError);
    this.register(`${base}.enabled`, toggle, stepError);
    row.append(el("div", { class: "step-row-head" },
      el("span", { class: "step-name" }, step.name),
      el("span", { class: "step-type" }, step.type || ""),
      el("label", { class: "switch" }, toggle, "enabled")));
    if (this.opts.canEditOpKwargs) {
      const areaId = `${this.id}-kw-${step.name}`;
      const area = el("textarea", { id: areaId, rows: 3, spellcheck: "false", "data-op-kwargs": step.name,
        "aria-label": `op_kwargs of ${step.name} (JSON object)` });
      area.value = JSON.stringify(config.op_kwargs, null, 2);
      const error = this.errorNode(`${base}.op_kwargs`);
      this.register(`${base}.op_kwargs`, area, error);
      row.append(area, error);
    }
    row.append(stepError);
    return row;
  }

  // --- reading, validating, submitting ------------------------------------------------

  /** Copy the inputs into this.state; with `strict`, collect client-side errors. */
  readForm(strict = true) {
    const errors = {};
    const level = this.dialog.querySelector(`input[name="${this.id}-log_level"]:checked`);
    this.state.log_level = level ? level.value : "INFO";
    for (const input of this.dialog.querySelectorAll("[data-param]")) {
      const name = input.dataset.param;
      const parsed = parseParam(input, input.dataset.type);
      if (parsed.error) errors[`params.${name}`] = [parsed.error];
      else this.state.params[name] = parsed.value;
    }
    for (const toggle of this.dialog.querySelectorAll("input[data-step]")) {
      this.state.steps[toggle.dataset.step].enabled = toggle.checked;
    }
    for (const area of this.dialog.querySelectorAll("textarea[data-op-kwargs]")) {
      const name = area.dataset.opKwargs;
      const parsed = parseObject(area.value);
      if (parsed.error) errors[`steps.${name}.op_kwargs`] = [parsed.error];
      else this.state.steps[name].op_kwargs = parsed.value;
    }
    if (strict && !Object.values(this.state.steps).some((step) => step.enabled)) {
      errors.steps = ["every step is disabled; enable at least one step"];
    }
    return errors;
  }

  requestBody() {
    const steps = {};
    for (const [name, config] of Object.entries(this.state.steps)) {
      steps[name] = { enabled: config.enabled };
      const changed = JSON.stringify(config.op_kwargs) !== JSON.stringify(this.initial.steps[name].op_kwargs);
      if (this.opts.canEditOpKwargs && changed) steps[name].op_kwargs = config.op_kwargs;
    }
    const extra = this.opts.extraBody ? this.opts.extraBody(this.state) : {};
    return { log_level: this.state.log_level, params: this.state.params, steps, ...this.state.extra, ...extra };
  }

  async submit() {
    this.clearErrors();
    const errors = this.readForm(true);
    if (Object.keys(errors).length) {
      this.showErrors("", errors);
      return;
    }
    this.submitButton.disabled = true;
    try {
      const run = await fetchJSON(this.opts.submitUrl, { method: "POST", body: this.requestBody() });
      if (this.opts.navigate && run && run.url) window.location.assign(run.url);
      this.close(run);
    } catch (err) {
      if (!(err instanceof ApiError)) throw err;
      this.showErrors(err.detail, err.errors);
    } finally {
      this.submitButton.disabled = false;
    }
  }

  clearErrors() {
    this.banner.textContent = "";
    for (const { input, error } of this.fields.values()) {
      error.textContent = "";
      if (input) input.removeAttribute("aria-invalid");
    }
  }

  /** Each error next to the field with the longest matching path; the rest above the form. */
  showErrors(detail, errors) {
    const unplaced = [];
    let firstInvalid = null;
    for (const [path, messages] of Object.entries(errors || {})) {
      const field = this.fieldFor(path);
      if (!field) { unplaced.push(...messages); continue; }
      field.error.textContent = [field.error.textContent, ...messages].filter(Boolean).join(" ");
      if (field.input) {
        field.input.setAttribute("aria-invalid", "true");
        firstInvalid = firstInvalid || field.input;
      }
    }
    const placedAny = Object.keys(errors || {}).length > unplaced.length;
    if (unplaced.length) this.banner.textContent = unplaced.join(" ");
    else if (!placedAny) this.banner.textContent = detail || "the server refused the run";
    if (firstInvalid) firstInvalid.focus();
  }

  fieldFor(path) {
    let candidate = path;
    while (candidate) {
      if (this.fields.has(candidate)) return this.fields.get(candidate);
      const cut = candidate.lastIndexOf(".");
      candidate = cut > 0 ? candidate.slice(0, cut) : "";
    }
    return null;
  }
}

function parseParam(input, type) {
  if (type === "boolean") return { value: input.checked };
  const raw = input.value;
  if (type === "string") return { value: raw };
  if (type === "number") {
    const text = raw.trim();
    const value = Number(text);
    if (text === "" || !Number.isFinite(value)) return { error: `enter a number, like 3 or 2.5 (got "${raw}")` };
    return { value };
  }
  let value;
  try {
    value = JSON.parse(raw);
  } catch {
    return { error: type === "null" ? 'enter JSON: "text" in quotes, a number, true/false, [..] or {..}'
      : `enter a JSON ${type}` };
  }
  if (type !== "null" && jsonType(value) !== type) return { error: `expected a JSON ${type}, got ${jsonType(value)}` };
  return { value };
}

function parseObject(raw) {
  let value;
  try {
    value = JSON.parse(raw.trim() || "{}");
  } catch (err) {
    return { error: `not valid JSON: ${err.message}` };
  }
  if (jsonType(value) !== "object") return { error: 'op_kwargs must be a JSON object, like {"sql": "select 1"}' };
  return { value };
}

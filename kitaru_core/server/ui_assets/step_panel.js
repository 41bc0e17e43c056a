// The step debugger: what one journal step did, opened from its bar on the timeline or
// its row in the steps table. Its output (a JSON viewer with a copy button), its error
// and traceback, attempts and times, its metadata (a tool call's arguments), and for an
// LLM step the calls it made: model, tokens, cost, latency, prompt and response. A
// `flow` step links to the child execution it started.

import { api, clear, copyButton, duration, h, link, pretty, statusBadge, usd, when } from "./core.js";

export function stepLabel(step, steps) {
  // Steps of one name (a loop, parallel calls) are told apart by their position.
  const same = steps.filter((s) => s.name === step.name).length;
  return same > 1 ? `${step.name} #${step.position}` : step.name;
}

// Makes `el` open the step's panel on click, Enter or Space.
export function opensStep(el, open) {
  el.setAttribute("tabindex", "0");
  el.setAttribute("role", "button");
  el.addEventListener("click", open);
  el.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" || ev.key === " ") {
      ev.preventDefault();
      open();
    }
  });
  return el;
}

export function stepPanel() {
  const panel = h("section", { class: "panel", id: "step-panel", "aria-live": "polite", hidden: true });
  let shown = null;

  function show(execution, step) {
    shown = step.earlier ? null : step.position;
    panel.hidden = false;
    const calls = execution.llm_calls.filter((c) => c.position === step.position);
    const childId = `${execution.exec_id}.${step.position}`;
    const { failed_before: _earlier, ...rest } = step.metadata || {};
    clear(panel,
      h("div", { class: "row" },
        h("h2", { id: "step-title" }, `#${step.position} ${step.name}`),
        statusBadge(step.status),
        h("span", { class: "muted" }, step.kind),
        h("button", { type: "button", class: "ghost", "aria-label": "close the step", onclick: () => close() }, "Close")),
      step.earlier ? h("p", { class: "muted", id: "step-earlier" },
        "An earlier run's attempt at this step, which failed; a later run ran it again.") : null,
      h("dl", { class: "kv", id: "step-facts" },
        h("dt", {}, "attempts"), h("dd", {}, String(step.attempts)),
        h("dt", {}, "duration"), h("dd", {}, duration(step.ended_at - step.started_at)),
        h("dt", {}, "started"), h("dd", {}, when(step.started_at)),
        h("dt", {}, "ended"), h("dd", {}, when(step.ended_at)),
        step.kind === "flow" ? [h("dt", {}, "child"), h("dd", {}, link(`#/execution/${encodeURIComponent(childId)}`, childId))] : null),
      inputsView(step),
      Object.keys(rest).length ? [h("h3", {}, "Metadata"), jsonView(rest, "step-metadata")] : null,
      step.error ? errorView(step.error) : null,
      outputView(step),
      calls.length ? calls.map(llmView) : null);
    panel.scrollIntoView({ block: "nearest" });
  }

  function close() {
    shown = null;
    panel.hidden = true;
    clear(panel);
  }

  // After a refresh: the open step shows what the journal says of it now.
  function refresh(execution) {
    if (shown === null) return;
    const step = execution.checkpoints.find((s) => s.position === shown);
    if (step) show(execution, step); else close();
  }

  return { panel, show, close, refresh };
}

// What a step was called with: a tool call's arguments, or a failed checkpoint's
// (kept for failures only: a completed step's output is what it answered).
function inputsView(step) {
  const inputs = step.inputs || (step.metadata || {}).tool_args;
  if (!inputs || typeof inputs !== "object") return null;
  return h("div", { id: "step-inputs" }, h("h3", {}, "Inputs"),
    h("dl", { class: "kv" }, Object.entries(inputs).map(([name, value]) => [
      h("dt", {}, name), h("dd", { class: "mono" }, typeof value === "string" ? value : JSON.stringify(value)),
    ])));
}

function errorView(error) {
  return h("div", { id: "step-error" },
    h("h3", {}, "Error"),
    h("p", { class: "error" }, `${error.type || "Error"}: ${error.message || ""}`),
    error.traceback ? h("details", { open: true }, h("summary", {}, "Traceback"), h("pre", {}, error.traceback)) : null);
}

function outputView(step) {
  const box = h("div", { id: "step-output" }, h("h3", {}, "Output"));
  if (!step.artifact_id) {
    box.append(h("p", { class: "muted" }, step.status === "completed" ? "none recorded" : `none (${step.status})`));
    return box;
  }
  const body = h("div", {}, h("p", { class: "muted" }, "Loading…"));
  box.append(body);
  api(`artifacts/${encodeURIComponent(step.artifact_id)}`).then(
    (value) => clear(body, jsonView(value, "step-output-value")),
    (err) => clear(body, h("p", { class: "muted" }, err.status === 409 ? `${err.message}` : err.message)));
  return box;
}

function llmView(call) {
  const box = h("div", { class: "llm-call" },
    h("h3", {}, `LLM call: ${call.alias ? `${call.alias} → ` : ""}${call.model}`),
    h("dl", { class: "kv" },
      h("dt", {}, "tokens"), h("dd", {}, `${call.input_tokens ?? "?"} in, ${call.output_tokens ?? "?"} out`),
      h("dt", {}, "cost"), h("dd", {}, usd(call.cost_usd)),
      h("dt", {}, "latency"), h("dd", {}, duration(call.latency)),
      h("dt", {}, "attempts"), h("dd", {}, String(call.attempts)),
      call.error ? [h("dt", {}, "error"), h("dd", { class: "error" }, call.error)] : null));
  for (const [label, id] of [["Prompt", call.prompt_artifact_id], ["Response", call.response_artifact_id]]) {
    if (!id) continue;
    const body = h("div", { class: `llm-${label.toLowerCase()}` }, h("p", { class: "muted" }, "Loading…"));
    box.append(h("h4", {}, label), body);
    api(`artifacts/${encodeURIComponent(id)}`).then(
      (value) => clear(body, jsonView(value)),
      (err) => clear(body, h("p", { class: "error" }, err.message)));
  }
  return box;
}

// A value as indented JSON, collapsible when long, with a button that copies it.
export function jsonView(value, id) {
  const text = typeof value === "string" ? value : pretty(value);
  const copy = copyButton(text, "Copy", "the value");
  const pre = h("pre", { class: "json", id }, text);
  const long = text.split("\n").length > 20;
  return h("div", { class: "json-view" }, copy,
    long ? h("details", { open: true }, h("summary", {}, `${text.split("\n").length} lines`), pre) : pre);
}

// One execution: its journal on a time axis (each step opens the step debugger),
// inputs, result or error, LLM calls, artifacts, the log tail, the pending wait's
// form, and resume, retry, cancel and replay-with-overrides; it follows the
// execution's events.

import {
  API, api, can, clear, copyButton, debounce, duration, firstLoad, h, link, onEvent, pretty, short, statusBadge, toast, usd, when,
} from "../core.js";
import { schemaForm } from "../schema_form.js";
import { opensStep, stepLabel, stepPanel } from "../step_panel.js";

const KINDS = ["checkpoint", "llm", "wait", "sleep", "memory"];
const MAX_LANES = 16;
const ARTIFACTS_SHOWN = 100;

export async function executionPage(root, [execId]) {
  const sections = h("div");
  const tools = h("div");
  const debuggerPanel = stepPanel();
  clear(root, sections, tools);
  let execution = null;
  const open = (step) => debuggerPanel.show(execution, step);

  async function refresh() {
    const [found, artifacts, logs] = await Promise.all([
      api(`executions/${encodeURIComponent(execId)}`),
      api(`executions/${encodeURIComponent(execId)}/artifacts`),
      api(`executions/${encodeURIComponent(execId)}/logs`).catch(() => ""),
    ]);
    const first = execution === null;
    execution = found;
    clear(sections,
      header(found),
      found.pending_wait ? waitPanel(found) : null,
      h("h2", {}, `Journal (${found.checkpoints.length} steps)`),
      timeline(found, open),
      debuggerPanel.panel,
      stepsTable(found, open),
      h("div", { class: "grid2" }, inputsPanel(artifacts), outcomePanel(found)),
      llmPanel(found),
      artifactsPanel(artifacts),
      h("h2", {}, "Log"),
      h("pre", { id: "log" }, tail(logs, 200) || "(empty)"));
    debuggerPanel.refresh(found);
    if (first) clear(tools, replayPanel(found), comparePanel(found));
  }

  // Listen before the first read: an event that lands while it is on its way must
  // still bring a refresh, or the page would stay behind until the next one.
  const later = debounce(() => refresh().catch((e) => toast(e.message)), 200);
  const stop = onEvent((event) => {
    if (event.exec_id === (execution ? execution.exec_id : execId)) later();
  });
  // While it runs, its log is read again every two seconds: what a flow prints comes
  // with no event of its own.
  const following = setInterval(async () => {
    if (!execution || execution.status !== "running") return;
    const logs = await api(`executions/${encodeURIComponent(execution.exec_id)}/logs`).catch(() => null);
    const box = document.getElementById("log");
    if (logs !== null && box) box.textContent = tail(logs, 200) || "(empty)";
  }, 2000);
  const stopAll = () => {
    clearInterval(following);
    stop();
  };
  await firstLoad(refresh, stopAll);
  return stopAll;
}

function tail(text, lines) {
  const all = String(text || "").split("\n");
  return all.slice(Math.max(0, all.length - lines)).join("\n");
}

function header(e) {
  // A run took from its own start: a retried execution's first start was long before.
  const lastStart = e.run_starts.length ? e.run_starts[e.run_starts.length - 1] : e.started_at;
  const took = e.ended_at && lastStart ? e.ended_at - lastStart : null;
  const overall = e.runs > 1 && e.ended_at && e.started_at
    ? ` (run ${e.runs}; ${duration(e.ended_at - e.started_at)} since the first start)` : "";
  const act = (action, label, cls = "ghost", confirmFirst = null) => h("button", {
    type: "button", class: cls, "data-action": action,
    onclick: async (ev) => {
      if (confirmFirst && !window.confirm(confirmFirst)) return;
      ev.target.disabled = true;
      try {
        const after = await api(`executions/${encodeURIComponent(e.exec_id)}/${action}`, { method: "POST" });
        toast(`${label}: ${after.status}`);
      } catch (err) {
        toast(err.message, "error");
        ev.target.disabled = false;
      }
    },
  }, label);
  const unfinished = ["queued", "running", "sleeping", "waiting"].includes(e.status);
  return h("section", { class: "panel" },
    h("h1", {}, "Execution ", h("span", { class: "mono" }, e.exec_id)),
    h("div", { class: "row" }, copyButton(e.exec_id, "Copy id")),
    h("div", { class: "row" },
      h("span", { id: "status" }, statusBadge(e.status)),
      h("span", {}, "flow ", h("strong", {}, e.flow_name)),
      h("span", { class: "muted" }, `stack ${e.stack} · runs ${e.runs} · created ${when(e.created_at)} · took ${duration(took)}${overall}`),
      e.code_version ? h("span", { class: "muted", id: "code-version", title: e.code_archive ? `source archive ${e.code_archive}` : "" },
        "code ", h("span", { class: "mono" }, e.code_version)) : null,
      e.started_by ? h("span", { class: "muted", id: "started-by" }, "started by ", h("span", { class: "mono" }, e.started_by)) : null),
    e.parent_exec_id ? h("p", { id: "parent" }, "Child of ",
      link(`#/execution/${encodeURIComponent(e.parent_exec_id)}`, e.parent_exec_id),
      ` (its step #${e.exec_id.slice(e.parent_exec_id.length + 1)})`) : null,
    e.status === "sleeping" && e.wake_at ? h("p", { id: "wakes" }, `Sleeps until ${when(e.wake_at)}`) : null,
    budgetLine(e),
    e.original_exec_id ? h("p", {}, "Replay of ", link(`#/execution/${encodeURIComponent(e.original_exec_id)}`, e.original_exec_id),
      " · ", link(`#/compare/${encodeURIComponent(e.original_exec_id)}/${encodeURIComponent(e.exec_id)}`, "compare with its original")) : null,
    can("run") ? h("div", { class: "row" },
      // Resume continues a run whose process is gone; a waiting execution goes on
      // with an answer, a sleeping one when its timer is due.
      e.status === "running" ? act("resume", "Resume") : null,
      ["failed", "cancelled"].includes(e.status) ? act("retry", "Retry") : null,
      unfinished ? act("cancel", "Cancel", "danger", `Cancel execution ${e.exec_id}? It runs nothing more.`) : null) : null);
}

function budgetLine(e) {
  const budget = e.budget;
  if (!budget) return null;
  const t = e.llm_totals;
  const parts = [];
  if (budget.max_cost_usd != null) parts.push(`${usd(t.cost_usd)} of ${usd(budget.max_cost_usd)}`);
  if (budget.max_llm_calls != null) parts.push(`${t.calls} of ${budget.max_llm_calls} LLM calls`);
  return parts.length ? h("p", { id: "budget" }, `Budget: ${parts.join(", ")}`) : null;
}

function waitPanel(e) {
  const wait = e.pending_wait;
  const form = can("input")
    ? schemaForm(wait.schema, async (value) => {
      await api(`executions/${encodeURIComponent(e.exec_id)}/input`, { method: "POST", body: { wait: wait.name, value } });
      toast(`input for ${wait.name} recorded`);
    })
    : h("p", { class: "muted" }, "Your token cannot answer waits.");
  return h("section", { class: "panel card", id: "pending-wait" },
    h("h2", {}, `Waiting for ${wait.name}`),
    wait.question ? h("p", {}, wait.question) : null,
    h("p", { class: "muted" }, `expects ${wait.schema_name}`, wait.expires_at ? ` · until ${when(wait.expires_at)}` : ""),
    form);
}

// Steps as bars on a time axis; steps that overlap (parallel submits) go side by side
// in lanes; steps this execution took from its source's journal are hatched.
function timeline(e, open) {
  // Each step, and the failed attempts of earlier runs it replaced (kept in its
  // metadata), which are drawn failed and open the step they led to.
  const steps = e.checkpoints.filter((c) => c.started_at && c.ended_at).flatMap((c) => [
    ...((c.metadata || {}).failed_before || []).map((f, i) => ({
      ...c, ...f, status: "failed", earlier: i + 1, attempts: f.attempts, error: f.error, artifact_id: null,
    })),
    c,
  ]);
  if (!steps.length) return h("p", { class: "muted" }, "No steps yet.");
  const t0 = Math.min(...steps.map((s) => s.started_at));
  const t1 = Math.max(...steps.map((s) => s.ended_at), ...e.run_starts);
  const span = Math.max(t1 - t0, 1e-6);
  const lanes = [];
  const byLane = [];
  for (const step of [...steps].sort((a, b) => a.started_at - b.started_at || a.position - b.position)) {
    let lane = lanes.findIndex((end) => end <= step.started_at + 1e-9);
    if (lane === -1) lane = lanes.length < MAX_LANES ? lanes.length : MAX_LANES - 1;
    lanes[lane] = Math.max(lanes[lane] || 0, step.ended_at);
    (byLane[lane] ||= []).push(step);
  }
  const fromJournal = (s) => e.original_exec_id && s.ended_at <= e.created_at && !(s.metadata || {}).override;
  const rows = byLane.map((laneSteps) => h("div", { class: "lane" }, laneSteps.map((s) => {
    const left = ((s.started_at - t0) / span) * 100;
    const width = Math.max(((s.ended_at - s.started_at) / span) * 100, 0.15);
    const notes = [
      s.earlier ? "an earlier run's failed attempt" : null,
      fromJournal(s) ? "answered from the journal" : null,
      (s.metadata || {}).override ? "overridden" : null,
    ].filter(Boolean).join(", ");
    const label = stepLabel(s, e.checkpoints);
    const about = `#${s.position} ${s.name} (${s.kind}) ${s.status}, ${duration(s.ended_at - s.started_at)}${notes ? ` — ${notes}` : ""}`;
    // A bar too narrow for its name has it written beside it.
    const narrow = width < 8 && left < 80;
    return opensStep(h("div", {
      class: `bar k-${KINDS.includes(s.kind) ? s.kind : "checkpoint"}${s.status === "failed" ? " failed" : ""}${fromJournal(s) ? " journal" : ""}${narrow ? " narrow" : ""}`,
      style: { left: `${left}%`, width: `${width}%` },
      title: about,
      "aria-label": about,
      "data-step": s.name,
      "data-position": String(s.position),
      "data-earlier": s.earlier ? String(s.earlier) : null,
    }, h("span", { class: "label" }, label)), () => open(s));
  })));
  return h("div", {},
    h("div", { class: "legend" }, KINDS.map((k) => h("span", { style: { "--sw": `var(--c-${k})` } }, k)),
      h("span", { style: { "--sw": "var(--c-failed)" } }, "failed"),
      e.original_exec_id ? h("span", { style: { "--sw": "var(--muted)" } }, "hatched: answered from the journal") : null),
    h("div", { class: "timeline", id: "timeline", "aria-label": `${steps.length} steps over ${duration(span)}` },
      rows,
      // A line where each later run began.
      e.run_starts.slice(1).filter((at) => at >= t0).map((at, i) => h("div", {
        class: "run-start", style: { left: `${((at - t0) / span) * 100}%` }, title: `run ${i + 2} began ${when(at)}`,
      }, h("span", {}, `run ${i + 2}`)))),
    h("div", { class: "axis" }, h("span", {}, "0"), h("span", {}, duration(span / 2)), h("span", {}, duration(span))));
}

function stepsTable(e, open) {
  const box = h("details", { id: "steps" }, h("summary", {}, `All ${e.checkpoints.length} steps as a table`));
  box.addEventListener("toggle", () => {
    if (!box.open || box.querySelector("table")) return;
    box.append(h("div", { class: "scroll" }, h("table", {},
      h("thead", {}, h("tr", {}, ["#", "step", "kind", "status", "attempts", "duration"].map((c) => h("th", {}, c)))),
      h("tbody", {}, e.checkpoints.map((c) => opensStep(h("tr", { "data-position": String(c.position) },
        h("td", { class: "num" }, c.position), h("td", {}, stepLabel(c, e.checkpoints)), h("td", {}, c.kind),
        h("td", {}, statusBadge(c.status)), h("td", { class: "num" }, c.attempts),
        h("td", { class: "num" }, duration(c.duration))), () => open(c)))))));
  });
  return box;
}

function inputsPanel(artifacts) {
  const inputs = artifacts.filter((a) => a.role === "input");
  const box = h("dl", { class: "kv" });
  for (const a of inputs) {
    const value = h("dd", { class: "mono" }, "…");
    box.append(h("dt", {}, a.name), value);
    api(`artifacts/${encodeURIComponent(a.id)}`).then(
      (v) => { value.textContent = short(v, 400); },
      (err) => { value.textContent = err.message; });
  }
  return h("section", { class: "panel", id: "inputs" }, h("h2", {}, "Inputs"),
    inputs.length ? box : h("p", { class: "muted" }, "none"));
}

function outcomePanel(e) {
  if (e.error) {
    return h("section", { class: "panel", id: "error" }, h("h2", {}, "Error"),
      h("p", { class: "error" }, `${e.error.type}: ${e.error.message}`),
      e.error.traceback ? h("details", {}, h("summary", {}, "Traceback"), h("pre", {}, e.error.traceback)) : null);
  }
  if (e.status === "completed") {
    return h("section", { class: "panel", id: "result" }, h("h2", {}, "Result"),
      e.result === null && e.result_artifact_id
        ? h("p", { class: "muted" }, "Not JSON; see the artifact ", h("span", { class: "mono" }, e.result_artifact_id))
        : h("pre", {}, pretty(e.result)));
  }
  return h("section", { class: "panel", id: "result" }, h("h2", {}, "Result"), h("p", { class: "muted" }, `none yet (${e.status})`));
}

function llmPanel(e) {
  if (!e.llm_calls.length) return null;
  const t = e.llm_totals;
  return h("section", { id: "llm" },
    h("h2", {}, `LLM calls: ${t.calls}, ${t.input_tokens} tokens in, ${t.output_tokens} out, ${usd(t.cost_usd)}`),
    e.llm_calls.map((c) => {
      const body = h("div");
      const box = h("details", { class: "panel" },
        h("summary", {}, `${c.checkpoint || "-"} · ${c.alias || c.model} → ${c.model} · ${c.input_tokens ?? "?"} in / ${c.output_tokens ?? "?"} out · ${usd(c.cost_usd)} · ${duration(c.latency)}${c.error ? ` · error: ${c.error}` : ""}`),
        body);
      box.addEventListener("toggle", async () => {
        if (!box.open || body.childElementCount) return;
        const show = async (label, id) => {
          if (!id) return null;
          try {
            return [h("h3", {}, label), h("pre", {}, pretty(await api(`artifacts/${encodeURIComponent(id)}`)))];
          } catch (err) {
            return [h("h3", {}, label), h("p", { class: "error" }, err.message)];
          }
        };
        body.append(...((await show("Prompt", c.prompt_artifact_id)) || []), ...((await show("Response", c.response_artifact_id)) || []));
      });
      return box;
    }));
}

function artifactsPanel(artifacts) {
  const preview = h("div", { id: "artifact-preview", "aria-live": "polite" });
  const open = async (a) => {
    const url = `${API}/artifacts/${encodeURIComponent(a.id)}`;
    clear(preview, h("p", { class: "muted" }, `Loading ${a.name}…`));
    try {
      const response = await api(`artifacts/${encodeURIComponent(a.id)}`, { raw: true });
      const kind = response.headers.get("content-type") || "";
      let shown;
      if (kind.startsWith("image/")) {
        const blob = await response.blob();
        shown = h("img", { src: URL.createObjectURL(blob), alt: `artifact ${a.name}`, style: { "max-width": "100%" } });
      } else if (kind.includes("json")) {
        shown = h("pre", {}, pretty(await response.json()));
      } else if (kind.startsWith("text/")) {
        shown = h("pre", {}, await response.text());
      } else {
        shown = h("a", { href: url, download: a.name, class: "button" }, `Download ${a.name} (${a.size} bytes)`);
      }
      clear(preview, h("h3", {}, a.name), shown);
    } catch (err) {
      clear(preview, h("h3", {}, a.name), h("p", { class: "error" }, err.message));
    }
  };
  const row = (a) => h("tr", {},
    h("td", {}, a.name), h("td", {}, a.role), h("td", { class: "mono hide-narrow" }, a.type_ref),
    h("td", { class: "hide-narrow" }, a.serializer), h("td", { class: "num" }, a.size),
    h("td", {}, h("button", { type: "button", class: "ghost", onclick: () => open(a) }, "Preview")));
  // A long run has thousands: the first ones at once, the rest when asked for.
  const body = h("tbody", {}, artifacts.slice(0, ARTIFACTS_SHOWN).map(row));
  const more = artifacts.length > ARTIFACTS_SHOWN
    ? h("button", { type: "button", class: "ghost", onclick: (ev) => {
      body.append(...artifacts.slice(ARTIFACTS_SHOWN).map(row));
      ev.target.remove();
    } }, `Show all ${artifacts.length} artifacts`)
    : null;
  return h("section", { id: "artifacts" }, h("h2", {}, `Artifacts (${artifacts.length})`),
    h("div", { class: "scroll" }, h("table", {},
      h("thead", {}, h("tr", {}, h("th", {}, "name"), h("th", {}, "role"), h("th", { class: "hide-narrow" }, "type"),
        h("th", { class: "hide-narrow" }, "stored as"), h("th", {}, "size"), h("th", {}, ""))),
      body)),
    more,
    preview);
}

function replayPanel(e) {
  if (!can("run") || !e.checkpoints.length) return null;
  const names = e.checkpoints.filter((c) => c.kind === "checkpoint" || c.kind === "llm");
  if (!names.length) {
    return h("section", { class: "panel", id: "replay" }, h("h2", {}, "Replay"),
      h("p", { class: "muted" }, "Nothing to replay from: this execution has no checkpoint or LLM step of its own " +
        "(its steps are child flows, waits or timers). Replay one of its children instead."));
  }
  const from = h("select", { id: "replay-from" }, names.map((c) => h("option", { value: String(c.position) }, `#${c.position} ${c.name}`)));
  const overrides = h("textarea", { id: "replay-overrides", spellcheck: "false" }, "{}");
  const error = h("p", { class: "field-error", role: "alert" });
  const known = new Set(e.checkpoints.map((c) => c.name));
  const form = h("form", { class: "panel", id: "replay" },
    h("h2", {}, "Replay"),
    h("p", { class: "muted" }, "A new execution that reuses this one's steps before the chosen one and runs the rest live. " +
      "Overrides replace a step's recorded output: {\"checkpoint.NAME\": value}."),
    h("label", { for: "replay-from" }, "From", from),
    h("label", { for: "replay-overrides", style: { width: "100%" } }, "Overrides (JSON)", overrides),
    h("button", { type: "submit" }, "Replay"),
    error);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    let parsed;
    try {
      parsed = JSON.parse(overrides.value || "{}");
    } catch (err) {
      error.textContent = `overrides are not valid JSON: ${err.message}`;
      return;
    }
    if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
      error.textContent = "overrides must be a JSON object";
      return;
    }
    const wrong = Object.keys(parsed).filter((k) => !k.startsWith("checkpoint.") || !known.has(k.slice(11)));
    if (wrong.length) {
      error.textContent = `override ${JSON.stringify(wrong[0])} must be "checkpoint.NAME" with NAME one of: ${[...known].join(", ")}`;
      return;
    }
    error.textContent = "";
    try {
      const made = await api(`executions/${encodeURIComponent(e.exec_id)}/replay`, {
        method: "POST", body: { from: Number(from.value), overrides: parsed },
      });
      location.hash = `#/execution/${encodeURIComponent(made.exec_id)}`;
    } catch (err) {
      error.textContent = err.message;
    }
  });
  return form;
}

function comparePanel(e) {
  const other = h("input", { id: "compare-with", placeholder: "another execution id", size: 34 });
  return h("form", {
    class: "panel row", onsubmit: (ev) => {
      ev.preventDefault();
      if (other.value.trim()) location.hash = `#/compare/${encodeURIComponent(e.exec_id)}/${encodeURIComponent(other.value.trim())}`;
    },
  }, h("label", { for: "compare-with" }, "Compare with…", other), h("button", { type: "submit", class: "ghost" }, "Compare"));
}

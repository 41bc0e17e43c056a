// Pending waits, each with its question, metadata and a form built from its schema;
// after an answer, the execution is followed live to its next state. Waits come a page
// at a time (oldest first), so thousands of them cost what fifty do.

import { api, can, clear, debounce, firstLoad, h, link, onEvent, statusBadge, when } from "../core.js";
import { schemaForm } from "../schema_form.js";
import { jsonView } from "../step_panel.js";

// Show a followed execution's status; ``from``: only if it still shows one of these.
function show(followed, status, from = null) {
  if (from && !from.includes(followed.shown)) return;
  followed.shown = status;
  clear(followed.status, statusBadge(status));
}

const PAGE = 50;

// What the wait follows: the output of the execution's last step before it, read when
// opened (a page of fifty cards fetches nothing it does not show).
function before(wait) {
  const body = h("div", {}, h("p", { class: "muted" }, "Loading…"));
  const box = h("details", { class: "before" }, h("summary", {}, "What is being approved: the step before"), body);
  box.addEventListener("toggle", async () => {
    if (!box.open || box.dataset.loaded) return;
    box.dataset.loaded = "1";
    try {
      const execution = await api(`executions/${encodeURIComponent(wait.exec_id)}`);
      const earlier = execution.checkpoints
        .filter((c) => c.position < wait.position && c.status === "completed" && c.artifact_id);
      const last = earlier[earlier.length - 1];
      if (!last) {
        clear(body, h("p", { class: "muted" }, "No step came before this wait."));
        return;
      }
      const value = await api(`artifacts/${encodeURIComponent(last.artifact_id)}`);
      clear(body, h("p", { class: "muted" }, `#${last.position} ${last.name}`), jsonView(value));
    } catch (err) {
      clear(body, h("p", { class: "error" }, err.message));
    }
  });
  return box;
}

export async function inboxPage(root) {
  const list = h("div", { id: "inbox" });
  const more = h("div", { class: "row" });
  const total = h("p", { class: "muted", id: "inbox-total", "aria-live": "polite" });
  const flow = h("input", { id: "inbox-flow", type: "search", placeholder: "any", size: 14 });
  const waitName = h("input", { id: "inbox-name", type: "search", placeholder: "any", size: 12 });
  const held = h("input", { id: "inbox-metadata", type: "search", placeholder: "key=value", size: 16 });
  let shown = PAGE; // how many the page shows: "Show more" adds a page
  const followed = new Map(); // exec_id -> the status element of its answered card
  const answered = new Set(); // "exec_id/wait" of the waits answered on this page

  async function load() {
    const params = new URLSearchParams({ limit: String(Math.min(shown, 500)) });
    if (flow.value.trim()) params.set("flow", flow.value.trim());
    if (waitName.value.trim()) params.set("name", waitName.value.trim());
    if (held.value.trim().includes("=")) params.set("metadata", held.value.trim());
    const [response, count] = await Promise.all([api(`waits?${params}`, { raw: true }), api("waits/count")]);
    const waits = await response.json();
    total.textContent = `${count.pending} wait${count.pending === 1 ? "" : "s"} for an answer` +
      (waits.length < count.pending ? `; the oldest ${waits.length} shown` : "");
    clear(more, response.headers.get("X-Next-Cursor") && shown < 500
      ? h("button", { type: "button", class: "ghost", onclick: () => { shown += PAGE; load(); } }, "Show more")
      : null);
    // An answered execution's next question is a card of its own, shown as it comes.
    const cards = waits.filter((w) => !answered.has(`${w.exec_id}/${w.name}`)).map(card);
    clear(list, cards.length || followed.size ? null : h("p", { class: "muted" }, "Nothing waits for an answer."),
      [...followed.values()].map((f) => f.card), cards);
  }

  function card(wait) {
    const status = h("span", {}, statusBadge("waiting"));
    const box = h("article", { class: "panel card", "data-exec": wait.exec_id, "data-wait": wait.name });
    const form = can("input")
      ? schemaForm(wait.schema, async (value) => {
        // Followed from before the answer is sent: the execution may finish before the
        // answer's response arrives, and its events must not be missed.
        const followed_ = { card: box, status, shown: "waiting" };
        const key = `${wait.exec_id}/${wait.name}`;
        followed.set(wait.exec_id, followed_);
        answered.add(key);
        try {
          await api(`executions/${encodeURIComponent(wait.exec_id)}/input`, { method: "POST", body: { wait: wait.name, value } });
        } catch (e) {
          followed.delete(wait.exec_id);
          answered.delete(key);
          throw e;
        }
        show(followed_, "running", ["waiting"]);
        form.replaceWith(h("p", { class: "answered" }, "Answered with ", h("code", {}, JSON.stringify(value)),
          ". The status above follows the execution."));
        const after = await api(`executions/${encodeURIComponent(wait.exec_id)}`);
        show(followed_, after.status, ["waiting", "running"]);  // unless an event was newer
      })
      : h("p", { class: "muted" }, "Your token can read waits but not answer them.");
    const meta = Object.entries(wait.metadata || {});
    clear(box,
      h("h2", {}, wait.question || wait.name),
      h("p", { class: "muted" }, "execution ", link(`#/execution/${encodeURIComponent(wait.exec_id)}`, wait.exec_id),
        ` · wait ${wait.name} · expects ${wait.schema_name} · since ${when(wait.created_at)}`,
        wait.expires_at ? ` · until ${when(wait.expires_at)}` : ""),
      meta.length ? h("dl", { class: "kv" }, meta.map(([k, v]) => [h("dt", {}, k), h("dd", {}, typeof v === "string" ? v : JSON.stringify(v))])) : null,
      before(wait),
      h("p", {}, "Status: ", status),
      form);
    return box;
  }

  const reload = debounce(load, 250);
  for (const input of [flow, waitName, held]) input.addEventListener("input", reload);
  clear(root, h("h1", {}, "Inbox"), h("p", { class: "muted" }, "Waits nobody has answered yet, oldest first."),
    h("form", { class: "panel row", role: "search", onsubmit: (ev) => { ev.preventDefault(); reload(); } },
      h("label", { for: "inbox-flow" }, "Flow", flow),
      h("label", { for: "inbox-name" }, "Wait", waitName),
      h("label", { for: "inbox-metadata" }, "Metadata", held)),
    total, list, more);
  const stop = onEvent((event) => {  // from before the first load: nothing is missed
    const f = followed.get(event.exec_id);
    if (f && event.kind === "status") show(f, event.status);
    if (event.kind === "wait" || event.kind === "status") reload();
  });
  await firstLoad(load, stop);
  return stop;
}

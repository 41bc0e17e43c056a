// Executions: filters, a page of rows from the summary listing, cursor pagination,
// and rows that follow the event stream. The filters and the page's cursor live in the
// address (#/executions?status=failed&flow=x), so a view can be linked and reloaded.

import {
  ago, api, can, clear, debounce, duration, firstLoad, h, link, onEvent, statusBadge, toast, usd,
} from "../core.js";

// Ids cut in the middle, keeping their end: a child's `.N` tells it from its parent.
function shortId(id) {
  return id.length > 20 ? `${id.slice(0, 8)}…${id.slice(-10)}` : id;
}

const STATUSES = ["queued", "running", "sleeping", "waiting", "completed", "failed", "cancelled"];

const IN_ADDRESS = ["status", "flow", "stack", "since", "until", "q"];

export async function executionsPage(root, _args = [], query = new URLSearchParams()) {
  const [flows, stacks] = await Promise.all([api("flows").catch(() => []), api("stacks").catch(() => [])]);
  const filters = {
    status: h("select", { id: "f-status" }, h("option", { value: "" }, "any"),
      STATUSES.map((s) => h("option", { value: s }, s))),
    flow: h("input", { id: "f-flow", list: "flow-names", placeholder: "any part of a name", size: 14 }),
    stack: h("select", { id: "f-stack" }, h("option", { value: "" }, "any"),
      stacks.map((s) => h("option", { value: s.name }, s.name))),
    since: h("input", { id: "f-since", type: "datetime-local" }),
    until: h("input", { id: "f-until", type: "datetime-local" }),
    q: h("input", { id: "f-q", type: "search", placeholder: "id, flow or question", size: 18 }),
  };
  const body = h("tbody");
  const pager = h("div", { class: "row" });
  const summary = h("p", { class: "muted", "aria-live": "polite" });
  for (const key of IN_ADDRESS) {
    if (query.get(key)) filters[key].value = query.get(key);
  }
  const cursors = [query.get("cursor")];
  let page = 0;
  let rows = [];
  const selected = new Set();
  const actions = h("div", { class: "row", id: "selection" });

  const params = () => {
    const p = new URLSearchParams({ view: "summary", limit: "50" });
    if (filters.status.value) p.set("status", filters.status.value);
    if (filters.flow.value.trim()) p.set("flow_contains", filters.flow.value.trim());
    if (filters.stack.value) p.set("stack", filters.stack.value);
    if (filters.since.value) p.set("since", String(new Date(filters.since.value).getTime() / 1000));
    if (filters.until.value) p.set("until", String(new Date(filters.until.value).getTime() / 1000));
    if (filters.q.value.trim()) p.set("q", filters.q.value.trim());
    if (cursors[page]) p.set("cursor", cursors[page]);
    return p;
  };

  function remember() {
    const kept = new URLSearchParams();
    for (const key of IN_ADDRESS) if (filters[key].value.trim()) kept.set(key, filters[key].value.trim());
    if (cursors[page]) kept.set("cursor", cursors[page]);
    const address = `#/executions${kept.toString() ? `?${kept}` : ""}`;
    // A reload that finishes after the user has gone to another page (a comparison, an
    // execution) must not write the list's address over theirs.
    const here = ["", "executions"].includes(location.hash.replace(/^#\/?/, "").split("?")[0]);
    if (here && location.hash !== address && !(location.hash === "" && address === "#/executions")) {
      history.replaceState(null, "", address);
    }
  }

  async function load() {
    remember();
    const response = await api(`executions?${params()}`, { raw: true });
    rows = await response.json();
    cursors[page + 1] = response.headers.get("X-Next-Cursor");
    clear(body, rows.map(row));
    if (!rows.length) body.append(h("tr", {}, h("td", { colspan: 9, class: "muted" }, "No executions match.")));
    const total = Number(response.headers.get("X-Total-Count") || rows.length);
    summary.textContent = `${total.toLocaleString("en")} execution${total === 1 ? "" : "s"} match; page ${page + 1} shows ${rows.length}`;
    showActions();
    clear(pager,
      h("button", { type: "button", class: "ghost", disabled: page === 0 && !cursors[0], onclick: () => { page = 0; cursors.length = 1; cursors[0] = null; load(); } }, "First"),
      h("button", { type: "button", class: "ghost", disabled: page === 0, onclick: () => { page -= 1; load(); } }, "Previous"),
      h("button", { type: "button", class: "ghost", disabled: !cursors[page + 1], onclick: () => { page += 1; load(); } }, "Next"));
  }

  // Two selected: compare them; any: cancel or retry them, after a confirmation.
  function showActions() {
    const ids = [...selected];
    const bulk = (action, label, fits) => {
      const chosen = rows.filter((r) => selected.has(r.exec_id) && fits(r.status)).map((r) => r.exec_id);
      return h("button", {
        type: "button", class: action === "cancel" ? "danger" : "ghost", disabled: !chosen.length,
        onclick: async () => {
          if (!window.confirm(`${label} ${chosen.length} execution${chosen.length === 1 ? "" : "s"}?`)) return;
          const results = await Promise.allSettled(chosen.map((id) =>
            api(`executions/${encodeURIComponent(id)}/${action}`, { method: "POST" })));
          const failed = results.filter((r) => r.status === "rejected");
          toast(`${label}: ${chosen.length - failed.length} done` + (failed.length ? `, ${failed.length} refused: ${failed[0].reason.message}` : ""),
            failed.length ? "error" : "");
          selected.clear();
          load();
        },
      }, `${label} selected (${chosen.length})`);
    };
    clear(actions,
      h("span", { class: "muted" }, `${ids.length} selected`),
      h("button", { type: "button", class: "ghost", id: "compare-selected", disabled: ids.length !== 2,
        onclick: () => { location.hash = `#/compare/${encodeURIComponent(ids[0])}/${encodeURIComponent(ids[1])}`; } },
      "Compare the two"),
      can("run") ? bulk("cancel", "Cancel", (s) => ["queued", "running", "sleeping", "waiting"].includes(s)) : null,
      can("run") ? bulk("retry", "Retry", (s) => ["failed", "cancelled"].includes(s)) : null);
  }

  function row(e) {
    const took = e.ended_at && e.started_at ? e.ended_at - e.started_at : null;
    const parent = e.parent_exec_id
      ? h("div", { class: "muted child-of" }, "child of ", link(`#/execution/${encodeURIComponent(e.parent_exec_id)}`, shortId(e.parent_exec_id)))
      : null;
    const shown = link(`#/execution/${encodeURIComponent(e.exec_id)}`, shortId(e.exec_id));
    shown.title = e.exec_id;
    const pick = h("input", { type: "checkbox", "aria-label": `select ${e.exec_id}`, checked: selected.has(e.exec_id),
      onchange: (ev) => {
        if (ev.target.checked) selected.add(e.exec_id); else selected.delete(e.exec_id);
        showActions();
      } });
    return h("tr", { "data-exec": e.exec_id },
      h("td", {}, pick),
      h("td", { class: "mono" }, shown, parent),
      h("td", {}, e.flow_name),
      h("td", {}, statusBadge(e.status)),
      h("td", { class: "hide-narrow" }, ago(e.started_at || e.created_at)),
      h("td", { class: "num" }, duration(took)),
      h("td", { class: "num hide-narrow" }, e.steps),
      h("td", { class: "num hide-narrow" }, e.llm_tokens ?? 0),
      h("td", { class: "num hide-narrow" }, usd(e.cost_usd)));
  }

  const reload = debounce(() => { page = 0; cursors.length = 1; cursors[0] = null; load(); }, 250);
  for (const input of Object.values(filters)) input.addEventListener("input", reload);

  clear(root,
    h("h1", {}, "Executions"),
    h("form", { class: "panel row", role: "search", onsubmit: (ev) => { ev.preventDefault(); reload(); } },
      h("label", { for: "f-status" }, "Status", filters.status),
      h("label", { for: "f-flow" }, "Flow (contains)", filters.flow),
      h("datalist", { id: "flow-names" }, flows.map((f) => h("option", { value: f.name }))),
      h("label", { for: "f-stack" }, "Stack", filters.stack),
      h("label", { for: "f-since" }, "Created after", filters.since),
      h("label", { for: "f-until" }, "Created before", filters.until),
      h("label", { for: "f-q" }, "Search", filters.q)),
    summary,
    actions,
    h("div", { class: "scroll" }, h("table", { id: "executions" },
      h("thead", {}, h("tr", {},
        h("th", {}, h("span", { class: "visually-hidden" }, "select")), h("th", {}, "id"), h("th", {}, "flow"), h("th", {}, "status"),
        h("th", { class: "hide-narrow" }, "started"), h("th", { class: "num" }, "duration"),
        h("th", { class: "num hide-narrow" }, "steps"), h("th", { class: "num hide-narrow" }, "LLM tokens"),
        h("th", { class: "num hide-narrow" }, "cost"))),
      body)),
    pager);
  // Live: a status change of a shown execution, or a new one on the first page
  // (listening from before the first load, so nothing that lands meanwhile is missed).
  const refresh = debounce(load, 300);
  const stop = onEvent((event) => {
    if (event.kind !== "status") return;
    if (rows.some((r) => r.exec_id === event.exec_id) || page === 0) refresh();
  });
  await firstLoad(load, stop);
  return stop;
}

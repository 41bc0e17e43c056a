// Memory: scopes, their keys with current values, each key's versions (tombstones
// included) and the difference between any two of them.

import { api, can, clear, h, pretty, short, toast, when } from "../core.js";
import { valueDiff } from "../diff.js";

const path = (t, s) => `memory/${encodeURIComponent(t)}/${encodeURIComponent(s)}`;

export async function memoryPage(root, [scopeType, scope, ...keyParts]) {
  const scopes = await api("memory");
  const keysBox = h("div", { id: "memory-keys" });
  const historyBox = h("div", { id: "memory-history" });
  const writeBox = h("div");
  const chosen = scopeType && scope ? { scope_type: scopeType, scope } : scopes[0];
  const key = keyParts.length ? keyParts.join("/") : null;

  // Links in a list, the chosen one marked current (a button is not a list item).
  const scopeButtons = h("ul", { class: "list-buttons" }, scopes.map((s) => h("li", {}, h("a", {
    class: "button ghost",
    href: `#/memory/${encodeURIComponent(s.scope_type)}/${encodeURIComponent(s.scope)}`,
    "aria-current": !!chosen && s.scope_type === chosen.scope_type && s.scope === chosen.scope ? "true" : null,
  }, `${s.scope_type}: ${s.scope}`))));
  clear(root, h("h1", {}, "Memory"),
    scopes.length ? h("div", { class: "sidebar" }, h("nav", { "aria-label": "Memory scopes" }, scopeButtons), h("div", {}, keysBox, historyBox, writeBox))
      : h("p", { class: "muted" }, "No memory has been written yet."));
  if (!chosen) return null;

  const entries = await api(path(chosen.scope_type, chosen.scope));
  clear(keysBox, h("h2", {}, `${chosen.scope_type}: ${chosen.scope}`),
    h("div", { class: "scroll" }, h("table", {},
      h("thead", {}, h("tr", {}, h("th", {}, "key"), h("th", {}, "version"), h("th", {}, "value"),
        h("th", { class: "hide-narrow" }, "written"), h("th", {}, ""))),
      h("tbody", {}, entries.map((e) => h("tr", { "data-key": e.key },
        h("td", { class: "mono" }, e.key),
        h("td", { class: "num" }, e.version),
        h("td", { class: "mono" }, e.deleted ? h("em", { class: "muted" }, `deleted at version ${e.version}`) : short(e.value, 100)),
        h("td", { class: "hide-narrow" }, when(e.created_at)),
        h("td", {}, h("a", { href: `#/memory/${encodeURIComponent(chosen.scope_type)}/${encodeURIComponent(chosen.scope)}/${e.key}` }, "History"))))))));
  if (can("admin")) clear(writeBox, writeForm(chosen));
  if (key) await history(historyBox, chosen, key);
  return null;
}

async function history(box, chosen, key) {
  const versions = await api(`${path(chosen.scope_type, chosen.scope)}/${key}?history=true`);
  const pick = (id, initial) => h("select", { id }, versions.map((v, i) => h("option", { value: String(i), selected: i === initial },
    `v${v.version}${v.deleted ? " (deleted)" : ""}`)));
  const older = pick("v-from", Math.min(1, versions.length - 1));
  const newer = pick("v-to", 0);
  const shown = h("div", { id: "version-diff" });
  const show = () => {
    const a = versions[Number(older.value)];
    const b = versions[Number(newer.value)];
    clear(shown, valueDiff(a.deleted ? null : a.value, b.deleted ? null : b.value, [`v${a.version}`, `v${b.version}`]));
  };
  older.addEventListener("change", show);
  newer.addEventListener("change", show);
  clear(box, h("h2", {}, `History of ${key}`),
    h("ol", { reversed: true, class: "versions" }, versions.map((v) => h("li", {},
      h("strong", {}, `v${v.version}`), ` · ${when(v.created_at)} · `,
      v.exec_id ? h("a", { href: `#/execution/${encodeURIComponent(v.exec_id)}` }, "by an execution") : "by a client",
      v.deleted ? h("em", {}, " · deleted (tombstone)") : h("pre", {}, pretty(v.value))))),
    versions.length > 1 ? h("div", { class: "row" }, h("label", { for: "v-from" }, "From", older), h("label", { for: "v-to" }, "To", newer)) : null,
    shown);
  if (versions.length > 1) show();
}

function writeForm(chosen) {
  const key = h("input", { id: "mem-key", size: 20 });
  const value = h("textarea", { id: "mem-value", spellcheck: "false" }, "");
  const error = h("p", { class: "field-error", role: "alert" });
  const form = h("form", { class: "panel" }, h("h3", {}, "Write a new version"),
    h("label", { for: "mem-key" }, "Key", key), h("label", { for: "mem-value", style: { width: "100%" } }, "Value (JSON)", value),
    h("button", { type: "submit" }, "Write"), error);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    error.textContent = "";
    if (!key.value.trim()) {
      error.textContent = "a key is required: the name the value is kept under";
      key.focus();
      return;
    }
    let parsed;
    try {
      parsed = JSON.parse(value.value);
    } catch (e) {
      error.textContent = `not valid JSON: ${e.message}`;
      return;
    }
    try {
      const written = await api(`${path(chosen.scope_type, chosen.scope)}/${key.value.trim()}`, { method: "PUT", body: { value: parsed } });
      toast(`${written.key} version ${written.version}`);
      const target = `#/memory/${encodeURIComponent(chosen.scope_type)}/${encodeURIComponent(chosen.scope)}/${written.key}`;
      // The same page again shows the new version: a hash that did not change moves nothing.
      if (location.hash === target) window.dispatchEvent(new HashChangeEvent("hashchange"));
      else location.hash = target;
    } catch (e) {
      error.textContent = e.message;
    }
  });
  return form;
}

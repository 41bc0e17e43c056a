// Stacks and plugins: each stack's components with their flavor, the plugin that
// provides it and whether it is installed, config with secrets masked.

import { api, clear, h } from "../core.js";

export async function stacksPage(root) {
  const [stacks, plugins] = await Promise.all([api("stacks"), api("plugins")]);
  stacks.sort((a, b) => Number(b.active) - Number(a.active) || a.name.localeCompare(b.name));
  clear(root, h("h1", {}, "Stacks and plugins"),
    stacks.map((s) => h("section", { class: "panel", "data-stack": s.name },
      h("h2", {}, s.name, s.active ? h("span", { class: "badge s-completed", style: { "margin-left": "8px" } }, "active") : null),
      s.source ? h("p", { class: "muted mono" }, s.source) : null,
      h("div", { class: "scroll" }, h("table", {},
        h("thead", {}, h("tr", {}, ["component", "flavor", "plugin", "state", "config"].map((c) => h("th", {}, c)))),
        h("tbody", {}, s.components.map((c) => h("tr", {},
          h("td", {}, c.component),
          h("td", {}, c.flavor, c.default ? h("span", { class: "muted" }, " (default)") : null),
          h("td", {}, c.plugin ? `${c.plugin} ${c.plugin_version || ""}` : "-"),
          h("td", {}, c.installed ? h("span", { class: "badge s-completed" }, "installed")
            : h("span", { class: "badge s-failed" }, "flavor not installed")),
          h("td", { class: "mono" }, Object.keys(c.config || {}).length
            ? h("dl", { class: "kv" }, Object.entries(c.config).map(([k, v]) => [h("dt", {}, k), h("dd", {}, typeof v === "string" ? v : JSON.stringify(v))]))
            : "-")))))))),
    h("h2", {}, "Plugins"),
    h("div", { class: "scroll" }, h("table", { id: "plugins" },
      h("thead", {}, h("tr", {}, ["plugin", "version", "flavors", "state"].map((c) => h("th", {}, c)))),
      h("tbody", {}, plugins.map((p) => h("tr", {},
        h("td", {}, p.name, h("div", { class: "muted" }, p.distribution)),
        h("td", {}, p.version),
        h("td", {}, p.flavors.join(", ") || "-"),
        h("td", {}, p.loaded ? h("span", { class: "badge s-completed" }, "loaded")
          : [h("span", { class: "badge s-failed" }, "failed"), h("div", { class: "error" }, p.error)])))))));
  return null;
}

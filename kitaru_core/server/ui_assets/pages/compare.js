// Two executions side by side, step by step: same, changed or only in one, with the
// diff of changed outputs and the change in duration and tokens.

import { api, clear, duration, h, link } from "../core.js";
import { unifiedDiff } from "../diff.js";

const LABELS = { same: "same", changed: "changed", only_a: "only in a", only_b: "only in b" };

function change(value, unit) {
  if (value === null || value === undefined) return "-";
  if (unit === "s") return `${value >= 0 ? "+" : "−"}${duration(Math.abs(value))}`;
  return `${value >= 0 ? "+" : ""}${value}`;
}

export async function comparePage(root, [a = "", b = ""]) {
  const inputA = h("input", { id: "cmp-a", value: a, size: 34, placeholder: "execution a" });
  const inputB = h("input", { id: "cmp-b", value: b, size: 34, placeholder: "execution b" });
  const out = h("div", { id: "comparison" });
  const form = h("form", {
    class: "panel row", onsubmit: (ev) => {
      ev.preventDefault();
      location.hash = `#/compare/${encodeURIComponent(inputA.value.trim())}/${encodeURIComponent(inputB.value.trim())}`;
    },
  }, h("label", { for: "cmp-a" }, "a", inputA), h("label", { for: "cmp-b" }, "b", inputB), h("button", { type: "submit" }, "Compare"));
  clear(root, h("h1", {}, "Compare two executions"), form, out);
  if (!a || !b) return null;
  const d = await api(`diff?a=${encodeURIComponent(a)}&b=${encodeURIComponent(b)}`);
  const rows = [...d.checkpoints, ...(d.result ? [d.result] : [])];
  clear(out,
    h("p", {}, link(`#/execution/${encodeURIComponent(d.exec_a)}`, `a: ${d.exec_a}`), " → ",
      link(`#/execution/${encodeURIComponent(d.exec_b)}`, `b: ${d.exec_b}`)),
    d.code_changed ? h("p", { id: "code-changed" }, h("strong", {}, "Code changed: "),
      "a ran ", h("span", { class: "mono" }, d.code_versions[0]), ", b ran ", h("span", { class: "mono" }, d.code_versions[1])) : null,
    h("div", { class: "scroll" }, h("table", { id: "diff-table" },
      h("thead", {}, h("tr", {}, ["#", "step", "", "duration a", "duration b", "change", "tokens a", "tokens b", "change"]
        .map((c, i) => h("th", { class: i >= 3 ? "num" : "" }, c)))),
      h("tbody", {}, rows.map((c) => [
        h("tr", { "data-step": c.name, "data-status": c.status },
          h("td", { class: "num" }, c.position < 0 ? "" : c.position),
          h("td", {}, c.name),
          h("td", {}, h("span", { class: `badge d-${c.status}` }, LABELS[c.status] || c.status)),
          h("td", { class: "num" }, duration(c.duration_a)),
          h("td", { class: "num" }, duration(c.duration_b)),
          h("td", { class: "num" }, change(c.duration_change, "s")),
          h("td", { class: "num" }, c.tokens_a ?? "-"),
          h("td", { class: "num" }, c.tokens_b ?? "-"),
          h("td", { class: "num" }, change(c.token_change))),
        c.diff ? h("tr", {}, h("td", { colspan: 9 }, h("details", { open: true }, h("summary", {}, `What changed in ${c.name}`), unifiedDiff(c.diff)))) : null,
      ])))));
  return null;
}

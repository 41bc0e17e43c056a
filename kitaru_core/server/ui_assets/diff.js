// Showing differences: the server's unified diffs, and a line diff of two JSON values
// computed here (for memory versions).

import { h, pretty } from "./core.js";

export function unifiedDiff(text) {
  return h("pre", { class: "diff" }, text.split("\n").map((line) => {
    const kind = line.startsWith("@@") ? "diff-hunk"
      : line.startsWith("+") && !line.startsWith("+++") ? "diff-add"
        : line.startsWith("-") && !line.startsWith("---") ? "diff-del" : "";
    return h("span", { class: kind }, `${line}\n`);
  }));
}

// The longest common subsequence of lines, as ["=", "-", "+"] operations.
export function lineDiff(a, b) {
  const x = a.split("\n");
  const y = b.split("\n");
  const n = x.length;
  const m = y.length;
  const table = Array.from({ length: n + 1 }, () => new Uint32Array(m + 1));
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      table[i][j] = x[i] === y[j] ? table[i + 1][j + 1] + 1 : Math.max(table[i + 1][j], table[i][j + 1]);
    }
  }
  const ops = [];
  let i = 0;
  let j = 0;
  while (i < n && j < m) {
    if (x[i] === y[j]) { ops.push(["=", x[i]]); i++; j++; }
    else if (table[i + 1][j] >= table[i][j + 1]) { ops.push(["-", x[i]]); i++; }
    else { ops.push(["+", y[j]]); j++; }
  }
  while (i < n) ops.push(["-", x[i++]]);
  while (j < m) ops.push(["+", y[j++]]);
  return ops;
}

export function valueDiff(before, after, labels = ["a", "b"]) {
  const ops = lineDiff(pretty(before ?? null), pretty(after ?? null));
  return h("pre", { class: "diff", "aria-label": `differences from ${labels[0]} to ${labels[1]}` },
    h("span", { class: "diff-hunk" }, `--- ${labels[0]}\n+++ ${labels[1]}\n`),
    ops.map(([op, line]) => h("span", { class: op === "+" ? "diff-add" : op === "-" ? "diff-del" : "" },
      `${op === "=" ? " " : op} ${line}\n`)));
}

// Schedules with their next firings; pause and resume for admin tokens.

import { api, can, clear, h, toast, when } from "../core.js";

export async function schedulesPage(root) {
  const schedules = await api("schedules");
  const steer = (name, action) => async () => {
    try {
      await api(`schedules/${encodeURIComponent(name)}/${action}`, { method: "POST" });
      toast(`${name}: ${action}d`);
      schedulesPage(root);
    } catch (e) {
      toast(e.message, "error");
    }
  };
  clear(root, h("h1", {}, "Schedules"),
    schedules.length ? h("div", { class: "scroll" }, h("table", { id: "schedules" },
      h("thead", {}, h("tr", {}, ["name", "flow", "cron", "timezone", "state", "next firings", "last execution", ""].map((c) => h("th", {}, c)))),
      h("tbody", {}, schedules.map((s) => h("tr", { "data-schedule": s.name },
        h("td", {}, s.name), h("td", {}, s.flow_name), h("td", { class: "mono" }, s.cron), h("td", {}, s.timezone),
        h("td", {}, s.paused ? h("span", { class: "badge s-cancelled" }, "paused") : h("span", { class: "badge s-completed" }, "active")),
        // In the schedule's own zone: "0 9 * * 1 Europe/Berlin" fires at 09:00 there.
        h("td", {}, h("ul", {}, s.next_firings.map((t) => h("li", {}, when(t, s.timezone))))),
        h("td", { class: "mono" }, s.last_exec_id ? h("a", { href: `#/execution/${encodeURIComponent(s.last_exec_id)}` }, s.last_exec_id) : "-"),
        h("td", {}, can("admin") ? h("button", { type: "button", class: "ghost", onclick: steer(s.name, s.paused ? "resume" : "pause") },
          s.paused ? "Resume" : "Pause") : null))))))
      : h("p", { class: "muted" }, "No schedules. Create one with: kitaru schedule create NAME MODULE:FLOW --cron '0 9 * * *'"));
  return null;
}

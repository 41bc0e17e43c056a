// The page: sign-in, the theme, and a router from "#/page/args" to a page module.
// Each page renders into <main> and returns a function that stops its live updates.

import {
  api, clear, h, loadSession, onEvent, rememberWhereTo, session, setEventStart, timePreference, toast, whereTo,
} from "./core.js";
import { comparePage } from "./pages/compare.js";
import { executionPage } from "./pages/execution.js";
import { executionsPage } from "./pages/executions.js";
import { inboxPage } from "./pages/inbox.js";
import { memoryPage } from "./pages/memory.js";
import { schedulesPage } from "./pages/schedules.js";
import { stacksPage } from "./pages/stacks.js";

const view = document.getElementById("view");
let stop = () => {};

function applyTheme(theme) {
  document.documentElement.dataset.theme = theme;
  document.getElementById("theme").textContent = theme === "dark" ? "Light theme" : "Dark theme";
}

const savedTheme = localStorage.getItem("kitaru-theme");
applyTheme(savedTheme || (matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light"));
document.getElementById("theme").addEventListener("click", () => {
  const next = document.documentElement.dataset.theme === "dark" ? "light" : "dark";
  localStorage.setItem("kitaru-theme", next);
  applyTheme(next);
});

function applyTimeZone() {
  document.getElementById("time-zone").textContent = timePreference.utc ? "Times: UTC" : "Times: local";
}
applyTimeZone();
document.getElementById("time-zone").addEventListener("click", () => {
  timePreference.utc = !timePreference.utc;
  localStorage.setItem("kitaru-time", timePreference.utc ? "utc" : "local");
  applyTimeZone();
  route();
});

document.getElementById("sign-out").addEventListener("click", async () => {
  await api("/ui/session", { method: "DELETE" });
  session.scope = null;
  location.hash = "#/signin";
  location.reload();
});

function signInPage(root) {
  const input = h("input", { id: "token", type: "password", autocomplete: "off", size: 60,
    placeholder: "kitaru_…", "aria-describedby": "token-help" });
  const error = h("p", { class: "error", role: "alert" });
  const form = h("form", { class: "panel" },
    h("h1", {}, "Sign in"),
    h("label", { for: "token" }, "API token", input),
    h("p", { id: "token-help", class: "muted" },
      "Create one with: kitaru tokens create NAME --scope read|input|run|admin. ",
      "It is kept in an HttpOnly cookie of this site only."),
    h("button", { type: "submit" }, "Sign in"),
    error);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      Object.assign(session, await api("/ui/session", { method: "POST", body: { token: input.value } }));
      await start();
      const target = whereTo();
      // Signed in on the page asked for: the hash is already there and moves nothing.
      if (location.hash === target) route();
      else location.hash = target;
    } catch (e) {
      error.textContent = e.message;
    }
  });
  clear(root, form);
  input.focus();
  return () => {};
}

const pages = {
  executions: executionsPage,
  execution: executionPage,
  inbox: inboxPage,
  compare: comparePage,
  memory: memoryPage,
  stacks: stacksPage,
  schedules: schedulesPage,
};

async function route() {
  stop();
  // "#/page/arg?key=value": the query keeps a page's filters in its address.
  const [path, query = ""] = location.hash.replace(/^#\/?/, "").split("?");
  const [name, ...args] = (path || "executions").split("/");
  const page = name === "signin" || session.scope === null ? "signin" : name;
  if (page === "signin" && name !== "signin") rememberWhereTo();  // a deep link, kept
  for (const a of document.querySelectorAll("#nav a")) {
    const current = a.dataset.page === page || (page === "execution" && a.dataset.page === "executions");
    if (current) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  if (page === "signin") {
    stop = signInPage(view);
    return;
  }
  const render = pages[page] || executionsPage;
  clear(view, h("p", { class: "muted" }, "Loading…"));
  try {
    stop = (await render(view, args.map(decodeURIComponent), new URLSearchParams(query))) || (() => {});
  } catch (e) {
    clear(view, h("p", { class: "error", role: "alert" }, e.message));
    stop = () => {};
  }
  view.focus({ preventScroll: true });
}

async function refreshInboxCount() {
  try {
    // The count alone: the badge never fetches the list of waits.
    const { pending } = await api("waits/count");
    const badge = document.getElementById("inbox-count");
    badge.hidden = pending === 0;
    badge.textContent = String(pending);
  } catch (_) { /* signed out */ }
}

let started = false;
async function start() {
  document.getElementById("who").textContent = session.auth
    ? `${session.name} (${session.scope})` : "no authentication (loopback)";
  document.getElementById("sign-out").hidden = !session.auth;
  if (started) return;
  started = true;
  const { latest } = await api("events/latest").catch(() => ({ latest: 0 }));
  setEventStart(latest);
  refreshInboxCount();
  onEvent((event) => {
    if (event.kind === "wait" || event.kind === "status") refreshInboxCount();
  });
}

window.addEventListener("hashchange", route);
(async () => {
  try {
    await loadSession();
    await start();
  } catch (e) {
    if (e.status !== 401) toast(e.message);
  }
  route();
})();

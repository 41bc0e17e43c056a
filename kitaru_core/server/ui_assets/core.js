// What every page uses: building elements (text is always set as text, never parsed as
// HTML), calling the API with the session's CSRF token, the live event stream, and
// formatting.

export const API = "/api/v1";
const SCOPES = ["read", "input", "run", "admin"];

export const session = { scope: null, name: null, csrf: "", auth: true };

export function can(needed) {
  return session.scope !== null && SCOPES.indexOf(session.scope) >= SCOPES.indexOf(needed);
}

// h("a", {href: "#/x", class: "c", onclick: f}, "text", child) -> an element.
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (key === "class") {
      el.className = value;
    } else if (key === "style") {
      for (const [prop, v] of Object.entries(value)) el.style.setProperty(prop, v);
    } else if (value === true) {
      el.setAttribute(key, "");
    } else {
      el.setAttribute(key, String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else if (child instanceof Node) el.appendChild(child);
    else el.appendChild(document.createTextNode(String(child)));
  }
}

export function clear(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

export class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

export async function api(path, { method = "GET", body, raw = false } = {}) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && session.csrf) headers["X-CSRF-Token"] = session.csrf;
  const response = await fetch(path.startsWith("/") ? path : `${API}/${path}`, {
    method,
    headers,
    credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!response.ok) {
    let detail = `${response.status} ${response.statusText}`;
    try {
      detail = (await response.json()).detail || detail;
    } catch (_) { /* not JSON */ }
    if (response.status === 401 && !path.startsWith("/ui/session")) {
      rememberWhereTo();
      location.hash = "#/signin";
    }
    throw new ApiError(response.status, detail);
  }
  if (raw) return response;
  const kind = response.headers.get("content-type") || "";
  return kind.includes("json") ? response.json() : response.text();
}

// The page a signed-out visitor asked for, opened once they have signed in.
const AFTER_SIGN_IN = "kitaru-after-sign-in";

export function rememberWhereTo() {
  if (location.hash && !location.hash.startsWith("#/signin")) sessionStorage.setItem(AFTER_SIGN_IN, location.hash);
}

export function whereTo() {
  const wanted = sessionStorage.getItem(AFTER_SIGN_IN);
  sessionStorage.removeItem(AFTER_SIGN_IN);
  return wanted || "#/executions";
}

export async function loadSession() {
  const found = await api("/ui/session");
  Object.assign(session, found);
  return found;
}

// One EventSource for the whole page; pages subscribe with a filter and get events
// as they come. The browser reconnects with Last-Event-ID by itself.
const listeners = new Set();
let source = null;

export function onEvent(listener) {
  listeners.add(listener);
  if (!source) {
    source = new EventSource(`${API}/events?after=${startAfter}`);
    for (const kind of ["status", "wait", "step"]) {
      source.addEventListener(kind, (message) => {
        const event = JSON.parse(message.data);
        for (const l of [...listeners]) l(event);
      });
    }
  }
  return () => listeners.delete(listener);
}

// A page's first load, made after it subscribed to events: if the load fails, the
// page stops listening.
export async function firstLoad(load, stop) {
  try {
    await load();
  } catch (error) {
    stop();
    throw error;
  }
}

let startAfter = 0;
export function setEventStart(id) { startAfter = id; }

export function debounce(fn, ms = 250) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

export function toast(message, kind = "") {
  const box = h("div", { class: kind }, message);
  document.getElementById("toast").appendChild(box);
  setTimeout(() => box.remove(), 6000);
}

// -- formatting ----------------------------------------------------------------------

// Times are shown in this browser's zone, or in UTC (the header's switch), always
// with the zone's name; ``zone`` names another (a schedule's own).
export const timePreference = { utc: localStorage.getItem("kitaru-time") === "utc" };

export function when(seconds, zone = null) {
  if (!seconds) return "-";
  const options = {
    year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23", timeZoneName: "short",
  };
  let format;
  try {
    format = new Intl.DateTimeFormat("en-CA", { ...options, timeZone: zone || (timePreference.utc ? "UTC" : undefined) });
  } catch (_) { // a zone this browser does not know: its own, named
    format = new Intl.DateTimeFormat("en-CA", options);
  }
  const p = Object.fromEntries(format.formatToParts(new Date(seconds * 1000)).map((x) => [x.type, x.value]));
  return `${p.year}-${p.month}-${p.day} ${p.hour}:${p.minute}:${p.second} ${p.timeZoneName}`;
}

// "5 min ago", with the absolute time (and its zone) on hover.
export function ago(seconds) {
  if (!seconds) return h("span", {}, "-");
  const past = Date.now() / 1000 - seconds;
  const steps = [[60, "s", 1], [3600, "min", 60], [86400, "h", 3600], [Infinity, "d", 86400]];
  const [, unit, size] = steps.find(([limit]) => Math.abs(past) < limit);
  const n = Math.max(0, Math.round(past / size));
  return h("time", { datetime: new Date(seconds * 1000).toISOString(), title: when(seconds) },
    past < 0 ? "in the future" : `${n} ${unit} ago`);
}

// A button that copies ``text``; ``what`` names it for screen readers and on hover.
export function copyButton(text, label = "Copy", what = text) {
  return h("button", {
    type: "button", class: "ghost copy", title: `copy ${what}`, "aria-label": `${label}: ${what}`,
    onclick: async (ev) => {
      try {
        await navigator.clipboard.writeText(text);
        ev.target.textContent = "Copied";
      } catch (_) {
        ev.target.textContent = "Copy failed";
      }
    },
  }, label);
}

export function duration(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return "-";
  if (seconds < 1) return `${(seconds * 1000).toFixed(seconds < 0.01 ? 2 : 1)} ms`;
  if (seconds < 120) return `${seconds.toFixed(2)} s`;
  return `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
}

export function usd(cost) {
  return cost === null || cost === undefined ? "-" : `$${Number(cost).toFixed(6)}`;
}

export function statusBadge(status) {
  return h("span", { class: `badge s-${status}` }, status);
}

export function pretty(value) {
  return typeof value === "string" ? value : JSON.stringify(value, null, 2);
}

export function short(text, width = 80) {
  const s = typeof text === "string" ? text : JSON.stringify(text);
  return s && s.length > width ? `${s.slice(0, width - 1)}…` : s;
}

export function link(href, text) {
  return h("a", { href }, text);
}

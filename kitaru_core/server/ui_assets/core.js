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
    if (response.status === 401 && !path.startsWith("/ui/session")) location.hash = "#/signin";
    throw new ApiError(response.status, detail);
  }
  if (raw) return response;
  const kind = response.headers.get("content-type") || "";
  return kind.includes("json") ? response.json() : response.text();
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

export function when(seconds) {
  if (!seconds) return "-";
  const d = new Date(seconds * 1000);
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
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

// A form built from a wait's JSON schema (what pydantic's TypeAdapter wrote): approve
// and reject buttons for a bool, a select for enums and Literals, a field per property
// for objects and models, JSON for the rest. Values are checked here against the
// schema before they are sent; the server checks them again.

import { h } from "./core.js";

function resolve(schema, root) {
  let s = schema || {};
  while (s.$ref) {
    const name = s.$ref.split("/").pop();
    s = { ...((root.$defs || root.definitions || {})[name] || {}), ...s, $ref: undefined };
  }
  return s;
}

// Optional[X] is anyOf [X, null]: the field is X, and empty means null.
function unwrapOptional(schema, root) {
  const s = resolve(schema, root);
  const options = s.anyOf || s.oneOf;
  if (options && options.length === 2 && options.some((o) => o.type === "null")) {
    return { schema: resolve(options.find((o) => o.type !== "null"), root), nullable: true };
  }
  return { schema: s, nullable: false };
}

function choices(s, root) {
  if (Array.isArray(s.enum)) return s.enum;
  if ("const" in s) return [s.const];
  const options = s.anyOf || s.oneOf;
  if (options && options.every((o) => "const" in resolve(o, root) || Array.isArray(resolve(o, root).enum))) {
    return options.flatMap((o) => choices(resolve(o, root), root));
  }
  return null;
}

export function validate(schema, value, root = schema, where = "value") {
  const s = resolve(schema, root);
  const options = s.anyOf || s.oneOf;
  if (options && !choices(s, root)) {
    const fits = options.some((o) => validate(o, value, root, where).length === 0);
    return fits ? [] : [`${where} does not fit any of the allowed forms`];
  }
  const allowed = choices(s, root);
  if (allowed && !allowed.some((a) => JSON.stringify(a) === JSON.stringify(value))) {
    return [`${where} must be one of ${allowed.map((a) => JSON.stringify(a)).join(", ")}`];
  }
  const type = s.type;
  const kind = value === null ? "null" : Array.isArray(value) ? "array" : typeof value;
  if (type === "integer" && !(kind === "number" && Number.isInteger(value))) return [`${where} must be a whole number`];
  if (type === "number" && kind !== "number") return [`${where} must be a number`];
  if (type === "boolean" && kind !== "boolean") return [`${where} must be true or false`];
  if (type === "string" && kind !== "string") return [`${where} must be text`];
  if (type === "array" && kind !== "array") return [`${where} must be a list`];
  if (type === "object" && (kind !== "object")) return [`${where} must be an object`];
  if (type === "null" && kind !== "null") return [`${where} must be null`];
  const errors = [];
  if (kind === "number") {
    if (s.minimum !== undefined && value < s.minimum) errors.push(`${where} must be at least ${s.minimum}`);
    if (s.maximum !== undefined && value > s.maximum) errors.push(`${where} must be at most ${s.maximum}`);
    if (s.exclusiveMinimum !== undefined && value <= s.exclusiveMinimum) errors.push(`${where} must be above ${s.exclusiveMinimum}`);
    if (s.exclusiveMaximum !== undefined && value >= s.exclusiveMaximum) errors.push(`${where} must be below ${s.exclusiveMaximum}`);
  }
  if (kind === "string") {
    if (s.minLength !== undefined && value.length < s.minLength) errors.push(`${where} must have at least ${s.minLength} characters`);
    if (s.maxLength !== undefined && value.length > s.maxLength) errors.push(`${where} must have at most ${s.maxLength} characters`);
    if (s.pattern && !new RegExp(s.pattern, "u").test(value)) errors.push(`${where} must match ${s.pattern}`);
  }
  if (kind === "array" && s.items) {
    value.forEach((item, i) => errors.push(...validate(s.items, item, root, `${where}[${i}]`)));
  }
  if (kind === "object" && s.properties) {
    for (const name of s.required || []) {
      if (!(name in value)) errors.push(`${where}.${name} is required`);
    }
    for (const [name, sub] of Object.entries(s.properties)) {
      if (name in value) errors.push(...validate(sub, value[name], root, name));
    }
  }
  return errors;
}

// A field for one schema: returns {element, read()} where read() gives the value.
function field(schema, root, name, required) {
  const { schema: s, nullable } = unwrapOptional(schema, root);
  const title = s.description ? `${s.title || name} (${s.description})` : s.title || name;
  const allowed = choices(s, root);
  const id = `f-${name}-${Math.random().toString(36).slice(2, 8)}`;
  if (allowed) {
    // Nothing chosen until someone chooses: a required choice is never made for them.
    const select = h("select", { id, name, required: required && !nullable },
      h("option", { value: "" }, required && !nullable ? "— choose —" : "—"),
      allowed.map((a, i) => h("option", { value: String(i) }, typeof a === "string" ? a : JSON.stringify(a))));
    return {
      element: h("label", { for: id }, title, select),
      control: select,
      read: () => {
        if (select.value !== "") return allowed[Number(select.value)];
        if (nullable) return null;
        if (required) throw new FieldError(name, `${name} is required: choose one`);
        return undefined;
      },
    };
  }
  if (s.type === "boolean") {
    const box = h("input", { id, type: "checkbox", name });
    return { element: h("label", { class: "inline", for: id }, box, title), control: box, read: () => box.checked };
  }
  if (s.type === "integer" || s.type === "number") {
    const input = h("input", { id, name, type: "number", step: s.type === "integer" ? "1" : "any",
      min: s.minimum, max: s.maximum, inputmode: "decimal" });
    return {
      element: h("label", { for: id }, title, input),
      control: input,
      read: () => {
        // A number the browser cannot read (1e400, "12abc") leaves the value empty:
        // say what is wrong with it, not that it is missing.
        if (input.validity.badInput) {
          throw new FieldError(name, `${name} is not a number this form can send (too large, or not a number)`);
        }
        if (input.value === "") {
          if (nullable || !required) return null;
          throw new FieldError(name, `${name} is required`);
        }
        const number = Number(input.value);
        if (!Number.isFinite(number)) throw new FieldError(name, `${name} must be a finite number`);
        return number;
      },
    };
  }
  if (s.type === "string") {
    const long = (s.maxLength || 0) > 200 || /text|comment|body|feedback/i.test(name);
    const input = long ? h("textarea", { id, name }) : h("input", { id, name, type: "text" });
    return {
      element: h("label", { for: id }, title, input),
      control: input,
      read: () => (input.value === "" && nullable ? null : input.value),
    };
  }
  if (s.type === "object" && s.properties) {
    const inner = objectFields(s, root);
    return { element: h("fieldset", {}, h("legend", {}, title), inner.element), read: inner.read, controls: inner.controls };
  }
  const area = h("textarea", { id, name, placeholder: "JSON" });
  return {
    element: h("label", { for: id }, `${title} (JSON)`, area),
    control: area,
    read: () => {
      if (area.value.trim() === "") return nullable ? null : undefined;
      try {
        return JSON.parse(area.value);
      } catch (e) {
        throw new FieldError(name, `${title}: not valid JSON (${e.message})`);
      }
    },
  };
}

// An error that belongs to one field (its name): the form marks that field.
class FieldError extends Error {
  constructor(name, message) {
    super(message);
    this.field = name;
  }
}

function objectFields(s, root) {
  const required = new Set(s.required || []);
  const parts = Object.entries(s.properties).map(([name, sub]) => [name, field(sub, root, name, required.has(name))]);
  return {
    element: h("div", { class: "row" }, parts.map(([, f]) => f.element)),
    controls: parts.flatMap(([name, f]) => (f.controls || (f.control ? [[name, f.control]] : []))),
    read: () => {
      const value = {};
      for (const [name, f] of parts) {
        const v = f.read();
        if (v !== undefined) value[name] = v;
      }
      return value;
    },
  };
}

// The form for a wait. onSubmit(value) sends it and may throw (its message is shown).
export function schemaForm(schema, onSubmit, { disabled = false } = {}) {
  const errorsId = `errors-${Math.random().toString(36).slice(2, 8)}`;
  const errors = h("div", { class: "field-error", role: "alert", id: errorsId });
  const form = h("form", { class: "wait-form", novalidate: true });
  let controls = [];
  // The fields a problem names are marked invalid and described by the message, and
  // the first of them takes focus; a problem of the whole value focuses nothing.
  const mark = (problems, fields) => {
    errors.textContent = problems.join("; ");
    let first = null;
    for (const [name, control] of controls) {
      const bad = fields.includes(name) || problems.some((p) => p.startsWith(`${name} `) || p.startsWith(`value.${name} `));
      if (bad) {
        control.setAttribute("aria-invalid", "true");
        control.setAttribute("aria-describedby", errorsId);
        first = first || control;
      } else {
        control.removeAttribute("aria-invalid");
        control.removeAttribute("aria-describedby");
      }
    }
    if (first) first.focus();
  };
  const send = async (value) => {
    const problems = validate(schema, value);
    mark(problems, []);
    if (problems.length) return;
    for (const b of form.querySelectorAll("button")) b.disabled = true;
    try {
      await onSubmit(value);
    } catch (e) {
      errors.textContent = e.message;
      for (const b of form.querySelectorAll("button")) b.disabled = false;
    }
  };
  const root = resolve(schema, schema);
  if (root.type === "boolean") {
    form.append(
      h("div", { class: "row" },
        h("button", { type: "button", class: "ok", disabled, onclick: () => send(true) }, "Approve"),
        h("button", { type: "button", class: "danger", disabled, onclick: () => send(false) }, "Reject")),
      errors);
    return form;
  }
  const main = root.type === "object" && root.properties ? objectFields(root, schema) : field(schema, schema, "value", true);
  controls = main.controls || (main.control ? [["value", main.control]] : []);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    let value;
    try {
      value = main.read();
    } catch (e) {
      mark([e.message], e.field ? [e.field] : []);
      return;
    }
    if (value === undefined) {
      mark(["value is required"], ["value"]);
      return;
    }
    send(value);
  });
  form.append(main.element, h("div", { class: "row" }, h("button", { type: "submit", disabled }, "Submit")), errors);
  return form;
}

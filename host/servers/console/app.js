// orchestr8 console: executions (live list, graph, timeline, journal),
// agents and the project's workflows, over the server's REST API. Plain
// JavaScript, no dependencies: it is embedded in the binary as it is.
"use strict";

const TOKEN_KEY = "orchestr8.token";
const LIST_REFRESH_MS = 2000;
const PAGE_SIZES = ["50", "200", "1000"];
const STATUSES = ["pending", "running", "succeeded", "failed", "cancelled", "timed-out", "interrupted"];

const state = {
  token: sessionStorage.getItem(TOKEN_KEY) || "",
  // What the current page started: stopped when the page changes.
  cleanups: [],
  asking: null,
};

// ---------------------------------------------------------------- helpers

class ApiFailure extends Error {
  constructor(status, body) {
    const message = body && body.error && body.error.message ? body.error.message : `HTTP ${status}`;
    super(message);
    this.status = status;
    this.body = body;
  }
}

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (value === true) node.setAttribute(key, "");
    else node.setAttribute(key, String(value));
  }
  return append(node, ...children);
}

function append(node, ...children) {
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const SVG = "http://www.w3.org/2000/svg";
function svg(tag, attrs, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function badge(status) {
  return el("span", { class: `badge status-${status}` }, status);
}

function when(text) {
  if (!text) return "";
  const d = new Date(text);
  if (Number.isNaN(d.getTime())) return text;
  const pad = (n, w = 2) => String(n).padStart(w, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

function duration(ms) {
  if (ms === undefined || ms === null) return "";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(ms < 10000 ? 2 : 1)} s`;
  const minutes = Math.floor(ms / 60000);
  return `${minutes} min ${Math.round((ms % 60000) / 1000)} s`;
}

function pretty(value) {
  return el("pre", {}, value === undefined ? "—" : JSON.stringify(value, null, 2));
}

function onCleanup(fn) {
  state.cleanups.push(fn);
}

function every(ms, fn) {
  const timer = setInterval(fn, ms);
  onCleanup(() => clearInterval(timer));
}

// ------------------------------------------------------------------- API

async function api(path, options = {}) {
  const headers = { Accept: "application/json" };
  if (state.token) headers.Authorization = `Bearer ${state.token}`;
  let body;
  if (options.body !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(options.body);
  }
  const response = await fetch(path, { method: options.method || "GET", headers, body, signal: options.signal });
  if (response.status === 401) {
    await askForToken(state.token ? "That token was not accepted." : "");
    return api(path, options);
  }
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch (_) {
    data = text;
  }
  if (!response.ok) throw new ApiFailure(response.status, data);
  return data;
}

// Asks for the token once, however many requests were refused meanwhile.
function askForToken(problem) {
  if (state.asking) return state.asking;
  const dialog = document.getElementById("token-dialog");
  const form = document.getElementById("token-form");
  const input = document.getElementById("token-input");
  document.getElementById("token-error").textContent = problem;
  state.asking = new Promise((resolve) => {
    form.onsubmit = (event) => {
      event.preventDefault();
      state.token = input.value.trim();
      sessionStorage.setItem(TOKEN_KEY, state.token);
      dialog.close();
      state.asking = null;
      resolve();
    };
  });
  if (!dialog.open) dialog.showModal();
  input.focus();
  return state.asking;
}

// Follows an execution's Server-Sent Events (fetch, not EventSource, so
// the token goes as a header), from the entry after `after`; reconnects
// with Last-Event-ID when the connection drops, until the stream ends.
function follow(id, after, onEntry, onEnd) {
  const controller = new AbortController();
  let last = after;
  let stopped = false;
  onCleanup(() => {
    stopped = true;
    controller.abort();
  });
  const connect = async () => {
    while (!stopped) {
      try {
        const headers = { Accept: "text/event-stream" };
        if (state.token) headers.Authorization = `Bearer ${state.token}`;
        if (last > 0) headers["Last-Event-ID"] = String(last);
        const response = await fetch(`/executions/${encodeURIComponent(id)}/events`, { headers, signal: controller.signal });
        if (response.status === 401) {
          await askForToken("That token was not accepted.");
          continue;
        }
        if (!response.ok) throw new Error(`HTTP ${response.status}`);
        const reader = response.body.getReader();
        const decoder = new TextDecoder();
        let buffer = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += decoder.decode(value, { stream: true });
          let cut;
          while ((cut = buffer.indexOf("\n\n")) >= 0) {
            const block = buffer.slice(0, cut);
            buffer = buffer.slice(cut + 2);
            const event = { id: null, event: "message", data: [] };
            for (const line of block.split("\n")) {
              if (line.startsWith(":")) continue;
              const colon = line.indexOf(":");
              const field = colon < 0 ? line : line.slice(0, colon);
              const text = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
              if (field === "id") event.id = text;
              else if (field === "event") event.event = text;
              else if (field === "data") event.data.push(text);
            }
            if (event.data.length === 0) continue;
            if (event.event === "error") throw new Error(event.data.join("\n"));
            const entry = JSON.parse(event.data.join("\n"));
            last = entry.seq;
            onEntry(entry, Date.now());
          }
        }
        // The server ends the stream when the execution ends.
        stopped = true;
        onEnd();
      } catch (error) {
        if (stopped || controller.signal.aborted) return;
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
  };
  connect();
}

// ---------------------------------------------------------------- router

function route() {
  for (const cleanup of state.cleanups.splice(0)) cleanup();
  const hash = location.hash.replace(/^#/, "") || "/executions";
  const [path, query] = hash.split("?");
  const params = new URLSearchParams(query || "");
  const parts = path.split("/").filter(Boolean);
  const section = parts[0] || "executions";
  for (const link of document.querySelectorAll("nav a")) {
    if (link.dataset.section === section) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  const main = document.getElementById("main");
  main.replaceChildren();
  const page = section === "executions" && parts[1]
    ? executionPage(main, decodeURIComponent(parts[1]))
    : section === "agents"
      ? agentsPage(main)
      : section === "workflows"
        ? workflowsPage(main)
        : executionsPage(main, params);
  page.catch((error) => {
    main.append(el("p", { class: "error", role: "alert" }, `Could not load this page: ${error.message}`));
  });
}

async function showServer() {
  try {
    const health = await api("/health");
    document.getElementById("server").textContent =
      `orchestr8 ${health.version} · ${health.running} running · ${health.queued} queued · ${health.agents} agents`;
  } catch (_) {
    document.getElementById("server").textContent = "server unreachable";
  }
}

// ------------------------------------------------------------ executions

async function executionsPage(main, params) {
  const status = params.get("status") || "";
  const workflow = params.get("workflow") || "";
  const limit = PAGE_SIZES.includes(params.get("limit")) ? params.get("limit") : PAGE_SIZES[0];
  // Cursors of the pages before this one, for "Newer".
  const trail = (params.get("trail") || "").split(",").filter(Boolean);
  const cursor = params.get("cursor") || "";
  const go = (changes) => {
    const next = new URLSearchParams({ status, workflow, limit, cursor, trail: trail.join(",") });
    for (const [k, v] of Object.entries(changes)) next.set(k, v);
    for (const [k, v] of [...next.entries()]) if (!v) next.delete(k);
    location.hash = `#/executions?${next}`;
  };
  const statusSelect = el("select", { id: "filter-status", name: "status" },
    el("option", { value: "" }, "any"),
    STATUSES.map((s) => el("option", { value: s, selected: s === status }, s)));
  const workflowInput = el("input", { id: "filter-workflow", name: "workflow", value: workflow, placeholder: "id or name" });
  const limitSelect = el("select", { id: "filter-limit", name: "limit" },
    PAGE_SIZES.map((n) => el("option", { value: n, selected: n === limit }, n)));
  const filters = el("form", {
    class: "filters",
    onsubmit: (e) => {
      e.preventDefault();
      go({ status: statusSelect.value, workflow: workflowInput.value.trim(), limit: limitSelect.value, cursor: "", trail: "" });
    },
  },
  el("div", {}, el("label", { for: "filter-status" }, "Status"), statusSelect),
  el("div", {}, el("label", { for: "filter-workflow" }, "Workflow"), workflowInput),
  el("div", {}, el("label", { for: "filter-limit" }, "Per page"), limitSelect),
  el("button", { type: "submit" }, "Apply"));
  const body = el("tbody", { id: "executions-body" });
  const table = el("table", { id: "executions" },
    el("caption", { class: "muted caption" }, "Newest first; the list refreshes every 2 seconds."),
    el("thead", {}, el("tr", {},
      el("th", { scope: "col" }, "Execution"), el("th", { scope: "col" }, "Workflow"),
      el("th", { scope: "col" }, "Status"), el("th", { scope: "col" }, "Started"),
      el("th", { scope: "col", class: "num" }, "Duration"))),
    body);
  const newer = el("button", { class: "secondary", id: "page-newer", disabled: trail.length === 0 }, "← Newer");
  const older = el("button", { class: "secondary", id: "page-older", disabled: true }, "Older →");
  const where = el("span", { class: "muted", id: "page-number" }, `page ${trail.length + 1}`);
  newer.addEventListener("click", () => {
    const previous = trail.slice();
    const back = previous.pop() || "";
    go({ cursor: back === "-" ? "" : back, trail: previous.join(",") });
  });
  append(main, el("h1", {}, "Executions"), filters, table, el("div", { class: "pager" }, newer, older, where));
  let nextCursor = null;
  older.addEventListener("click", () => {
    if (nextCursor) go({ cursor: nextCursor, trail: [...trail, cursor || "-"].join(",") });
  });
  const load = async () => {
    const query = new URLSearchParams({ limit });
    if (status) query.set("status", status);
    if (workflow) query.set("workflow", workflow);
    if (cursor) query.set("cursor", cursor);
    const page = await api(`/executions?${query}`);
    nextCursor = page.nextCursor || null;
    older.disabled = !nextCursor;
    body.replaceChildren(...page.executions.map((e) => el("tr", { "data-id": e.executionId },
      el("td", { class: "mono" }, el("a", { href: `#/executions/${encodeURIComponent(e.executionId)}` }, e.executionId)),
      el("td", {}, e.workflowName),
      el("td", {}, badge(e.status)),
      el("td", {}, when(e.startedAt)),
      el("td", { class: "num" }, duration(e.durationMs)))));
    if (page.executions.length === 0) {
      body.append(el("tr", {}, el("td", { colspan: 5, class: "muted" }, "No executions here yet.")));
    }
  };
  await load();
  every(LIST_REFRESH_MS, () => load().catch(() => {}));
}

// One execution: facts, graph, timeline, journal, steps; live.
async function executionPage(main, id) {
  const view = await api(`/executions/${encodeURIComponent(id)}`);
  const steps = (view.workflow && Array.isArray(view.workflow.steps)) ? view.workflow.steps : [];
  const model = {
    status: view.status,
    started: Date.parse(view.startedAt),
    finished: view.finishedAt ? Date.parse(view.finishedAt) : null,
    steps: new Map(steps.map((s) => [s.id, { spec: s, status: "pending", attempts: [], backoffs: [], input: undefined, output: undefined, error: undefined }])),
    entries: [],
    selected: null,
  };
  for (const [stepId, s] of Object.entries(view.steps || {})) {
    const step = stepOf(model, stepId);
    if (s && s.status) step.status = s.status;
  }

  const statusBadge = el("span", { id: "execution-status", "aria-live": "polite" }, badge(model.status));
  const cancel = el("button", { class: "danger", id: "cancel", hidden: !["pending", "running"].includes(model.status) }, "Cancel execution");
  const cancelNote = el("span", { class: "muted", role: "status" });
  cancel.addEventListener("click", async () => {
    cancel.disabled = true;
    try {
      await api(`/executions/${encodeURIComponent(id)}/cancel`, { method: "POST" });
      cancelNote.textContent = "Cancelling…";
    } catch (error) {
      cancelNote.textContent = `Could not cancel: ${error.message}`;
      cancel.disabled = false;
    }
  });
  const durationCell = el("dd", { id: "execution-duration" }, duration(view.durationMs));
  append(main,
    el("p", {}, el("a", { href: "#/executions" }, "← Executions")),
    el("h1", {}, view.workflowName, " ", statusBadge),
    el("dl", { class: "facts" },
      el("div", {}, el("dt", {}, "Execution"), el("dd", { class: "mono" }, view.executionId)),
      el("div", {}, el("dt", {}, "Workflow id"), el("dd", { class: "mono" }, view.workflowId)),
      el("div", {}, el("dt", {}, "Started"), el("dd", {}, when(view.startedAt))),
      el("div", {}, el("dt", {}, "Duration"), durationCell)),
    el("div", { class: "toolbar" }, cancel, cancelNote));
  if (view.error) main.append(el("div", { class: "notice", role: "note" }, `Failed: ${view.error.message || JSON.stringify(view.error)}`));

  const graph = el("div", { class: "graph panel", id: "graph", role: "group", "aria-label": "Steps and their dependencies" });
  const details = el("div", { class: "panel", id: "step-details" }, el("p", { class: "muted" }, "Select a step in the graph to see its input and output."));
  const timeline = el("div", { class: "timeline panel", id: "timeline" });
  const journal = journalPanel();
  append(main,
    el("div", { class: "grid" },
      el("section", { "aria-labelledby": "graph-title" }, el("h2", { id: "graph-title" }, "Graph"), graph),
      el("section", { "aria-labelledby": "details-title" }, el("h2", { id: "details-title" }, "Step"), details)),
    el("section", { "aria-labelledby": "timeline-title" }, el("h2", { id: "timeline-title" }, "Timeline of attempts"), timeline),
    el("section", { "aria-labelledby": "journal-title" }, el("h2", { id: "journal-title" }, "Journal"), journal.node),
    el("section", { "aria-labelledby": "input-title" }, el("h2", { id: "input-title" }, "Input"), pretty(view.input)));

  const select = (stepId) => {
    model.selected = stepId;
    drawGraph(graph, model, select);
    drawDetails(details, model);
  };
  const redraw = () => {
    drawGraph(graph, model, select);
    drawTimeline(timeline, model);
    if (model.selected) drawDetails(details, model);
  };
  redraw();
  // Bars of running attempts grow with the clock.
  every(500, () => {
    if (!model.finished) drawTimeline(timeline, model);
  });

  let pending = false;
  const schedule = () => {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => {
      pending = false;
      redraw();
    });
  };
  follow(id, 0, (entry, receivedAt) => {
    model.entries.push(entry);
    apply(model, entry);
    journal.add(entry, receivedAt);
    if (model.status !== view.status) {
      statusBadge.replaceChildren(badge(model.status));
    }
    cancel.hidden = !["pending", "running"].includes(model.status);
    schedule();
  }, async () => {
    // The stream ended with the execution: its final record.
    try {
      const done = await api(`/executions/${encodeURIComponent(id)}`);
      model.status = done.status;
      model.finished = done.finishedAt ? Date.parse(done.finishedAt) : Date.now();
      statusBadge.replaceChildren(badge(done.status));
      durationCell.textContent = duration(done.durationMs);
      cancel.hidden = true;
      cancelNote.textContent = "";
      schedule();
    } catch (_) { /* the page shows what it has */ }
  });
}

function stepOf(model, stepId) {
  if (!model.steps.has(stepId)) {
    model.steps.set(stepId, { spec: { id: stepId }, status: "pending", attempts: [], backoffs: [], input: undefined, output: undefined, error: undefined });
  }
  return model.steps.get(stepId);
}

// Folds one journal entry into the model.
function apply(model, entry) {
  const data = entry.data || {};
  const at = Date.parse(entry.at);
  const step = entry.stepId ? stepOf(model, entry.stepId) : null;
  switch (entry.kind) {
    case "execution-started":
      model.status = "running";
      break;
    case "execution-resumed":
      model.status = "running";
      break;
    case "execution-finished":
      model.status = data.status || model.status;
      model.finished = at;
      break;
    case "step-started":
      step.status = "running";
      step.input = data.input;
      break;
    case "step-succeeded":
      step.status = "succeeded";
      step.output = data.output;
      step.viaFallback = data.viaFallback;
      if (data.viaFallback) stepOf(model, data.viaFallback).servedFor = entry.stepId;
      break;
    case "step-failed":
      step.status = "failed";
      step.error = data.error;
      break;
    case "step-skipped":
      step.status = "skipped";
      step.reason = data.reason;
      break;
    case "step-cancelled":
      step.status = "cancelled";
      step.reason = data.reason;
      break;
    case "attempt-started":
      step.attempts.push({ attempt: entry.attempt, start: at, end: null, outcome: "running", code: null, probe: (data.event || {}).probe });
      break;
    case "attempt-succeeded":
    case "attempt-failed": {
      const attempt = [...step.attempts].reverse().find((a) => a.attempt === entry.attempt && a.end === null);
      const event = data.event || {};
      if (attempt) {
        attempt.end = attempt.start + (entry.durationMs != null ? entry.durationMs : (at - attempt.start));
        attempt.outcome = entry.kind === "attempt-succeeded" ? "succeeded" : "failed";
        attempt.code = entry.code || event.code || null;
        attempt.message = event.message;
      }
      break;
    }
    case "retry-scheduled": {
      const event = data.event || {};
      step.backoffs.push({ start: at, end: at + (event.delayMs || 0), attempt: event.attempt });
      break;
    }
    case "call-rejected":
      step.attempts.push({ attempt: entry.attempt, start: at, end: at, outcome: "rejected", code: "CIRCUIT_OPEN" });
      break;
    default:
      break;
  }
}

// Layers: each step one column right of its deepest dependency (a
// fallback one right of the step it stands in for).
function layout(model) {
  const specs = [...model.steps.values()].map((s) => s.spec);
  const byId = new Map(specs.map((s) => [s.id, s]));
  const parents = new Map(specs.map((s) => [s.id, [...(s.dependencies || [])]]));
  for (const s of specs) {
    if (s.fallbackStepId && parents.has(s.fallbackStepId)) parents.get(s.fallbackStepId).push(s.id);
  }
  const depth = new Map();
  const visiting = new Set();
  const depthOf = (id) => {
    if (depth.has(id)) return depth.get(id);
    if (visiting.has(id) || !byId.has(id)) return 0;
    visiting.add(id);
    const d = Math.max(-1, ...(parents.get(id) || []).filter((p) => byId.has(p)).map(depthOf)) + 1;
    visiting.delete(id);
    depth.set(id, d);
    return d;
  };
  const columns = [];
  for (const s of specs) {
    const d = depthOf(s.id);
    (columns[d] = columns[d] || []).push(s.id);
  }
  return { columns: columns.map((c) => c || []), byId };
}

function drawGraph(container, model, select) {
  const W = 170, H = 54, GX = 60, GY = 22, PAD = 12;
  const { columns, byId } = layout(model);
  const at = new Map();
  columns.forEach((column, x) => column.forEach((id, y) => at.set(id, { x: PAD + x * (W + GX), y: PAD + y * (H + GY) })));
  const width = PAD * 2 + Math.max(1, columns.length) * (W + GX) - GX;
  const height = PAD * 2 + Math.max(1, ...columns.map((c) => c.length)) * (H + GY) - GY;
  const root = svg("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": `Workflow graph of ${model.steps.size} steps` },
    svg("defs", {}, svg("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" },
      svg("path", { d: "M 0 0 L 10 5 L 0 10 z", fill: "#8e9196" }))));
  const edge = (from, to, cls) => {
    const a = at.get(from), b = at.get(to);
    if (!a || !b) return;
    const x1 = a.x + W, y1 = a.y + H / 2, x2 = b.x, y2 = b.y + H / 2;
    const mid = (x1 + x2) / 2;
    root.append(svg("path", { class: `edge ${cls}`, d: `M ${x1} ${y1} C ${mid} ${y1}, ${mid} ${y2}, ${x2} ${y2}`, "marker-end": "url(#arrow)" }));
  };
  for (const [id, spec] of byId) {
    for (const dep of spec.dependencies || []) edge(dep, id, "");
    if (spec.fallbackStepId) edge(id, spec.fallbackStepId, "fallback");
  }
  for (const [id, spec] of byId) {
    const p = at.get(id);
    const step = model.steps.get(id);
    const agent = spec.agent && spec.agent.id ? spec.agent.id : "";
    const label = `Step ${id}: ${step.status}${agent ? `, agent ${agent}` : ""}`;
    const node = svg("g", {
      class: `node status-${step.status}${model.selected === id ? " selected" : ""}`,
      "data-step": id, "data-status": step.status,
      transform: `translate(${p.x} ${p.y})`, tabindex: 0, role: "button", "aria-label": label,
      onclick: () => select(id),
      onkeydown: (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); select(id); } },
    },
    svg("title", {}, label),
    svg("rect", { width: W, height: H, rx: 8 }),
    svg("text", { x: 10, y: 19 }, clip(id, 20)),
    svg("text", { x: 10, y: 34, class: "sub" }, clip(agent, 26)),
    svg("text", { x: 10, y: 48, class: `state status-${step.status}` },
      step.viaFallback ? `${step.status} via ${clip(step.viaFallback, 14)}` : step.status));
    root.append(node);
  }
  const focused = document.activeElement && document.activeElement.dataset ? document.activeElement.dataset.step : null;
  container.replaceChildren(root);
  if (focused) {
    const again = container.querySelector(`[data-step="${CSS.escape(focused)}"]`);
    if (again) again.focus();
  }
}

function clip(text, n) {
  return text.length > n ? `${text.slice(0, n - 1)}…` : text;
}

function drawDetails(container, model) {
  const step = model.steps.get(model.selected);
  if (!step) return;
  const spec = step.spec;
  const facts = el("dl", { class: "facts" },
    el("div", {}, el("dt", {}, "Status"), el("dd", {}, badge(step.status))),
    el("div", {}, el("dt", {}, "Agent"), el("dd", { class: "mono" }, spec.agent ? spec.agent.id : "")),
    el("div", {}, el("dt", {}, "Attempts"), el("dd", {}, String(step.attempts.filter((a) => a.outcome !== "rejected").length))),
    step.reason ? el("div", {}, el("dt", {}, "Why"), el("dd", {}, step.reason)) : null,
    step.viaFallback ? el("div", {}, el("dt", {}, "Output from"), el("dd", {}, step.viaFallback)) : null);
  container.replaceChildren(
    el("h3", { id: "step-title" }, spec.name ? `${spec.name} (${spec.id})` : spec.id),
    facts,
    el("h4", {}, "Input"), pretty(step.input),
    el("h4", {}, step.error ? "Error" : "Output"), pretty(step.error || step.output));
}

function drawTimeline(container, model) {
  const rows = [...model.steps.values()].filter((s) => s.attempts.length || s.backoffs.length);
  if (rows.length === 0) {
    container.replaceChildren(el("p", { class: "muted" }, "No attempt has started yet."));
    return;
  }
  const start = Math.min(model.started || Infinity, ...rows.flatMap((r) => r.attempts.map((a) => a.start)));
  const end = Math.max(model.finished || Date.now(), ...rows.flatMap((r) => r.backoffs.map((b) => b.end)));
  const span = Math.max(1, end - start);
  const LEFT = 150, RIGHT = 20, ROW = 26, TOP = 22;
  const width = Math.max(600, container.clientWidth - 30 || 900);
  const plot = width - LEFT - RIGHT;
  const x = (t) => LEFT + ((t - start) / span) * plot;
  const height = TOP + rows.length * ROW + 8;
  const root = svg("svg", { width, height, role: "img", "aria-label": `Timeline of ${rows.length} steps over ${duration(span)}` });
  for (let i = 0; i <= 4; i++) {
    const t = start + (span * i) / 4;
    root.append(svg("line", { class: "axis", x1: x(t), x2: x(t), y1: TOP - 6, y2: height }),
      svg("text", { x: x(t), y: 12, "text-anchor": i === 0 ? "start" : i === 4 ? "end" : "middle" }, `+${duration(t - start)}`));
  }
  rows.forEach((row, i) => {
    const y = TOP + i * ROW;
    root.append(svg("text", { class: "row", x: 4, y: y + 16 }, clip(row.spec.id, 20)));
    for (const b of row.backoffs) {
      root.append(svg("rect", { class: "bar backoff", x: x(b.start), y: y + 7, width: Math.max(2, x(b.end) - x(b.start)), height: 8 },
        svg("title", {}, `${row.spec.id}: waiting ${duration(b.end - b.start)} before attempt ${b.attempt}`)));
    }
    for (const a of row.attempts) {
      if (a.outcome === "rejected") {
        root.append(svg("circle", { class: "marker", cx: x(a.start), cy: y + 11, r: 5 },
          svg("title", {}, `${row.spec.id}: refused by the open circuit`)));
        continue;
      }
      const stop = a.end === null ? (model.finished || Date.now()) : a.end;
      const what = a.outcome === "running" ? "running" : a.outcome === "succeeded" ? "succeeded" : `failed${a.code ? ` (${a.code})` : ""}`;
      root.append(svg("rect", { class: `bar ${a.outcome}`, x: x(a.start), y: y + 3, width: Math.max(3, x(stop) - x(a.start)), height: 16, rx: 3, "data-step": row.spec.id, "data-attempt": a.attempt },
        svg("title", {}, `${row.spec.id} attempt ${a.attempt}: ${what}, ${duration(stop - a.start)}${a.message ? ` — ${a.message}` : ""}`)));
    }
  });
  container.replaceChildren(root,
    el("div", { class: "legend" },
      el("span", { class: "key-succeeded" }, "attempt succeeded"),
      el("span", { class: "key-failed" }, "attempt failed"),
      el("span", { class: "key-running" }, "running"),
      el("span", { class: "key-backoff" }, "backoff wait"),
      el("span", { class: "key-rejected" }, "refused (circuit open)")));
}

function summary(entry) {
  const d = entry.data || {};
  switch (entry.kind) {
    case "agent-log": return d.line ? `${d.line.level || ""} ${d.line.message || ""}` : "";
    case "agent-event": return d.event ? JSON.stringify(d.event) : "";
    case "step-failed": return d.error ? `${d.error.code}: ${d.error.message}` : "";
    case "attempt-failed": return d.event ? `${d.event.code}: ${d.event.message}` : "";
    case "retry-scheduled": return d.event ? `attempt ${d.event.attempt} in ${duration(d.event.delayMs)}` : "";
    case "step-skipped":
    case "step-cancelled": return d.reason || "";
    case "execution-finished": return d.status || "";
    case "breaker-state-changed": return d.event ? `${d.event.key}: ${d.event.from} → ${d.event.to}` : "";
    default: return "";
  }
}

function journalPanel() {
  const kinds = new Set();
  const kindSelect = el("select", { id: "journal-kind" }, el("option", { value: "" }, "all kinds"));
  const stepSelect = el("select", { id: "journal-step" }, el("option", { value: "" }, "all steps"));
  const search = el("input", { id: "journal-search", type: "search", placeholder: "text" });
  const steps = new Set();
  const body = el("tbody", { id: "journal-body" });
  const count = el("span", { class: "muted", id: "journal-count" });
  const filter = () => {
    const kind = kindSelect.value, step = stepSelect.value, text = search.value.toLowerCase();
    let shown = 0;
    for (const row of body.rows) {
      const hide = (kind && row.dataset.kind !== kind) || (step && row.dataset.step !== step) ||
        (text && !row.textContent.toLowerCase().includes(text));
      row.hidden = hide;
      if (!hide) shown++;
    }
    count.textContent = `${shown} of ${body.rows.length} entries`;
  };
  kindSelect.addEventListener("change", filter);
  stepSelect.addEventListener("change", filter);
  search.addEventListener("input", filter);
  const node = el("div", {},
    el("div", { class: "toolbar" },
      el("div", {}, el("label", { for: "journal-kind" }, "Kind"), kindSelect),
      el("div", {}, el("label", { for: "journal-step" }, "Step"), stepSelect),
      el("div", {}, el("label", { for: "journal-search" }, "Contains"), search),
      count),
    el("div", { class: "journal panel" },
      el("table", {}, el("thead", {}, el("tr", {},
        el("th", { scope: "col", class: "num" }, "#"), el("th", { scope: "col" }, "At"), el("th", { scope: "col" }, "Kind"),
        el("th", { scope: "col" }, "Step"), el("th", { scope: "col", class: "num" }, "Attempt"), el("th", { scope: "col" }, "What"))),
      body)));
  const add = (entry, receivedAt) => {
    if (!kinds.has(entry.kind)) {
      kinds.add(entry.kind);
      kindSelect.append(el("option", { value: entry.kind }, entry.kind));
    }
    if (entry.stepId && !steps.has(entry.stepId)) {
      steps.add(entry.stepId);
      stepSelect.append(el("option", { value: entry.stepId }, entry.stepId));
    }
    const row = el("tr", { "data-seq": entry.seq, "data-kind": entry.kind, "data-step": entry.stepId || "", "data-at": entry.at, "data-received": receivedAt },
      el("td", { class: "num" }, entry.seq),
      el("td", { class: "mono" }, (entry.at || "").replace("T", " ").replace("Z", "")),
      el("td", { class: "kind" }, entry.kind),
      el("td", {}, entry.stepId || ""),
      el("td", { class: "num" }, entry.attempt || ""),
      el("td", {}, summary(entry)));
    body.append(row);
    filter();
  };
  return { node, add };
}

// ---------------------------------------------------------------- agents

async function agentsPage(main) {
  const list = await api("/agents");
  main.append(el("h1", {}, "Agents"));
  const rows = list.agents.map((a) => el("tr", { "data-agent": a.id },
    el("td", {}, el("strong", { class: "mono" }, a.id), el("div", { class: "muted" }, a.description)),
    el("td", {}, a.version),
    el("td", { class: "mono", title: a.digest }, a.digest.replace(/^sha256:/, "").slice(0, 12)),
    el("td", {}, el("div", {}, `timeout ${duration(a.limits.timeoutMs)}`),
      el("div", {}, `memory ${(a.limits.memoryBytes / 1048576).toFixed(0)} MiB`),
      el("div", {}, `fuel ${a.limits.fuel.toLocaleString("en")}`),
      a.limits.maxConcurrency ? el("div", {}, `at most ${a.limits.maxConcurrency} at once`) : null),
    el("td", {}, grants(a.grants)),
    el("td", {}, badge(a.breaker), a.circuits.length > 1 ? el("div", { class: "muted" }, `${a.circuits.length} circuits`) : null)));
  main.append(el("table", { id: "agents" },
    el("thead", {}, el("tr", {},
      el("th", { scope: "col" }, "Agent"), el("th", { scope: "col" }, "Version"), el("th", { scope: "col" }, "Digest"),
      el("th", { scope: "col" }, "Limits"), el("th", { scope: "col" }, "Grants"), el("th", { scope: "col" }, "Circuit"))),
    el("tbody", {}, rows.length ? rows : el("tr", {}, el("td", { colspan: 6, class: "muted" }, "No agents are loaded.")))));
  if (list.unavailable.length) {
    main.append(el("h2", {}, "Could not load"),
      el("ul", { class: "issues" }, list.unavailable.map((u) => el("li", {}, el("strong", {}, u.id), `: ${u.error}`))));
  }
}

function grants(g) {
  const parts = [];
  if (g.allowedHosts.length) parts.push(el("div", {}, `HTTP: ${g.allowedHosts.join(", ")}`));
  for (const d of g.dirs) parts.push(el("div", {}, `dir ${d.guestPath}${d.writable ? " (writable)" : " (read-only)"}`));
  if (g.env.length) parts.push(el("div", {}, `env: ${g.env.join(", ")}`));
  if (g.secrets.length) parts.push(el("div", {}, `secrets: ${g.secrets.join(", ")}`));
  return parts.length ? parts : el("span", { class: "muted" }, "none");
}

// ------------------------------------------------------------- workflows

async function workflowsPage(main) {
  const list = await api("/workflows");
  main.append(el("h1", {}, "Workflows"));
  if (list.workflows.length === 0) {
    main.append(el("p", { class: "muted" }, "This server has no project workflows (start it in a project, or send workflows over the REST API)."));
    return;
  }
  const cards = el("div", { class: "cards" });
  list.workflows.forEach((w, index) => cards.append(workflowCard(w, index)));
  main.append(cards);
}

function workflowCard(w, index) {
  const result = el("div", { role: "status" });
  const show = (valid, issues) => result.replaceChildren(valid
    ? el("p", { class: "validity" }, el("span", { class: "badge status-succeeded" }, "valid"), " it can run here")
    : el("div", { class: "validity" }, el("p", {}, el("span", { class: "badge status-failed" }, "invalid"), " it cannot run here:"),
      el("ul", { class: "issues" }, issues.map((i) => el("li", {}, el("code", {}, i.path), ` ${i.message}`)))));
  show(w.valid, w.issues);
  const validate = el("button", { class: "secondary", type: "button" }, "Validate");
  validate.addEventListener("click", async () => {
    validate.disabled = true;
    try {
      const v = await api("/workflows/validate", { method: "POST", body: { workflowFile: w.file } });
      show(v.valid, v.issues);
    } catch (error) {
      result.replaceChildren(el("p", { class: "error" }, error.message));
    } finally {
      validate.disabled = false;
    }
  });
  const form = inputForm(w, index);
  return el("article", { class: "panel", "data-file": w.file },
    el("h2", {}, w.name || w.file),
    el("p", { class: "mono muted" }, w.file),
    w.description ? el("p", {}, w.description) : null,
    result,
    el("div", { class: "toolbar" }, validate),
    form);
}

// A form from the workflow's input schema: one field per variable.
function inputForm(w, index) {
  const properties = (w.inputSchema && w.inputSchema.properties) || {};
  const fields = [];
  const read = [];
  Object.entries(properties).forEach(([name, schema], n) => {
    const id = `wf${index}-var${n}`;
    const type = schema.type;
    let input;
    if (type === "boolean") {
      input = el("input", { id, type: "checkbox", name, checked: schema.default === true });
      read.push([name, () => input.checked]);
    } else if (type === "integer" || type === "number") {
      input = el("input", { id, type: "number", name, step: type === "integer" ? "1" : "any", value: schema.default });
      read.push([name, () => (input.value === "" ? undefined : Number(input.value))]);
    } else if (type === "string") {
      input = el("input", { id, type: "text", name, value: schema.default });
      read.push([name, () => input.value]);
    } else {
      input = el("textarea", { id, name, "aria-describedby": `${id}-hint` });
      input.value = JSON.stringify(schema.default === undefined ? null : schema.default, null, 2);
      read.push([name, () => JSON.parse(input.value)]);
    }
    fields.push(el("div", { class: "form-field" },
      el("label", { for: id }, name, type ? el("span", { class: "muted" }, ` (${type})`) : null),
      input,
      type === "array" || type === "object" || !type ? el("div", { class: "muted", id: `${id}-hint` }, "JSON") : null));
  });
  const note = el("p", { role: "status" });
  const start = el("button", { type: "submit" }, "Start");
  const form = el("form", {
    class: "start-form",
    "aria-label": `Start ${w.name || w.file}`,
    onsubmit: async (e) => {
      e.preventDefault();
      const input = {};
      try {
        for (const [name, value] of read) {
          const v = value();
          if (v !== undefined) input[name] = v;
        }
      } catch (error) {
        note.textContent = `Not valid JSON: ${error.message}`;
        note.className = "error";
        return;
      }
      start.disabled = true;
      try {
        const accepted = await api("/workflows/execute", { method: "POST", body: { workflowFile: w.file, input } });
        location.hash = `#/executions/${encodeURIComponent(accepted.executionId)}`;
      } catch (error) {
        const issues = error.body && error.body.error && error.body.error.details && error.body.error.details.issues;
        note.className = "error";
        note.textContent = issues ? issues.map((i) => `${i.path}: ${i.message}`).join("; ") : error.message;
        start.disabled = false;
      }
    },
  }, el("h3", {}, "Input"), fields.length ? fields : el("p", { class: "muted" }, "This workflow declares no variables."), start, note);
  if (!w.valid) start.disabled = true;
  return form;
}

// ------------------------------------------------------------------ start

window.addEventListener("hashchange", route);
document.addEventListener("DOMContentLoaded", () => {
  route();
  showServer();
  setInterval(showServer, 5000);
});

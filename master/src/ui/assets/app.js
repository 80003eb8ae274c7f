// Agora web UI: plain JavaScript, no framework, no third-party code. Reads the master's
// JSON API (/api/v1/*) and follows /api/v1/events for live updates; lists are paged and
// filtered by the server where the API offers it.
"use strict";

const HISTORY_POINTS = 150; // ~5 minutes of 2 s stats events
const RERENDER_MS = 1000; // at most one refresh of the page per second on events
const PAGE = 50;

const state = {
  stats: null,
  prev: null, // the stats event before, for rates
  history: [], // [{t, cpusAlloc, offersPerS, launchesPerS, latencyMs, roles: {role: share}}]
  dirty: false,
  tails: [], // timers of live tails on the current page
  statsWaiters: [], // pages waiting for the first stats event
  stream: null, // the page's EventSource
  streamQuery: "",
};

function esc(v) {
  return String(v ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}

async function api(path, opts) {
  const r = await fetch(path, Object.assign({ credentials: "same-origin", headers: { "content-type": "application/json" } }, opts || {}));
  const text = await r.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch (_) { body = text; }
  if (!r.ok) {
    // This master no longer leads: the page moves to the one that does (a follower does
    // not redirect a page's own calls, the leader would refuse them as cross-origin).
    const leader = r.headers.get("agora-leader");
    if (r.status === 503 && leader) {
      window.location.href = `//${leader}${window.location.pathname}${window.location.search}${window.location.hash}`;
    }
    const msg = body && body.error ? body.error : (text || r.statusText);
    throw new Error(`${r.status}: ${msg}`);
  }
  return body;
}

function fmt(n, digits) {
  if (n === undefined || n === null || Number.isNaN(n)) return "–";
  const d = digits === undefined ? 2 : digits;
  return Number.isInteger(n) ? String(n) : Number(n).toFixed(d);
}

function scalars(res) {
  // The resources JSON form: [{name, scalar}|{name, ranges}|...] -> {name: amount}
  const out = {};
  if (Array.isArray(res)) for (const r of res) if (typeof r.scalar === "number") out[r.name] = (out[r.name] || 0) + r.scalar;
  return out;
}

function resText(res) {
  const s = scalars(res);
  const parts = Object.keys(s).sort().map((k) => `${k}:${fmt(s[k])}`);
  return parts.join(" ") || "–";
}

function setMain(html) { document.getElementById("main").innerHTML = html; }

function showError(e) {
  const el = document.getElementById("page-error");
  if (el) el.textContent = String(e && e.message ? e.message : e);
}

// ---- charts (SVG polylines) --------------------------------------------------------

function chart(title, series, opts) {
  const w = 320, h = 90, pad = 4;
  const all = series.flatMap((s) => s.points);
  const max = Math.max(opts && opts.max ? opts.max : 0, ...all, 1e-9);
  const n = Math.max(...series.map((s) => s.points.length), 2);
  const colors = ["#2463b4", "#c2571a", "#2e7d32", "#8e24aa", "#00838f", "#6d4c41"];
  const lines = series.map((s, i) => {
    const pts = s.points.map((v, j) => `${(pad + (j * (w - 2 * pad)) / (n - 1)).toFixed(1)},${(h - pad - (v / max) * (h - 2 * pad)).toFixed(1)}`).join(" ");
    return `<polyline fill="none" stroke="${colors[i % colors.length]}" stroke-width="1.5" points="${pts}"/>`;
  }).join("");
  const legend = series.map((s, i) => `<span style="color:${colors[i % colors.length]}">■</span> ${esc(s.name)}`).join(" ");
  return `<div class="chart"><div class="title">${esc(title)} (max ${fmt(max)})</div>
    <svg width="${w}" height="${h}" viewBox="0 0 ${w} ${h}"><rect width="${w}" height="${h}" fill="#fbfcfd"/>${lines}</svg>
    <div class="title">${legend}</div></div>`;
}

// ---- the event stream ---------------------------------------------------------------

function onStats(s) {
  const now = Date.now();
  const prev = state.stats;
  state.stats = s;
  const point = { t: now, cpusAlloc: 0, offersPerS: 0, launchesPerS: 0, latencyMs: 0, roles: {} };
  const cpus = (s.resources || {}).cpus;
  if (cpus) point.cpusAlloc = cpus.allocated;
  if (prev && state.prevAt) {
    const dt = Math.max((now - state.prevAt) / 1000, 0.001);
    point.offersPerS = Math.max(0, (s.offers.sent - prev.offers.sent) / dt);
    point.launchesPerS = Math.max(0, (s.tasks_launched - prev.tasks_launched) / dt);
    const cycles = s.allocation.cycles - prev.allocation.cycles;
    point.latencyMs = cycles > 0 ? ((s.allocation.seconds_sum - prev.allocation.seconds_sum) / cycles) * 1000 : 0;
  }
  for (const [role, r] of Object.entries(s.roles || {})) point.roles[role] = r.dominant_share;
  const waiters = state.statsWaiters;
  state.statsWaiters = [];
  for (const w of waiters) w(s);
  state.prevAt = now;
  state.history.push(point);
  if (state.history.length > HISTORY_POINTS) state.history.shift();
  const page = currentPage();
  if (page.name === "overview" || page.name === "roles") state.dirty = true;
}

// The stream carries only what the page shows: stats always (the overview and roles are
// drawn from them), plus the changes of the page's kind, of one framework or agent on a
// detail page. A busy cluster's every task update never reaches a page that shows none.
function streamQuery(page) {
  const types = ["stats"];
  let subject = "";
  const id = page.args[0];
  const fw = ["framework_added", "framework_updated", "framework_removed"];
  const ag = ["agent_added", "agent_updated", "agent_removed"];
  const tk = ["task_added", "task_updated"];
  if (page.name === "frameworks") {
    types.push(...fw);
    if (id) { types.push(...tk); subject = `&framework_id=${encodeURIComponent(id)}`; }
  } else if (page.name === "agents") {
    types.push(...ag);
    if (id) { types.push(...tk); subject = `&agent_id=${encodeURIComponent(id)}`; }
  } else if (page.name === "tasks") {
    types.push(...tk);
    if (page.args.length >= 2) subject = `&framework_id=${encodeURIComponent(id)}`;
  }
  return `snapshot=false&stats_interval_ms=2000&types=${types.join(",")}${subject}`;
}

function connect(page) {
  const query = streamQuery(page);
  if (state.stream && state.streamQuery === query) return;
  if (state.stream) state.stream.close();
  const live = document.getElementById("live");
  const es = new EventSource(`/api/v1/events?${query}`);
  state.stream = es;
  state.streamQuery = query;
  es.onopen = () => { live.textContent = "live"; live.classList.remove("off"); };
  es.onerror = () => { live.textContent = "reconnecting"; live.classList.add("off"); };
  es.addEventListener("stats", (e) => onStats(JSON.parse(e.data)));
  for (const kind of ["framework_added", "framework_updated", "framework_removed", "agent_added", "agent_updated", "agent_removed", "task_added", "task_updated"]) {
    es.addEventListener(kind, () => { state.dirty = true; });
  }
  es.addEventListener("error", (e) => {
    if (e.data) { live.textContent = "cut off"; live.classList.add("off"); }
  });
}

setInterval(() => {
  if (state.dirty && !document.querySelector("input:focus, select:focus")) {
    state.dirty = false;
    render(true);
  }
}, RERENDER_MS);

// ---- routing ------------------------------------------------------------------------

function currentPage() {
  const hash = location.hash.replace(/^#\/?/, "");
  const [pathPart, queryPart] = hash.split("?");
  const parts = pathPart.split("/").filter(Boolean).map(decodeURIComponent);
  return { name: parts[0] || "overview", args: parts.slice(1), query: new URLSearchParams(queryPart || "") };
}

function go(name, args, query) {
  const path = [name, ...(args || []).map(encodeURIComponent)].join("/");
  const q = query ? new URLSearchParams(query).toString() : "";
  location.hash = `#/${path}${q ? "?" + q : ""}`;
}

async function render(refresh) {
  const page = currentPage();
  for (const a of document.querySelectorAll("header nav a")) a.classList.toggle("active", a.dataset.page === page.name);
  if (!refresh) { for (const t of state.tails) clearInterval(t); state.tails = []; connect(page); }
  try {
    const pages = { overview, roles, frameworks, agents, tasks };
    const fn = pages[page.name];
    if (!fn) { setMain(`<h1>Not found</h1><p>No page '${esc(page.name)}'. <a href="#/overview">Overview</a></p>`); return; }
    await fn(page, refresh);
  } catch (e) {
    setMain(`<h1>Error</h1><p class="error" id="page-error">${esc(e.message || e)}</p>`);
  }
}

// ---- overview -----------------------------------------------------------------------

async function overview() {
  let s = state.stats;
  if (!s) s = await firstStats();
  const res = s.resources || {};
  const resRows = Object.keys(res).sort().map((k) => {
    const r = res[k];
    const idle = r.total - r.allocated - r.offered;
    return `<tr><td>${esc(k)}</td><td class="num" id="ov-${esc(k)}-total">${fmt(r.total)}</td><td class="num" id="ov-${esc(k)}-allocated">${fmt(r.allocated)}</td>
      <td class="num" id="ov-${esc(k)}-offered">${fmt(r.offered)}</td><td class="num">${fmt(idle)}</td></tr>`;
  }).join("");
  const counts = (obj, prefix) => Object.keys(obj || {}).sort().map((k) => `<div class="card"><div class="label">${esc(k)}</div><div class="value" id="${prefix}-${esc(k)}">${obj[k]}</div></div>`).join("") || `<span class="muted">none</span>`;
  const h = state.history;
  const last = h[h.length - 1] || {};
  setMain(`<h1>Overview</h1>
    <div class="cards">
      <div class="card"><div class="label">Offers per second</div><div class="value" id="ov-offers-rate">${fmt(last.offersPerS, 1)}</div></div>
      <div class="card"><div class="label">Launches per second</div><div class="value" id="ov-launch-rate">${fmt(last.launchesPerS, 1)}</div></div>
      <div class="card"><div class="label">Allocation cycle (ms, mean)</div><div class="value">${fmt(last.latencyMs, 3)}</div></div>
      <div class="card"><div class="label">Outstanding offers</div><div class="value" id="ov-offers-outstanding">${s.offers.outstanding}</div></div>
    </div>
    <h2>Resources</h2>
    <table id="ov-resources"><tr><th>kind</th><th class="num">total</th><th class="num">allocated</th><th class="num">offered</th><th class="num">idle</th></tr>${resRows}</table>
    <h2>Agents</h2><div class="cards">${counts(s.agents, "ov-agents")}</div>
    <h2>Frameworks</h2><div class="cards">${counts(s.frameworks, "ov-frameworks")}</div>
    <h2>Tasks</h2><div class="cards">${counts(s.tasks, "ov-tasks")}</div>
    <h2>Last minutes</h2>
    <div class="charts">
      ${chart("cpus allocated", [{ name: "cpus", points: h.map((p) => p.cpusAlloc) }], { max: (res.cpus || {}).total })}
      ${chart("offers and launches per second", [{ name: "offers/s", points: h.map((p) => p.offersPerS) }, { name: "launches/s", points: h.map((p) => p.launchesPerS) }])}
      ${chart("allocation cycle ms", [{ name: "ms", points: h.map((p) => p.latencyMs) }])}
    </div>
    <p class="muted">master ${esc(s.master_id)}</p>`);
  if (!state.overviewMarked) {
    // The overview shows the master's numbers and its links work: the moment
    // `agora-loadgen ui-overview` times from navigation start.
    state.overviewMarked = true;
    performance.mark("agora:overview-interactive");
  }
}

/// The first stats event of the page's stream (it opens with one).
function firstStats() {
  if (state.stats) return Promise.resolve(state.stats);
  return new Promise((resolve, reject) => {
    state.statsWaiters.push(resolve);
    setTimeout(() => reject(new Error("no stats from the event stream within 10 s")), 10000);
  });
}

// ---- roles --------------------------------------------------------------------------

async function roles() {
  const [list, quota] = await Promise.all([api("/api/v1/roles"), api("/api/v1/quota")]);
  const q = {};
  for (const x of quota || []) q[x.role] = x;
  const rows = list.map((r) => `<tr><td>${esc(r.name)}</td><td class="num">${fmt(r.weight)}</td>
    <td>${esc((q[r.name] || {}).guarantee || "–")}</td><td>${esc((q[r.name] || {}).limit || "–")}</td>
    <td>${esc(resText(r.allocated))}</td>
    <td class="num">${fmt(r.dominant_share, 3)} <span class="bar" style="width:${Math.round(r.dominant_share * 120)}px"></span></td>
    <td>${r.frameworks.map((f) => `<a href="#/frameworks/${encodeURIComponent(f)}">${esc(f.slice(-8))}</a>`).join(" ")}</td></tr>`).join("");
  const names = list.map((r) => r.name).sort();
  const series = names.map((n) => ({ name: n, points: state.history.map((p) => p.roles[n] || 0) }));
  setMain(`<h1>Roles</h1>
    <table id="roles-table"><tr><th>role</th><th class="num">weight</th><th>quota guarantee</th><th>quota limit</th><th>allocated</th><th class="num">dominant share</th><th>frameworks</th></tr>${rows}</table>
    <h2>Dominant shares over time (DRF)</h2>
    <div class="charts">${series.length ? chart("dominant share by role", series, { max: 1 }) : '<span class="muted">no roles yet</span>'}</div>`);
}

// ---- frameworks ---------------------------------------------------------------------

async function frameworks(page) {
  if (page.args[0]) return frameworkDetail(page.args[0]);
  const list = await api("/api/v1/frameworks");
  const rows = list.map((f) => `<tr><td><a href="#/frameworks/${encodeURIComponent(f.id)}">${esc(f.id)}</a></td><td>${esc(f.name)}</td>
    <td>${esc(f.roles.join(", "))}</td><td>${esc(f.principal)}</td><td>${esc(f.status)}</td><td class="num">${f.active_tasks}</td>
    <td>${esc(resText(f.allocated))}</td><td>${esc(resText(f.offered))}</td></tr>`).join("");
  setMain(`<h1>Frameworks</h1>
    <table id="frameworks-table"><tr><th>id</th><th>name</th><th>roles</th><th>principal</th><th>status</th><th class="num">tasks</th><th>allocated</th><th>offered</th></tr>${rows}</table>
    ${list.length ? "" : '<p class="muted">No frameworks.</p>'}`);
}

async function frameworkDetail(id) {
  const f = await api(`/api/v1/frameworks/${encodeURIComponent(id)}`);
  const tasks = await api(`/api/v1/tasks?framework_id=${encodeURIComponent(id)}&limit=${PAGE}`);
  let explain;
  try { explain = await api(`/api/v1/allocator/explain?framework=${encodeURIComponent(id)}`); } catch (e) { explain = { error: e.message }; }
  setMain(`<h1>Framework ${esc(f.name)}</h1>
    <table class="kv">
      <tr><td>id</td><td>${esc(f.id)}</td></tr><tr><td>status</td><td id="fw-status">${esc(f.status)}</td></tr>
      <tr><td>roles</td><td>${esc(f.roles.join(", "))}</td></tr><tr><td>principal</td><td>${esc(f.principal)}</td></tr>
      <tr><td>user</td><td>${esc(f.user)}</td></tr><tr><td>capabilities</td><td>${esc(f.capabilities.join(", ") || "–")}</td></tr>
      <tr><td>active tasks</td><td>${f.active_tasks}</td></tr><tr><td>allocated</td><td>${esc(resText(f.allocated))}</td></tr>
      <tr><td>outstanding offers</td><td>${esc(resText(f.offered))}</td></tr>
    </table>
    <p><button class="danger" id="teardown">Tear down</button><span id="page-error" class="error"></span></p>
    <h2>Why (no) offers</h2><pre id="explain">${esc(JSON.stringify(explain, null, 2))}</pre>
    <h2>Tasks (${tasks.total})</h2>${taskTable(tasks.tasks)}
    <p><a href="#/tasks?framework_id=${encodeURIComponent(id)}">All tasks of this framework</a></p>`);
  document.getElementById("teardown").onclick = async () => {
    if (!confirm(`Tear down framework ${f.name}? Its tasks are killed.`)) return;
    try { await api(`/api/v1/frameworks/${encodeURIComponent(id)}/teardown`, { method: "POST", body: "{}" }); render(true); } catch (e) { showError(e); }
  };
}

// ---- agents -------------------------------------------------------------------------

async function agents(page) {
  if (page.args[0]) return agentDetail(page.args[0]);
  const q = page.query;
  const host = q.get("hostname") || "";
  const status = q.get("status") || "";
  const offset = Number(q.get("offset") || 0);
  const params = new URLSearchParams({ offset, limit: PAGE });
  if (host) params.set("hostname", host);
  if (status) params.set("status", status);
  const r = await fetch(`/api/v1/agents?${params}`, { credentials: "same-origin" });
  if (!r.ok) throw new Error(`${r.status}: ${await r.text()}`);
  const shown = await r.json();
  const matching = { length: Number(r.headers.get("x-total-count") || shown.length) };
  const rows = shown.map((a) => `<tr><td><a href="#/agents/${encodeURIComponent(a.id)}">${esc(a.hostname)}</a></td><td>${esc(a.status)}</td>
    <td>${esc(resText(a.resources))}</td><td>${esc(resText(a.allocated))}</td><td>${esc(a.address || "–")}</td></tr>`).join("");
  const statuses = ["", "registered", "disconnected", "unreachable", "draining", "deactivated", "removed", "gone"];
  setMain(`<h1>Agents</h1>
    <div class="filters">hostname <input id="f-host" value="${esc(host)}"> status <select id="f-status">${statuses.map((s) => `<option ${s === status ? "selected" : ""}>${s}</option>`).join("")}</select>
    <button id="f-apply">Filter</button></div>
    <table id="agents-table"><tr><th>hostname</th><th>status</th><th>total</th><th>allocated</th><th>address</th></tr>${rows}</table>
    ${pager(offset, shown.length, matching.length, (o) => go("agents", [], { hostname: host, status, offset: o }))}`);
  document.getElementById("f-apply").onclick = () => go("agents", [], { hostname: document.getElementById("f-host").value, status: document.getElementById("f-status").value });
  bindPager((o) => go("agents", [], { hostname: host, status, offset: o }));
}

async function agentDetail(id) {
  const a = await api(`/api/v1/agents/${encodeURIComponent(id)}`);
  const tasks = await api(`/api/v1/tasks?agent_id=${encodeURIComponent(id)}&limit=${PAGE}`);
  let usage = null;
  // This agent's report only (none yet: an empty list).
  try { usage = await api(`/api/v1/usage?agent_id=${encodeURIComponent(id)}`); } catch (_) { usage = null; }
  const attrs = Object.entries(a.attributes || {}).map(([k, v]) => `${k}:${v}`).join(" ") || "–";
  const reserved = (a.resources || []).filter((r) => r.reservations && r.reservations.length);
  const volumes = (a.resources || []).filter((r) => r.disk && r.disk.persistence);
  const report = usage && usage.agents ? usage.agents.find((u) => u.agent_id === id) : null;
  const containers = report ? report.containers || [] : [];
  setMain(`<h1>Agent ${esc(a.hostname)}</h1>
    <table class="kv">
      <tr><td>id</td><td>${esc(a.id)}</td></tr><tr><td>status</td><td id="agent-status">${esc(a.status)}</td></tr>
      <tr><td>address</td><td>${esc(a.address || "–")}</td></tr><tr><td>isolation</td><td>${esc(a.isolation)}</td></tr>
      <tr><td>total</td><td>${esc(resText(a.resources))}</td></tr><tr><td>allocated</td><td>${esc(resText(a.allocated))}</td></tr>
      <tr><td>offered</td><td>${esc(resText(a.offered))}</td></tr><tr><td>attributes</td><td>${esc(attrs)}</td></tr>
      <tr><td>reserved</td><td>${esc(reserved.length ? JSON.stringify(reserved) : "–")}</td></tr>
      <tr><td>volumes</td><td>${esc(volumes.length ? JSON.stringify(volumes) : "–")}</td></tr>
    </table>
    <p><button id="deactivate">Deactivate</button><button id="drain">Drain</button><button id="reactivate">Reactivate</button>
      grace seconds <input id="grace" size="4" value="30"><span id="page-error" class="error"></span></p>
    <h2>Containers</h2>${containers.length ? `<pre>${esc(JSON.stringify(containers, null, 2))}</pre>` : '<p class="muted">No usage report.</p>'}
    <h2>Tasks (${tasks.total})</h2>${taskTable(tasks.tasks)}`);
  const act = (op, body) => async () => {
    try { await api(`/api/v1/agents/${encodeURIComponent(id)}/${op}`, { method: "POST", body: JSON.stringify(body || {}) }); render(true); } catch (e) { showError(e); }
  };
  document.getElementById("deactivate").onclick = act("deactivate");
  document.getElementById("reactivate").onclick = act("reactivate");
  document.getElementById("drain").onclick = () => act("drain", { grace_period_seconds: Number(document.getElementById("grace").value) || 0 })();
}

// ---- tasks --------------------------------------------------------------------------

function taskTable(list) {
  const rows = list.map((t) => `<tr><td><a href="#/tasks/${encodeURIComponent(t.framework_id)}/${encodeURIComponent(t.id)}">${esc(t.id)}</a></td>
    <td>${esc(t.name)}</td><td>${esc(t.state)}</td><td><a href="#/frameworks/${encodeURIComponent(t.framework_id)}">${esc(t.framework_id.slice(-8))}</a></td>
    <td><a href="#/agents/${encodeURIComponent(t.agent_id)}">${esc(t.agent_id.slice(-8))}</a></td><td>${esc(resText(t.resources))}</td></tr>`).join("");
  return `<table class="tasks-table"><tr><th>id</th><th>name</th><th>state</th><th>framework</th><th>agent</th><th>resources</th></tr>${rows}</table>`;
}

function pager(offset, shown, total) {
  const prev = offset > 0 ? `<button id="pg-prev" data-o="${Math.max(0, offset - PAGE)}">‹ previous</button>` : "";
  const next = offset + shown < total ? `<button id="pg-next" data-o="${offset + PAGE}">next ›</button>` : "";
  return `<div class="pager">${prev}${next} ${total ? offset + 1 : 0}–${offset + shown} of ${total}</div>`;
}

function bindPager(to) {
  for (const id of ["pg-prev", "pg-next"]) {
    const b = document.getElementById(id);
    if (b) b.onclick = () => to(Number(b.dataset.o));
  }
}

async function tasks(page) {
  if (page.args.length >= 2) return taskDetail(page.args[0], page.args[1]);
  const q = page.query;
  const f = { state: q.get("state") || "", framework_id: q.get("framework_id") || "", agent_id: q.get("agent_id") || "", name: q.get("name") || "" };
  const offset = Number(q.get("offset") || 0);
  const params = new URLSearchParams({ offset, limit: PAGE });
  for (const [k, v] of Object.entries(f)) if (v) params.set(k, v);
  const p = await api(`/api/v1/tasks?${params}`);
  const states = ["", "STAGING", "STARTING", "RUNNING", "KILLING", "FINISHED", "FAILED", "KILLED", "LOST", "ERROR", "DROPPED", "UNREACHABLE", "GONE", "UNKNOWN"];
  setMain(`<h1>Tasks</h1>
    <div class="filters">state <select id="f-state">${states.map((s) => `<option ${s === f.state ? "selected" : ""}>${s}</option>`).join("")}</select>
      framework <input id="f-fw" value="${esc(f.framework_id)}" size="30"> agent <input id="f-agent" value="${esc(f.agent_id)}" size="30">
      name <input id="f-name" value="${esc(f.name)}"> <button id="f-apply">Filter</button></div>
    ${taskTable(p.tasks)}
    ${pager(offset, p.tasks.length, p.total)}`);
  const current = () => ({ state: document.getElementById("f-state").value, framework_id: document.getElementById("f-fw").value.trim(), agent_id: document.getElementById("f-agent").value.trim(), name: document.getElementById("f-name").value.trim() });
  const clean = (o) => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== "" && v !== undefined));
  document.getElementById("f-apply").onclick = () => go("tasks", [], clean(current()));
  bindPager((o) => go("tasks", [], clean(Object.assign({}, f, { offset: o }))));
}

async function taskDetail(fw, id, refresh) {
  const p = await api(`/api/v1/tasks?framework_id=${encodeURIComponent(fw)}&task_id=${encodeURIComponent(id)}&limit=1`);
  const t = p.tasks[0];
  if (!t) { setMain(`<h1>Task ${esc(id)}</h1><p class="error" id="page-error">unknown task (or it ended long ago)</p>`); return; }
  if (document.getElementById("tail-stdout") && state.tails.length) {
    // Keep the live tails and the browser as they are; refresh the status only.
    document.getElementById("task-state").textContent = t.state;
    return;
  }
  const hist = (t.statuses || []).map((s) => `<tr><td>${new Date(s.timestamp_ms).toISOString()}</td><td>${esc(s.state)}</td><td>${esc(s.reason)}</td><td>${esc(s.source)}</td><td>${esc(s.message)}</td></tr>`).join("");
  const base = `/api/v1/tasks/${encodeURIComponent(fw)}/${encodeURIComponent(id)}/files`;
  setMain(`<h1>Task ${esc(t.id)}</h1>
    <table class="kv">
      <tr><td>name</td><td>${esc(t.name)}</td></tr><tr><td>state</td><td id="task-state">${esc(t.state)}</td></tr>
      <tr><td>framework</td><td><a href="#/frameworks/${encodeURIComponent(fw)}">${esc(fw)}</a></td></tr>
      <tr><td>agent</td><td><a href="#/agents/${encodeURIComponent(t.agent_id)}">${esc(t.agent_id)}</a></td></tr>
      <tr><td>resources</td><td>${esc(resText(t.resources))}</td></tr><tr><td>command</td><td><code>${esc(JSON.stringify(t.command))}</code></td></tr>
    </table>
    <h2>Status history</h2><table><tr><th>time</th><th>state</th><th>reason</th><th>source</th><th>message</th></tr>${hist}</table>
    <h2>stdout</h2><pre class="tail" id="tail-stdout"></pre>
    <h2>stderr</h2><pre class="tail" id="tail-stderr"></pre>
    <h2>Sandbox</h2><div id="sandbox"></div><span id="page-error" class="error"></span>`);
  for (const name of ["stdout", "stderr"]) follow(base, name, document.getElementById(`tail-${name}`));
  browse(base, "");
}

/// Follows a sandbox file by offset (`/files/read`), appending what is new every second.
function follow(base, path, el) {
  let offset = null;
  const maxChars = 200000;
  const step = async () => {
    try {
      if (offset === null) {
        const size = await api(`${base}/read?path=${encodeURIComponent(path)}&offset=-1`);
        offset = Math.max(0, size.offset - 65536);
      }
      for (let i = 0; i < 16; i++) {
        const r = await api(`${base}/read?path=${encodeURIComponent(path)}&offset=${offset}`);
        if (!r.data) break;
        el.textContent = (el.textContent + r.data).slice(-maxChars);
        el.scrollTop = el.scrollHeight;
        offset = r.next_offset;
      }
    } catch (e) {
      el.dataset.error = e.message;
      if (!el.textContent) el.textContent = `(${e.message})`;
    }
  };
  step();
  state.tails.push(setInterval(step, 1000));
}

async function browse(base, path) {
  const el = document.getElementById("sandbox");
  try {
    const list = await api(`${base}/browse?path=${encodeURIComponent(path)}`);
    const up = path ? `<tr><td><a href="#" data-dir="${esc(path.split("/").slice(0, -1).join("/"))}">..</a></td><td></td><td></td></tr>` : "";
    const rows = list.map((e) => {
      const p = path ? `${path}/${e.name}` : e.name;
      const link = e.is_dir ? `<a href="#" data-dir="${esc(p)}">${esc(e.name)}/</a>` : `<a href="${base}/download?path=${encodeURIComponent(p)}" download="${esc(e.name)}">${esc(e.name)}</a>`;
      return `<tr><td>${link}</td><td class="num">${e.size}</td><td>${new Date(e.modified_unix_s * 1000).toISOString()}</td></tr>`;
    }).join("");
    el.innerHTML = `<p class="muted">/${esc(path)}</p><table id="sandbox-table"><tr><th>name</th><th class="num">bytes</th><th>modified</th></tr>${up}${rows}</table>`;
    for (const a of el.querySelectorAll("a[data-dir]")) a.onclick = (ev) => { ev.preventDefault(); browse(base, a.dataset.dir); };
  } catch (e) {
    el.innerHTML = `<p class="error">${esc(e.message)}</p>`;
  }
}

window.addEventListener("hashchange", () => render(false));
// A page left for another (kept in the back/forward cache) must not keep its stream open:
// over HTTP/1.1 a browser holds at most 6 connections to the master, and cached pages'
// streams once made the 7th page load wait for a free one.
window.addEventListener("pagehide", () => {
  if (state.stream) { state.stream.close(); state.stream = null; state.streamQuery = ""; }
});
window.addEventListener("pageshow", (e) => { if (e.persisted) render(false); });
render(false);

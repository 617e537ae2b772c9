// aegisfwd explorer: draws the what-if summary of the JSON API (docs/serve.md) on an SVG world map.
// Plain JavaScript, no library, nothing fetched from anywhere but the explorer itself.
"use strict";

const TIERS = ["LOCAL", "SAME_DC", "SAME_LOCATION", "REMOTE", "UNAVAILABLE"];
const SVGNS = "http://www.w3.org/2000/svg";
const $ = (sel) => document.querySelector(sel);
const fmt = (n) => n.toLocaleString("en-US");
const pct = (x) => (100 * x).toFixed(x < 0.001 && x > 0 ? 3 : 1) + "%";
const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));

const st = {
  meta: null, summary: null, scope: null, selected: null, compare: false,
  locs: new Map(), view: { x: 0, y: 45, w: 1000, h: 360 }, pending: 0,
};

async function api(method, path, body) {
  const opt = { method, headers: {} };
  if (body !== undefined) { opt.headers["Content-Type"] = "application/json"; opt.body = JSON.stringify(body); }
  st.pending++; document.body.dataset.pending = String(st.pending);
  try {
    const r = await fetch(path, opt);
    const data = await r.json().catch(() => ({ error: `HTTP ${r.status}` }));
    if (!r.ok) throw new Error(data.error || `HTTP ${r.status}`);
    return data;
  } finally {
    st.pending--; document.body.dataset.pending = String(st.pending);
  }
}

function message(text, kind) {
  const box = $("#message");
  box.innerHTML = text ? `<div class="${kind || ""}">${esc(text)}</div>` : "";
  if (text && kind === "info") setTimeout(() => { if (box.textContent === text) box.innerHTML = ""; }, 4000);
}

async function guarded(fn) {
  try { message(""); await fn(); } catch (e) { message(e.message); }
}

const scopeQuery = () => (st.scope ? `?pool=${encodeURIComponent(st.scope)}` : "");
const proj = (lon, lat) => [((lon + 180) / 360) * 1000, ((90 - lat) / 180) * 500];

// ---- map ---------------------------------------------------------------------------------------
function drawLand(land) {
  const parts = [];
  for (const ring of land.rings) {
    let d = "";
    for (let i = 0; i < ring.length; i += 2) {
      const [x, y] = proj(ring[i], ring[i + 1]);
      d += (i ? "L" : "M") + x.toFixed(1) + " " + y.toFixed(1);
    }
    parts.push(d + "Z");
  }
  $("#land").setAttribute("d", parts.join(""));
}

function setupLocations(meta) {
  const g = $("#locs");
  g.textContent = "";
  for (const loc of meta.locations) {
    if (loc.lat === null || loc.lon === null) continue;
    const [x, y] = proj(loc.lon, loc.lat);
    const c = document.createElementNS(SVGNS, "circle");
    c.setAttribute("cx", x.toFixed(2)); c.setAttribute("cy", y.toFixed(2));
    c.dataset.loc = loc.id;
    const title = document.createElementNS(SVGNS, "title");
    c.appendChild(title);
    g.appendChild(c);
    st.locs.set(loc.id, { ...loc, x, y, el: c, title });
  }
}

function zoom() { return 1000 / st.view.w; }

function applyView() {
  const v = st.view;
  $("#map").setAttribute("viewBox", `${v.x} ${v.y} ${v.w} ${v.h}`);
  const k = zoom();
  for (const loc of st.locs.values()) loc.el.setAttribute("r", (loc.r / Math.sqrt(k)).toFixed(2));
}

function curve(a, b) {
  const mx = (a.x + b.x) / 2, my = (a.y + b.y) / 2, dx = b.x - a.x, dy = b.y - a.y;
  const cx = mx - dy * 0.18, cy = my + dx * 0.18;
  return `M${a.x.toFixed(1)} ${a.y.toFixed(1)}Q${cx.toFixed(1)} ${cy.toFixed(1)} ${b.x.toFixed(1)} ${b.y.toFixed(1)}`;
}

function drawLines(s) {
  const g = $("#lines"), gb = $("#base-lines");
  g.textContent = ""; gb.textContent = "";
  let max = 1;
  for (const [, , now, base] of s.lines) max = Math.max(max, now, st.compare ? base : 0);
  const width = (n) => (0.5 + 6 * Math.sqrt(n / max)).toFixed(2);
  const add = (group, a, b, n, cls, tip) => {
    const p = document.createElementNS(SVGNS, "path");
    p.setAttribute("d", curve(a, b));
    p.setAttribute("stroke-width", width(n));
    p.setAttribute("vector-effect", "non-scaling-stroke");
    if (cls) p.setAttribute("class", cls);
    const t = document.createElementNS(SVGNS, "title"); t.textContent = tip; p.appendChild(t);
    group.appendChild(p);
  };
  // Thin lines first so the big flows stay on top.
  for (const [from, to, now, base] of [...s.lines].reverse()) {
    const a = st.locs.get(from), b = st.locs.get(to);
    if (!a || !b) continue;
    if (st.compare && base > 0) add(gb, a, b, base, "", `${from} → ${to}: ${fmt(base)} rows in the baseline`);
    if (now > 0) {
      const grow = st.compare && now > base;
      add(g, a, b, now, grow ? "grow" : "", `${from} → ${to}: ${fmt(now)} rows` + (st.compare ? ` (baseline ${fmt(base)})` : ""));
    }
  }
}

function drawLocations(s) {
  let max = 1;
  for (const v of Object.values(s.locations)) max = Math.max(max, v[0]);
  for (const loc of st.locs.values()) {
    const v = s.locations[loc.id] || [0, 0, 0, 0];
    const states = s.location_states[loc.id];
    // Colour by the share of the location's servers that are up: a few draining or down servers
    // (routine) keep it "up"; below 80% it is "partly"; none up is "down".
    let cls = "ok";
    if (states) {
      const total = states[0] + states[1] + states[2];
      cls = states[0] === 0 ? "down" : states[0] < 0.8 * total ? "some" : "ok";
    }
    if (!states && v[0] === 0 && v[1] === 0) cls = "idle";
    loc.r = v[0] > 0 ? 1.6 + 7 * Math.sqrt(v[0] / max) : 1.4;
    loc.el.setAttribute("class", cls + (loc.id === st.selected ? " sel" : ""));
    loc.el.setAttribute("stroke-width", loc.id === st.selected ? "0.8" : "0.3");
    const stateText = states ? ` · servers up/draining/down ${states.join("/")}` : "";
    loc.title.textContent = `${loc.id}${loc.name ? " " + loc.name : ""}: ${fmt(v[0])} rows enter, ${fmt(v[1])} egress here` +
      ` (${fmt(v[2])} stay local, ${fmt(v[3])} unavailable)${stateText}`;
  }
  applyView();
}

function setupPanZoom() {
  const svg = $("#map");
  let drag = null;
  const toUser = (ev) => {
    const r = svg.getBoundingClientRect(), v = st.view;
    const scale = Math.max(v.w / r.width, v.h / r.height);
    const ox = (r.width * scale - v.w) / 2, oy = (r.height * scale - v.h) / 2;
    return [v.x - ox + (ev.clientX - r.left) * scale, v.y - oy + (ev.clientY - r.top) * scale, scale];
  };
  svg.addEventListener("wheel", (ev) => {
    ev.preventDefault();
    const [ux, uy] = toUser(ev), f = ev.deltaY < 0 ? 0.8 : 1.25, v = st.view;
    const w = Math.min(1000, Math.max(40, v.w * f)), h = (w * 360) / 1000;
    st.view = { x: ux - ((ux - v.x) * w) / v.w, y: uy - ((uy - v.y) * h) / v.h, w, h };
    applyView();
  }, { passive: false });
  svg.addEventListener("mousedown", (ev) => { drag = { x: ev.clientX, y: ev.clientY, v: { ...st.view }, moved: false }; });
  window.addEventListener("mousemove", (ev) => {
    if (!drag) return;
    const [, , scale] = toUser(ev);
    const dx = ev.clientX - drag.x, dy = ev.clientY - drag.y;
    if (Math.abs(dx) + Math.abs(dy) > 3) drag.moved = true;
    if (drag.moved) { st.view = { ...drag.v, x: drag.v.x - dx * scale, y: drag.v.y - dy * scale }; applyView(); }
  });
  window.addEventListener("mouseup", (ev) => {
    const d = drag; drag = null;
    if (d && !d.moved && ev.target instanceof SVGCircleElement && ev.target.dataset.loc) selectLocation(ev.target.dataset.loc);
  });
}

// ---- panels ------------------------------------------------------------------------------------
function renderTiers(s) {
  const total = s.scope.rows || 1;
  $("#tierbar").innerHTML = TIERS.map((t) =>
    `<div style="width:${(100 * s.tiers[t]) / total}%;background:var(--${t})" title="${t}: ${fmt(s.tiers[t])}"></div>`).join("");
  $("#tiers tbody").innerHTML = TIERS.map((t) => {
    const d = s.tiers[t] - s.baseline_tiers[t];
    const cls = d === 0 ? "" : (t === "LOCAL") === d > 0 ? "dn" : "up";
    return `<tr data-tier="${t}" data-rows="${s.tiers[t]}"><td><span class="swatch" style="background:var(--${t})"></span>${t}</td>` +
      `<td>${fmt(s.tiers[t])}</td><td>${pct(s.tiers[t] / total)}</td><td class="${cls}">${d > 0 ? "+" : ""}${d ? fmt(d) : "–"}</td></tr>`;
  }).join("");
  const unit = s.distance_unit;
  const dist = (x) => (x === null ? "–" : `${fmt(Math.round(x))} ${unit}`);
  $("#forwarded").textContent = `${pct(s.forwarded_share)}` + (st.compare ? ` (was ${pct(s.baseline_forwarded_share)})` : "");
  $("#distance").textContent = dist(s.mean_added_distance) + (st.compare ? ` (was ${dist(s.baseline_mean_added_distance)})` : "");
  $("#changed").textContent = `${fmt(s.changed.rows_changed_egress)} (${pct(s.changed.rows_changed_egress / total)})`;
  const t = s.timings_ms;
  $("#timing").textContent = t.decide_ms !== undefined ? `· ${fmt(s.scope.rows)} rows, re-decided in ${Math.round(t.total)} ms` : `· ${fmt(s.scope.rows)} rows`;
}

function renderDiff(s) {
  const c = s.changed;
  const parts = [];
  if (s.states_changed) parts.push(`<div>${fmt(s.states_changed)} server(s) in another state than loaded</div>`);
  for (const m of s.moves) parts.push(`<div>moved ${esc(m.address)} (${esc(m.pool)}): now in ${esc(m.locations.join(", ") || "no location")}</div>`);
  if (c.tier_transitions.length) {
    parts.push("<table><thead><tr><th>rows moved from</th><th>to</th><th>rows</th></tr></thead><tbody>" +
      c.tier_transitions.slice(0, 8).map((x) => `<tr><td>${x.from}</td><td>${x.to}</td><td>${fmt(x.rows)}</td></tr>`).join("") + "</tbody></table>");
  }
  if (c.flow_changes.length) {
    parts.push("<table><thead><tr><th>flow (ingress → egress)</th><th></th><th>Δ rows</th></tr></thead><tbody>" +
      c.flow_changes.map(([a, b, d]) => `<tr><td>${esc(a)} → ${esc(b || "nowhere")}</td><td></td><td class="${d > 0 ? "up" : "dn"}">${d > 0 ? "+" : ""}${fmt(d)}</td></tr>`).join("") +
      "</tbody></table>");
  }
  $("#diff").innerHTML = parts.join("") || '<span class="muted">Nothing changed yet: click a location, or move an address.</span>';
}

function renderIps(s) {
  $("#ips tbody").innerHTML = s.egress_ips.map((x) =>
    `<tr><td>${esc(x.ip)}</td><td>${fmt(x.rows)}</td><td>${pct(x.share)}</td><td>${fmt(x.baseline_rows)}</td></tr>`).join("");
}

function render(s) {
  st.summary = s;
  renderTiers(s);
  drawLines(s);
  drawLocations(s);
  renderDiff(s);
  renderIps(s);
  $("#dl-json").setAttribute("href", "/api/summary.json" + scopeQuery());
  document.body.dataset.version = String(s.version);
}

async function refresh() { render(await api("GET", "/api/summary" + scopeQuery())); }

// ---- states ------------------------------------------------------------------------------------
async function setState(target, state) {
  await guarded(async () => {
    render(await api("POST", "/api/states" + scopeQuery(), { states: { [target]: state } }));
    if (st.selected) await showLocation(st.selected);
  });
}

function stateOf(list) {
  const set = new Set(list);
  return set.size === 1 ? list[0] : "mixed";
}

async function showLocation(id) {
  const loc = await api("GET", `/api/location/${encodeURIComponent(id)}`);
  const card = $("#loc-card");
  card.hidden = false;
  $("#loc-name").textContent = `${loc.id}${loc.name ? " · " + loc.name : ""}`;
  const all = loc.data_centers.flatMap((dc) => dc.servers.map((s) => s[1]));
  const locState = all.length ? stateOf(all) : "up";
  for (const b of card.querySelectorAll(".states > button")) b.classList.toggle("active", b.dataset.state === locState);
  const v = (st.summary && st.summary.locations[id]) || [0, 0, 0, 0];
  $("#loc-flows").textContent = `${fmt(v[0])} rows enter here, ${fmt(v[1])} egress here, ${fmt(v[2])} stay local, ${fmt(v[3])} unavailable` +
    (all.length ? "" : " · no servers");
  $("#loc-dcs").innerHTML = loc.data_centers.map((dc) => {
    const s = stateOf(dc.servers.map((x) => x[1]));
    const btn = (name) => `<button data-target="${esc(dc.id)}" data-state="${name}" class="${s === name ? "active" : ""}">${name}</button>`;
    const servers = dc.servers.map(([sid, ss]) =>
      `<label title="${esc(sid)}"><select data-target="${esc(sid)}">${["up", "draining", "down"].map((o) =>
        `<option${o === ss ? " selected" : ""}>${o}</option>`).join("")}</select> ${esc(sid)}</label>`).join("");
    return `<div class="dc"><div class="row"><b>${esc(dc.id)}</b><span class="muted">${dc.servers.length} servers${s === "mixed" ? ", mixed" : ""}</span>` +
      `<span class="row states">${btn("up")}${btn("draining")}${btn("down")}</span></div>` +
      `<details><summary>servers</summary><div class="servers">${servers}</div></details></div>`;
  }).join("");
}

async function selectLocation(id) {
  st.selected = id;
  if (st.summary) drawLocations(st.summary);
  await guarded(() => showLocation(id));
}

// ---- scope and placement -----------------------------------------------------------------------
function fillScopeList(pools) {
  $("#scope-list").innerHTML = pools.map((p) =>
    `<option value="${esc(p.zone || p.id)}">${esc(p.id)} · ${fmt(p.rows)} rows${p.zones.length ? " · " + esc(p.zones.slice(0, 2).join(", ")) : ""}</option>`).join("");
  st.candidates = pools;
}

async function chooseScope(text) {
  text = text.trim();
  if (!text) { st.scope = null; $("#scope-info").textContent = "every pool"; await refresh(); renderPlacement(null); return; }
  const res = await api("GET", `/api/pools?q=${encodeURIComponent(text)}&limit=50`);
  const exact = res.pools.find((p) => p.id === text || p.zone === text) || (res.pools.length === 1 ? res.pools[0] : null);
  if (!exact) { fillScopeList(res.pools); message(res.pools.length ? `${res.pools.length} matches: pick one` : `no pool or zone matches "${text}"`, "info"); return; }
  st.scope = exact.id;
  $("#scope-info").textContent = `pool ${exact.id} · ${fmt(exact.rows)} rows · ${exact.n_zones} zone(s)${exact.zones.length ? ": " + exact.zones.slice(0, 3).join(", ") : ""}`;
  await refresh();
  await renderPlacement(exact.id);
}

async function renderPlacement(poolId) {
  const body = $("#place-body");
  if (!poolId) { body.className = "muted"; body.textContent = "Pick a pool (scope) to move its addresses."; return; }
  const pool = await api("GET", `/api/pool/${encodeURIComponent(poolId)}`);
  body.className = "";
  const locOptions = [...st.locs.keys()].map((id) => `<option value="${esc(id)}">`).join("");
  body.innerHTML = `<datalist id="holder-list">${locOptions}</datalist>` + pool.ips.map((ip, k) =>
    `<div class="ip"><div class="row"><b>${esc(ip.address)}</b><span class="muted">IPv${ip.family} · ${ip.locations.length} location(s)</span></div>` +
    `<div>${ip.holders.map((h) => `<span class="chip">${esc(h)}<button title="remove ${esc(h)}" data-ip="${k}" data-remove="${esc(h)}">×</button></span>`).join("") || '<span class="muted">no holders</span>'}</div>` +
    `<div class="row"><input list="holder-list" placeholder="add a location, DC or server" data-ip-input="${k}"><button data-ip="${k}" data-add="1">add</button></div></div>`).join("");
  body.onclick = (ev) => {
    const b = ev.target.closest("button");
    if (!b) return;
    const ip = pool.ips[Number(b.dataset.ip)];
    if (b.dataset.remove) move(ip.address, [], [b.dataset.remove]);
    else if (b.dataset.add) {
      const v = body.querySelector(`input[data-ip-input="${b.dataset.ip}"]`).value.trim();
      if (v) move(ip.address, [v], []);
    }
  };
}

async function move(address, add, remove) {
  await guarded(async () => {
    render(await api("POST", "/api/placement" + scopeQuery(), { address, add, remove }));
    await renderPlacement(st.scope);
    message(`moved ${address}: re-decided in ${Math.round(st.summary.timings_ms.total)} ms`, "info");
  });
}

// ---- wiring ------------------------------------------------------------------------------------
function wire() {
  for (const b of document.querySelectorAll("#loc-card > .states > button")) {
    b.addEventListener("click", () => st.selected && setState(st.selected, b.dataset.state));
  }
  $("#loc-dcs").addEventListener("click", (ev) => {
    const b = ev.target.closest("button[data-target]");
    if (b) setState(b.dataset.target, b.dataset.state);
  });
  $("#loc-dcs").addEventListener("change", (ev) => {
    const s = ev.target.closest("select[data-target]");
    if (s) setState(s.dataset.target, s.value);
  });
  $("#compare").addEventListener("change", (ev) => { st.compare = ev.target.checked; if (st.summary) render(st.summary); });
  $("#reset").addEventListener("click", () => guarded(async () => {
    render(await api("POST", "/api/reset" + scopeQuery()));
    if (st.selected) await showLocation(st.selected);
    if (st.scope) await renderPlacement(st.scope);
  }));
  let timer = null;
  $("#scope").addEventListener("input", (ev) => {
    clearTimeout(timer);
    const q = ev.target.value.trim();
    timer = setTimeout(() => guarded(async () => fillScopeList((await api("GET", `/api/pools?q=${encodeURIComponent(q)}&limit=50`)).pools)), 150);
  });
  $("#scope").addEventListener("change", (ev) => guarded(() => chooseScope(ev.target.value)));
  $("#scope-all").addEventListener("click", () => { $("#scope").value = ""; guarded(() => chooseScope("")); });
}

async function init() {
  wire();
  setupPanZoom();
  const [meta, land] = await Promise.all([api("GET", "/api/meta"), api("GET", "/api/land")]);
  st.meta = meta;
  document.title = meta.title;
  $("#title").textContent = meta.title;
  const r = meta.rows;
  $("#source").textContent = `${fmt(r.rows)} rows from ${r.source} · ${Math.round(r.bytes / 1e6)} MB in memory`;
  $("#scope-info").textContent = "every pool";
  fillScopeList(meta.top_pools);
  drawLand(land);
  setupLocations(meta);
  await refresh();
  performance.mark("aegisfwd-drawn");
  document.body.dataset.ready = "1";
}

guarded(init);

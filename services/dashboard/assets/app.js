// heatnet control room: a hash-routed single-page app over /api (no build step).
"use strict";

const $ = (sel, root) => (root || document).querySelector(sel);
const $$ = (sel, root) => Array.from((root || document).querySelectorAll(sel));
const esc = (s) => String(s == null ? "" : s).replace(/[&<>"']/g, (c) =>
  ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
const round2 = (v) => (isFinite(v) ? Math.round(v * 100) / 100 : v);
const fmt = (v, d) => (v == null || !isFinite(v) ? "–" : Number(v).toFixed(d == null ? 1 : d));

let CONFIG = null;
let USER = localStorage.getItem("heatnet-user") || "control-room";
let timer = null;
let pageToken = 0;

async function api(path, body) {
  const opts = body === undefined ? {} : {
    method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body),
  };
  const r = await fetch("/api" + path, opts);
  let data = null;
  try { data = await r.json(); } catch (e) { data = null; }
  return { ok: r.ok, status: r.status, data: data };
}

function setStatus(text, bad) {
  const s = $("#status");
  s.textContent = text;
  s.className = "status" + (bad ? " bad" : "");
}

// Unix ms as China Standard Time (UTC+8), the network's local time.
function cst(ms, withDate) {
  if (!ms || ms <= 0) return "–";
  const d = new Date(ms + 8 * 3600e3).toISOString();
  return withDate ? d.slice(0, 10) + " " + d.slice(11, 16) : d.slice(11, 16);
}

function age(ms, nowMs) {
  const s = Math.max(0, Math.round((nowMs - ms) / 1000));
  if (s < 60) return s + " s";
  if (s < 3600) return Math.floor(s / 60) + " min";
  return (s / 3600).toFixed(1) + " h";
}

// ---- plots ------------------------------------------------------------------

const PALETTE = ["#f85149", "#58a6ff", "#d29922", "#3fb950", "#bc8cff", "#ff7b72", "#79c0ff", "#e3b341", "#56d364", "#d2a8ff"];
const MODE_COLORS = { optimizer: "#3fb950", fallback: "#d29922", override: "#58a6ff", safe: "#f85149", unknown: "#555" };

// series: [{name, color, pts: [[t, v]], dash}]; opts: {hline, hlineLabel, modes: [[t, mode]], unit, stacked, height}
function chart(id, title, series, opts) {
  opts = opts || {};
  const W = 640, H = opts.height || 170, L = 48, R = 110, T = 18, B = 22 + (opts.modes ? 10 : 0);
  const all = [];
  series.forEach((s) => s.pts.forEach((p) => { if (isFinite(p[1])) all.push(p); }));
  const n = all.length;
  let svg = `<svg class="chart" id="${esc(id)}" data-n="${n}" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}">`;
  svg += `<text x="${L}" y="12" style="fill:#dde6ee">${esc(title)}</text>`;
  if (n === 0) {
    return svg + `<text x="${L}" y="${H / 2}">no data yet</text></svg>`;
  }
  let t0 = Math.min(...all.map((p) => p[0])), t1 = Math.max(...all.map((p) => p[0]));
  let v0 = Math.min(...all.map((p) => p[1])), v1 = Math.max(...all.map((p) => p[1]));
  if (opts.hline != null) { v0 = Math.min(v0, opts.hline); v1 = Math.max(v1, opts.hline); }
  if (opts.zero) v0 = Math.min(v0, 0);
  if (t1 === t0) { t0 -= 60e3; t1 += 60e3; }
  if (v1 - v0 < 1e-9) { v0 -= 1; v1 += 1; }
  const pad = (v1 - v0) * 0.08; v0 -= pad; v1 += pad;
  const x = (t) => L + ((t - t0) / (t1 - t0)) * (W - L - R);
  const y = (v) => T + (1 - (v - v0) / (v1 - v0)) * (H - T - B);
  for (let i = 0; i <= 4; i++) {
    const v = v0 + ((v1 - v0) * i) / 4;
    svg += `<line x1="${L}" x2="${W - R}" y1="${y(v)}" y2="${y(v)}" stroke="#2c3844"/>`;
    svg += `<text x="${L - 4}" y="${y(v) + 4}" text-anchor="end">${fmt(v, Math.abs(v1 - v0) < 5 ? 2 : 0)}</text>`;
  }
  for (let i = 0; i <= 3; i++) {
    const t = t0 + ((t1 - t0) * i) / 3;
    svg += `<text x="${x(t)}" y="${H - B + 14}" text-anchor="middle">${cst(t)}</text>`;
  }
  if (opts.hline != null) {
    svg += `<line x1="${L}" x2="${W - R}" y1="${y(opts.hline)}" y2="${y(opts.hline)}" stroke="#f85149" stroke-dasharray="5 4"/>`;
    svg += `<text x="${L + 4}" y="${y(opts.hline) - 4}" style="fill:#f85149">${esc(opts.hlineLabel || opts.hline)}</text>`;
  }
  if (opts.stacked) {
    // Stacked areas: series share time stamps (index-aligned).
    const base = series.length ? series[0].pts.map(() => 0) : [];
    series.forEach((s, k) => {
      const top = s.pts.map((p, i) => base[i] + (isFinite(p[1]) ? p[1] : 0));
      let d = s.pts.map((p, i) => `${i ? "L" : "M"}${x(p[0])},${y(top[i])}`).join("");
      for (let i = s.pts.length - 1; i >= 0; i--) d += `L${x(s.pts[i][0])},${y(base[i])}`;
      svg += `<path d="${d}Z" fill="${s.color || PALETTE[k]}" fill-opacity="0.55" stroke="${s.color || PALETTE[k]}"/>`;
      top.forEach((v, i) => (base[i] = v));
    });
  } else {
    series.forEach((s, k) => {
      const pts = s.pts.filter((p) => isFinite(p[1]));
      if (!pts.length) return;
      let d = "";
      pts.forEach((p, i) => {
        if (s.step && i) d += `L${x(p[0])},${y(pts[i - 1][1])}`;
        d += `${i ? "L" : "M"}${x(p[0])},${y(p[1])}`;
      });
      svg += `<path d="${d}" fill="none" stroke="${s.color || PALETTE[k]}" stroke-width="1.6"${s.dash ? ' stroke-dasharray="4 3"' : ""}/>`;
    });
  }
  series.forEach((s, k) => {
    svg += `<line x1="${W - R + 6}" x2="${W - R + 20}" y1="${T + 6 + k * 14}" y2="${T + 6 + k * 14}" stroke="${s.color || PALETTE[k]}" stroke-width="3"${s.dash ? ' stroke-dasharray="4 3"' : ""}/>`;
    svg += `<text x="${W - R + 24}" y="${T + 10 + k * 14}">${esc(s.name)}</text>`;
  });
  if (opts.modes && opts.modes.length) {
    const yb = H - 10;
    opts.modes.forEach((m, i) => {
      const ta = m[0], tb = i + 1 < opts.modes.length ? opts.modes[i + 1][0] : t1;
      svg += `<rect x="${x(ta)}" y="${yb}" width="${Math.max(1, x(tb) - x(ta))}" height="7" fill="${MODE_COLORS[m[1]] || "#555"}"><title>${esc(m[1])}</title></rect>`;
    });
    svg += `<text x="${W - R + 4}" y="${yb + 7}">mode</text>`;
  }
  return svg + "</svg>";
}

function modeLegend() {
  return `<div class="legend">mode band: ${Object.keys(MODE_COLORS).filter((m) => m !== "unknown")
    .map((m) => `<span><i style="background:${MODE_COLORS[m]}"></i>${m}</span>`).join("")}</div>`;
}

// ---- shared data helpers ------------------------------------------------------

function byId(state) {
  return indexOf(state).byId;
}

// Indexes built once per state (the city has tens of thousands of nodes).
const INDEX = new WeakMap();

function indexOf(state) {
  let ix = INDEX.get(state);
  if (!ix) {
    ix = { byId: {}, kids: {} };
    state.nodes.forEach((n) => {
      ix.byId[n.node_id] = n;
      if (n.parent_id) (ix.kids[n.parent_id] = ix.kids[n.parent_id] || []).push(n);
    });
    INDEX.set(state, ix);
  }
  return ix;
}

function childrenOf(state, id) {
  return indexOf(state).kids[id] || [];
}

function comfortShare(state, subId) {
  const b = childrenOf(state, subId).filter((n) => n.readings.room_temp_c != null);
  if (!b.length) return null;
  return b.filter((n) => n.readings.room_temp_c >= 18).length / b.length;
}

const SEV_RANK = { info: 1, warning: 2, critical: 3 };

// Highest severity of the active alarms on each node id, built once per alarm list.
const ALARM_INDEX = new WeakMap();

function alarmLevel(alarms, state, id) {
  let sev = ALARM_INDEX.get(alarms);
  if (!sev) {
    sev = {};
    alarms.forEach((a) => { if (a.state !== "cleared") sev[a.node_id] = Math.max(sev[a.node_id] || 0, SEV_RANK[a.severity] || 1); });
    ALARM_INDEX.set(alarms, sev);
  }
  let lvl = sev[id] || 0;
  childrenOf(state, id).forEach((c) => (lvl = Math.max(lvl, sev[c.node_id] || 0)));
  const n = indexOf(state).byId[id];
  if (n) lvl = Math.max(lvl, sev[n.gateway_id] || 0);
  return lvl;
}

function tempColor(t) {
  if (t == null) return "#555";
  const f = Math.max(0, Math.min(1, (t - 40) / 80)); // 40..120 °C, blue → red
  const r = Math.round(60 + 195 * f), b = Math.round(230 - 190 * f), g = Math.round(110 + 40 * (1 - Math.abs(f - 0.5) * 2));
  return `rgb(${r},${g},${b})`;
}

function comfortColor(share) {
  if (share == null) return "#555";
  if (share >= 0.999) return "#3fb950";
  if (share >= 0.8) return "#d29922";
  return "#f85149";
}

const ALARM_COLORS = ["#3fb950", "#58a6ff", "#d29922", "#f85149"];

// ---- pages --------------------------------------------------------------------

async function pageNetwork(main, token) {
  const colorBy = sessionStorage.getItem("color-by") || "supply";
  const [st, al] = await Promise.all([api("/state"), api("/alarms")]);
  if (token !== pageToken) return;
  // Without the optimizer the map is still drawn, with no live data.
  const state = st.ok ? st.data : { nodes: [], gateways: [], now_ms: 0, active_alarms: 0 };
  const alarms = al.ok ? al.data : [];
  const nodes = byId(state);
  const layout = CONFIG.layout;
  let html = `<h2>Network ${layout ? esc(layout.network) : ""}</h2>`;
  html += `<div class="row"><div class="panel">`;
  html += `<label>Colour by <select id="color-by">
    <option value="supply"${colorBy === "supply" ? " selected" : ""}>supply temperature (plants: primary, substations: secondary)</option>
    <option value="comfort"${colorBy === "comfort" ? " selected" : ""}>comfort (share ≥ 18 °C)</option>
    <option value="alarm"${colorBy === "alarm" ? " selected" : ""}>alarm state</option></select></label>`;
  const color = (site) => {
    const n = nodes[site.id];
    if (colorBy === "comfort") return site.kind === "plant" ? "#888" : comfortColor(comfortShare(state, site.id));
    if (colorBy === "alarm") return ALARM_COLORS[alarmLevel(alarms, state, site.id)];
    if (!n) return "#555";
    // Plants by what they send, substations by what their buildings get.
    return tempColor(site.kind === "plant" ? n.readings.supply_temp_c : n.readings.secondary_supply_temp_c);
  };
  if (layout && layout.sites.length) {
    const xs = layout.sites.map((s) => s.x_m).concat(layout.lines.flatMap((l) => [l.from[0], l.to[0]]));
    const ys = layout.sites.map((s) => s.y_m).concat(layout.lines.flatMap((l) => [l.from[1], l.to[1]]));
    const minx = Math.min(...xs), maxx = Math.max(...xs), miny = Math.min(...ys), maxy = Math.max(...ys);
    const W = 620, H = 520, P = 50;
    const sc = Math.min((W - 2 * P) / Math.max(1, maxx - minx), (H - 2 * P) / Math.max(1, maxy - miny));
    const X = (v) => P + (v - minx) * sc + ((W - 2 * P) - (maxx - minx) * sc) / 2;
    const Y = (v) => H - P - (v - miny) * sc - ((H - 2 * P) - (maxy - miny) * sc) / 2;
    let svg = `<svg class="map" id="map" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}">`;
    layout.lines.forEach((l) => {
      svg += `<line x1="${X(l.from[0])}" y1="${Y(l.from[1])}" x2="${X(l.to[0])}" y2="${Y(l.to[1])}" stroke="#4a5a6c" stroke-width="${layout.sites.length > 40 ? 1.5 : 3}"/>`;
    });
    // Big networks: small dots, labels on plants only (hover for a substation's name).
    const big = layout.sites.length > 40;
    const r = big ? (layout.sites.length > 500 ? 3 : 6) : 12;
    layout.sites.forEach((s) => {
      const n = nodes[s.id];
      const tip = n ? `${s.id}: ${n.online ? n.mode : "lost"}, supply ${fmt(n.readings.supply_temp_c)} °C` : s.id;
      if (s.kind === "plant") {
        svg += `<rect class="site" data-site="${esc(s.id)}" x="${X(s.x_m) - 13}" y="${Y(s.y_m) - 13}" width="26" height="26" fill="${color(s)}"><title>${esc(tip)}</title></rect>`;
      } else {
        svg += `<circle class="site" data-site="${esc(s.id)}" cx="${X(s.x_m)}" cy="${Y(s.y_m)}" r="${r}" fill="${color(s)}"${big ? ' style="stroke-width:0.5"' : ""}${n && !n.online ? ' stroke="#f85149" stroke-dasharray="3 2"' : ""}><title>${esc(tip)}</title></circle>`;
      }
      if (!big || s.kind === "plant") svg += `<text class="label" x="${X(s.x_m) + 16}" y="${Y(s.y_m) + 4}">${esc(s.id)}</text>`;
    });
    html += `<br>${svg}</svg>`;
    if (colorBy === "supply") html += `<div class="legend"><span><i style="background:${tempColor(40)}"></i>40 °C</span><span><i style="background:${tempColor(80)}"></i>80 °C</span><span><i style="background:${tempColor(120)}"></i>120 °C</span><span><i style="background:#555"></i>no data</span></div>`;
    if (colorBy === "comfort") html += `<div class="legend"><span><i style="background:#3fb950"></i>all ≥ 18 °C</span><span><i style="background:#d29922"></i>≥ 80 %</span><span><i style="background:#f85149"></i>&lt; 80 %</span></div>`;
    if (colorBy === "alarm") html += `<div class="legend"><span><i style="background:#3fb950"></i>none</span><span><i style="background:#58a6ff"></i>info</span><span><i style="background:#d29922"></i>warning</span><span><i style="background:#f85149"></i>critical</span></div>`;
  } else {
    html += `<p class="muted">No network file configured (--network): map not drawn.</p>`;
  }
  html += `</div><div class="panel"><table id="substations"><tr><th>node</th><th>status</th><th>mode</th><th>supply °C</th><th>sec. supply °C</th><th>setpoint °C</th><th>comfort</th><th>alarms</th></tr>`;
  state.nodes.filter((n) => n.kind !== "building").forEach((n) => {
    const share = n.kind === "substation" ? comfortShare(state, n.node_id) : null;
    const lvl = alarmLevel(alarms, state, n.node_id);
    html += `<tr data-node="${esc(n.node_id)}" data-kind="${n.kind}"><td><a href="#/node/${encodeURIComponent(n.node_id)}">${esc(n.node_id)}</a> <span class="muted">${n.kind}</span></td>
      <td class="${n.online ? "" : "offline"}">${n.online ? "online" : "lost"}</td><td class="mode-${n.mode}">${n.mode}</td>
      <td class="num">${fmt(n.readings.supply_temp_c)}</td><td class="num">${fmt(n.readings.secondary_supply_temp_c)}</td>
      <td class="num setpoint">${fmt(n.commanded_setpoint_c)}</td>
      <td class="num">${share == null ? "–" : Math.round(share * 100) + " %"}</td>
      <td>${lvl ? `<span style="color:${ALARM_COLORS[lvl]}">●</span>` : ""}</td></tr>`;
  });
  html += `</table><p class="muted">optimizer time ${cst(state.now_ms, true)} · ${state.gateways.filter((g) => g.online).length}/${state.gateways.length} gateways online · ${state.active_alarms} active alarms</p></div></div>`;
  main.innerHTML = html;
  $("#color-by").onchange = (e) => { sessionStorage.setItem("color-by", e.target.value); render(); };
  $$("#map .site").forEach((el) => (el.onclick = () => (location.hash = "#/node/" + encodeURIComponent(el.dataset.site))));
  if (!st.ok) throw new Error((st.data && st.data.error) || "no answer");
}

function series(samples, key) {
  return samples.map((s) => [s.t_ms, s.readings[key] != null ? s.readings[key] : NaN]);
}

function modes(samples) {
  const out = [];
  samples.forEach((s) => { if (!out.length || out[out.length - 1][1] !== s.mode) out.push([s.t_ms, s.mode]); });
  return out;
}

async function pageNode(main, token, id) {
  const [st, h] = await Promise.all([api("/state"), api("/node/" + encodeURIComponent(id) + "/history")]);
  if (token !== pageToken) return;
  if (!st.ok) throw new Error(st.data && st.data.error);
  const state = st.data, nodes = byId(state), n = nodes[id];
  if (!n) { main.innerHTML = `<h2>${esc(id)}</h2><p class="error">unknown node</p>`; return; }
  const S = h.data.samples;
  let html = `<h2 id="node-title">${esc(n.kind)} ${esc(id)}</h2>`;
  if (n.parent_id) html += `<p>part of <a href="#/node/${encodeURIComponent(n.parent_id)}">${esc(n.parent_id)}</a></p>`;
  html += `<p>${n.online ? "online" : '<span class="offline">lost</span>'} · mode <b class="mode-${n.mode}">${n.mode}</b> · gateway ${esc(n.gateway_id)}${n.group ? " · group " + esc(n.group) : ""} · readings of ${cst(n.reading_time_ms, true)} · loop setpoint ${fmt(n.readings.setpoint_c)} °C · optimizer's last setpoint ${fmt(n.commanded_setpoint_c)} °C</p>`;
  if (n.kind !== "building") {
    html += `<p><b>Override the setpoint:</b> supply <input class="num" id="ovr-temp" value="${esc(OVR.temp)}"> °C for
      <input class="num" id="ovr-hours" value="${esc(OVR.hours)}"> h (network time) why <input id="ovr-reason" value="${esc(OVR.reason)}">
      <button id="ovr-set">override</button> <button id="ovr-clear">back to the optimizer</button></p><p id="ovr-msg" class="${OVR.bad ? "error" : "okmsg"}">${esc(OVR.msg)}</p>`;
  }
  html += `<div class="row"><div class="panel">`;
  const M = modes(S);
  // The setpoint the loop followed (reported with its readings), else the commanded one.
  const sp = S.map((s) => [s.t_ms, s.readings.setpoint_c != null ? s.readings.setpoint_c : s.setpoint_c != null ? s.setpoint_c : NaN]);
  if (n.kind === "substation") {
    html += chart("trend-temps", "Temperatures °C (primary and secondary)", [
      { name: "prim. supply", pts: series(S, "supply_temp_c") },
      { name: "prim. return", pts: series(S, "return_temp_c") },
      { name: "sec. supply", pts: series(S, "secondary_supply_temp_c") },
      { name: "sec. return", pts: series(S, "secondary_return_temp_c") },
      { name: "setpoint", pts: sp, step: true, dash: true, color: "#ffffff" },
    ], { modes: M, height: 220 });
    html += modeLegend();
    html += chart("trend-flow", "Flow kg/s", [
      { name: "primary", pts: series(S, "flow_kg_s") },
      { name: "secondary", pts: series(S, "secondary_flow_kg_s") },
    ], { zero: true });
    html += chart("trend-valve", "Valve position", [{ name: "valve", pts: series(S, "valve_position") }], { zero: true });
    html += chart("trend-heat", "Heat kW", [{ name: "heat", pts: S.map((s) => [s.t_ms, s.readings.heat_w != null ? s.readings.heat_w / 1e3 : NaN]) }], { zero: true });
    html += chart("trend-outdoor", "Outdoor °C", [{ name: "outdoor", pts: series(S, "outdoor_temp_c") }]);
    html += `</div><div class="panel">`;
    const kids = childrenOf(state, id);
    const hs = await Promise.all(kids.map((k) => api("/node/" + encodeURIComponent(k.node_id) + "/history")));
    if (token !== pageToken) return;
    html += chart("trend-rooms", "Rooms °C against 18 °C", kids.map((k, i) => ({ name: k.node_id, pts: series(hs[i].data.samples, "room_temp_c") })), { hline: 18, hlineLabel: "18 °C", height: 260 });
    html += `<h3>Buildings</h3><table id="buildings"><tr><th>building</th><th>room °C</th><th>flow kg/s</th><th>return °C</th><th>mode</th></tr>`;
    kids.forEach((k) => {
      const t = k.readings.room_temp_c;
      html += `<tr data-node="${esc(k.node_id)}"><td><a href="#/node/${encodeURIComponent(k.node_id)}">${esc(k.node_id)}</a></td><td class="num ${t != null && t < 18 ? "error" : ""}">${fmt(t)}</td><td class="num">${fmt(k.readings.building_flow_kg_s, 2)}</td><td class="num">${fmt(k.readings.building_return_temp_c)}</td><td class="mode-${k.mode}">${k.mode}</td></tr>`;
    });
    html += `</table>`;
  } else if (n.kind === "building") {
    html += chart("trend-rooms", "Room °C against 18 °C", [{ name: "room", pts: series(S, "room_temp_c") }], { hline: 18, hlineLabel: "18 °C", modes: M, height: 220 });
    html += modeLegend();
    html += chart("trend-flow", "Flow kg/s", [{ name: "building flow", pts: series(S, "building_flow_kg_s") }], { zero: true });
    html += chart("trend-temps", "Return °C", [{ name: "building return", pts: series(S, "building_return_temp_c") }]);
  } else {
    html += chart("trend-temps", "Temperatures °C", [
      { name: "supply", pts: series(S, "supply_temp_c") },
      { name: "return", pts: series(S, "return_temp_c") },
      { name: "setpoint", pts: sp, step: true, dash: true, color: "#ffffff" },
    ], { modes: M, height: 220 });
    html += modeLegend();
    html += chart("trend-flow", "Flow kg/s", [{ name: "flow", pts: series(S, "flow_kg_s") }], { zero: true });
    html += chart("trend-heat", "Heat MW", [{ name: "heat", pts: S.map((s) => [s.t_ms, s.readings.heat_w != null ? s.readings.heat_w / 1e6 : NaN]) }], { zero: true });
  }
  html += `<h3>Latest readings</h3><table id="readings">${Object.keys(n.readings).map((k) => `<tr><td>${esc(k)}</td><td class="num">${fmt(n.readings[k], 2)}</td></tr>`).join("")}</table>`;
  html += `<p class="muted">${S.length} samples: the optimizer's stored telemetry, read when the dashboard started, then live.</p></div></div>`;
  main.innerHTML = html;
  if (n.kind !== "building") wireOverride(id);
}

// The override form keeps what the user typed across refreshes.
const OVR = { temp: "", hours: "2", reason: "", msg: "", bad: false };

function wireOverride(id) {
  $("#ovr-temp").oninput = (e) => (OVR.temp = e.target.value);
  $("#ovr-hours").oninput = (e) => (OVR.hours = e.target.value);
  $("#ovr-reason").oninput = (e) => (OVR.reason = e.target.value);
  const done = (r, what) => {
    OVR.bad = !r.ok;
    OVR.msg = r.ok ? `${what} (command ${r.data.command_id})` : (r.data && r.data.error) || "refused";
    $("#ovr-msg").textContent = OVR.msg;
    $("#ovr-msg").className = OVR.bad ? "error" : "okmsg";
  };
  $("#ovr-set").onclick = async () => {
    const r = await api("/override/" + encodeURIComponent(id), {
      supply_temp_c: parseFloat(OVR.temp), duration_s: Math.round(parseFloat(OVR.hours) * 3600), author: USER, reason: OVR.reason });
    done(r, "override sent");
  };
  $("#ovr-clear").onclick = async () => {
    const r = await api("/override/" + encodeURIComponent(id) + "/clear", { author: USER });
    done(r, "override cleared");
  };
}

// Curve editor state survives refreshes while the user edits.
let EDIT = null;
// The last save's answer, shown until the next save or refusal.
let SAVED = { group: null, msg: "" };

function curveValue(points, lo, hi, tOut) {
  if (!points.length) return NaN;
  let v;
  const i = points.findIndex((p) => p[0] >= tOut);
  if (i === -1) v = points[points.length - 1][1];
  else if (i === 0) v = points[0][1];
  else {
    const a = points[i - 1], b = points[i];
    v = a[1] + ((tOut - a[0]) / (b[0] - a[0])) * (b[1] - a[1]);
  }
  return Math.max(lo, Math.min(hi, v));
}

async function pageCurves(main, token, group) {
  const st = await api("/state");
  if (token !== pageToken) return;
  if (!st.ok) throw new Error(st.data && st.data.error);
  const state = st.data;
  const groups = Array.from(new Set(state.nodes.filter((n) => n.group).map((n) => n.group))).sort();
  group = group || groups[0];
  if (!group) { main.innerHTML = "<h2>Supply curves</h2><p>No substation groups yet.</p>"; return; }
  const c = await api("/curve/" + encodeURIComponent(group));
  if (token !== pageToken) return;
  if (!c.ok) { main.innerHTML = `<h2>Supply curves</h2><p class="error">${esc(c.data && c.data.error)}</p>`; return; }
  const cur = c.data.current;
  if (!EDIT || EDIT.group !== group || (!EDIT.dirty && EDIT.version !== cur.version)) {
    EDIT = { group: group, version: cur.version, dirty: false, points: cur.points.map((p) => p.slice()),
      min: cur.min_supply_temp_c, max: cur.max_supply_temp_c, error: null, errIndex: null };
  }
  const focus = document.activeElement && document.activeElement.id;
  const subs = state.nodes.filter((n) => n.kind === "substation" && n.group === group);
  let html = `<h2>Supply curves</h2><p>group <select id="curve-group">${groups.map((g) => `<option value="${esc(g)}"${g === group ? " selected" : ""}>${esc(g)}</option>`).join("")}</select> · version ${cur.version} by ${esc(cur.author)} ${cst(cur.created_at_ms, true)}</p>`;
  html += `<div class="row"><div class="panel">${curveSvg()}<p class="muted">Drag a point, or type below. Dashed: the curve's limits.</p></div>`;
  html += `<div class="panel"><table id="curve-points"><tr><th>#</th><th>outdoor °C</th><th>supply °C</th><th></th></tr>`;
  EDIT.points.forEach((p, i) => {
    const bad = EDIT.errIndex === i;
    html += `<tr data-i="${i}"><td>${i}</td><td><input class="num pt-out${bad ? " bad" : ""}" data-i="${i}" id="pt-out-${i}" value="${round2(p[0])}"></td><td><input class="num pt-sup${bad ? " bad" : ""}" data-i="${i}" id="pt-sup-${i}" value="${round2(p[1])}"></td><td class="pt-error error" data-i="${i}" id="pt-error-${i}">${bad ? esc(EDIT.error) : ""}</td></tr>`;
  });
  html += `</table><button id="pt-add">add point</button> <button id="pt-del">remove last</button>`;
  html += `<p>limits: min <input class="num" id="curve-min" value="${EDIT.min}"> max <input class="num" id="curve-max" value="${EDIT.max}"> °C</p>`;
  html += `<p>who <input id="curve-author" value="${esc(USER)}"> why <input id="curve-reason" size="30" value="${esc(EDIT.reason || "")}"></p>`;
  html += `<button id="curve-save">Save curve</button> <button id="curve-revert">Revert</button>`;
  html += `<p id="curve-error" class="error">${EDIT.error && EDIT.errIndex == null ? esc(EDIT.error) : EDIT.error ? "refused: see point " + EDIT.errIndex : ""}</p><p id="curve-msg" class="okmsg">${!EDIT.error && SAVED.group === group ? esc(SAVED.msg) : ""}</p>`;
  html += `<h3>Setpoints now</h3><table id="preview"><tr><th>substation</th><th>outdoor °C</th><th>setpoint now °C</th><th>this curve °C <span class="muted">(before the room trim)</span></th></tr>`;
  subs.forEach((n) => {
    const t = n.readings.outdoor_temp_c;
    html += `<tr data-node="${esc(n.node_id)}"><td><a href="#/node/${encodeURIComponent(n.node_id)}">${esc(n.node_id)}</a></td><td class="num">${fmt(t)}</td><td class="num setpoint">${fmt(n.commanded_setpoint_c)}</td><td class="num preview">${t == null ? "–" : fmt(curveValue(EDIT.points, EDIT.min, EDIT.max, t))}</td></tr>`;
  });
  html += `</table></div></div>`;
  html += `<div class="panel"><h3>History</h3><table id="curve-history"><tr><th>version</th><th>when</th><th>who</th><th>why</th><th>points (outdoor → supply)</th></tr>`;
  c.data.history.slice().reverse().forEach((v) => {
    html += `<tr data-version="${v.version}"><td>${v.version}</td><td>${cst(v.created_at_ms, true)}</td><td>${esc(v.author)}</td><td>${esc(v.reason)}</td><td>${v.points.map((p) => `${round2(p[0])}→${round2(p[1])}`).join(", ")}</td></tr>`;
  });
  html += `</table></div>`;
  main.innerHTML = html;
  if (focus && $("#" + focus)) $("#" + focus).focus();
  wireCurveEditor(group);
}

const CV = { W: 460, H: 320, L: 44, R: 12, T: 12, B: 30, tMin: -25, tMax: 20, vMin: 20, vMax: 140 };
const cvX = (t) => CV.L + ((t - CV.tMin) / (CV.tMax - CV.tMin)) * (CV.W - CV.L - CV.R);
const cvY = (v) => CV.T + (1 - (v - CV.vMin) / (CV.vMax - CV.vMin)) * (CV.H - CV.T - CV.B);
const cvT = (px) => CV.tMin + ((px - CV.L) / (CV.W - CV.L - CV.R)) * (CV.tMax - CV.tMin);
const cvV = (py) => CV.vMin + (1 - (py - CV.T) / (CV.H - CV.T - CV.B)) * (CV.vMax - CV.vMin);

function curveSvg() {
  let s = `<svg id="curve-plot" width="${CV.W}" height="${CV.H}" viewBox="0 0 ${CV.W} ${CV.H}">`;
  for (let v = CV.vMin; v <= CV.vMax; v += 20) s += `<line x1="${CV.L}" x2="${CV.W - CV.R}" y1="${cvY(v)}" y2="${cvY(v)}" stroke="#2c3844"/><text x="${CV.L - 4}" y="${cvY(v) + 4}" text-anchor="end">${v}</text>`;
  for (let t = CV.tMin; t <= CV.tMax; t += 5) s += `<text x="${cvX(t)}" y="${CV.H - 12}" text-anchor="middle">${t}</text>`;
  s += `<text x="${CV.W - CV.R}" y="${CV.H - 1}" text-anchor="end">outdoor °C</text>`;
  [EDIT.min, EDIT.max].forEach((v) => { if (isFinite(v)) s += `<line x1="${CV.L}" x2="${CV.W - CV.R}" y1="${cvY(v)}" y2="${cvY(v)}" stroke="#d29922" stroke-dasharray="6 4"/><text x="${CV.W - CV.R - 2}" y="${cvY(v) - 3}" text-anchor="end" style="fill:#d29922">${v}</text>`; });
  const P = EDIT.points.filter((p) => isFinite(p[0]) && isFinite(p[1]));
  if (P.length) {
    const ext = [[CV.tMin, P[0][1]]].concat(P, [[CV.tMax, P[P.length - 1][1]]]);
    s += `<path d="${ext.map((p, i) => `${i ? "L" : "M"}${cvX(p[0])},${cvY(p[1])}`).join("")}" fill="none" stroke="#58a6ff" stroke-width="2"/>`;
  }
  EDIT.points.forEach((p, i) => {
    if (isFinite(p[0]) && isFinite(p[1])) s += `<circle class="pt" data-i="${i}" cx="${cvX(p[0])}" cy="${cvY(p[1])}" r="7" fill="${EDIT.errIndex === i ? "#f85149" : "#58a6ff"}" style="cursor:grab"/>`;
  });
  return s + "</svg>";
}

function wireCurveEditor(group) {
  const redraw = () => { $("#curve-plot").outerHTML = curveSvg(); wireDrag(); };
  const edited = () => { EDIT.dirty = true; };
  $("#curve-group").onchange = (e) => { EDIT = null; location.hash = "#/curves/" + encodeURIComponent(e.target.value); };
  $$("input.pt-out, input.pt-sup").forEach((el) => {
    el.oninput = () => {
      const i = Number(el.dataset.i), col = el.classList.contains("pt-out") ? 0 : 1;
      EDIT.points[i][col] = parseFloat(el.value);
      edited(); redraw();
    };
  });
  $("#curve-min").oninput = (e) => { EDIT.min = parseFloat(e.target.value); edited(); redraw(); };
  $("#curve-max").oninput = (e) => { EDIT.max = parseFloat(e.target.value); edited(); redraw(); };
  $("#curve-reason").oninput = (e) => { EDIT.reason = e.target.value; edited(); };
  $("#curve-author").oninput = (e) => { USER = e.target.value; localStorage.setItem("heatnet-user", USER); };
  $("#pt-add").onclick = () => {
    const last = EDIT.points[EDIT.points.length - 1] || [0, 60];
    EDIT.points.push([last[0] + 5, last[1]]); edited(); render();
  };
  $("#pt-del").onclick = () => { EDIT.points.pop(); edited(); render(); };
  $("#curve-revert").onclick = () => { EDIT = null; render(); };
  $("#curve-save").onclick = async () => {
    const body = { points: EDIT.points, min_supply_temp_c: EDIT.min, max_supply_temp_c: EDIT.max,
      author: $("#curve-author").value, reason: $("#curve-reason").value };
    const r = await api("/curve/" + encodeURIComponent(group), body);
    if (r.ok) {
      EDIT = null;
      SAVED = { group: group, msg: `saved as version ${r.data.version}` };
      render();
    } else {
      EDIT.error = (r.data && r.data.error) || "refused (" + r.status + ")";
      EDIT.errIndex = r.data && r.data.point_index != null ? r.data.point_index : null;
      SAVED = { group: null, msg: "" };
      render();
    }
  };
  wireDrag();
}

// A point being dragged on the curve plot (refreshes wait for it).
let DRAGGING = false;

function wireDrag() {
  const svg = $("#curve-plot");
  if (!svg) return;
  let drag = null;
  $$("circle.pt", svg).forEach((c) => {
    c.onmousedown = (e) => { drag = Number(c.dataset.i); DRAGGING = true; e.preventDefault(); };
  });
  svg.onmousemove = (e) => {
    if (drag == null) return;
    const r = svg.getBoundingClientRect();
    const t = Math.round(cvT(e.clientX - r.left) * 2) / 2, v = Math.round(cvV(e.clientY - r.top) * 2) / 2;
    EDIT.points[drag] = [t, v];
    EDIT.dirty = true;
    const c = $(`circle.pt[data-i="${drag}"]`, svg);
    c.setAttribute("cx", cvX(t)); c.setAttribute("cy", cvY(v));
    const a = $("#pt-out-" + drag), b = $("#pt-sup-" + drag);
    if (a) a.value = t;
    if (b) b.value = v;
  };
  svg.onmouseup = svg.onmouseleave = () => { DRAGGING = false; if (drag != null) { drag = null; render(); } };
}

async function pageAlarms(main, token) {
  const [a, h, st] = await Promise.all([api("/alarms"), api("/alarms?history=true"), api("/state")]);
  if (token !== pageToken) return;
  if (!a.ok) throw new Error(a.data && a.data.error);
  const now = st.ok ? st.data.now_ms : Date.now();
  const rank = (x) => -(SEV_RANK[x.severity] || 0);
  const active = a.data.slice().sort((x, y) => rank(x) - rank(y) || y.raised_at_ms - x.raised_at_ms);
  let html = `<h2>Alarms</h2><div class="panel"><h3>Active (${active.length})</h3><table id="alarms"><tr><th>severity</th><th>age</th><th>where</th><th>kind</th><th>message</th><th>state</th><th></th></tr>`;
  active.forEach((x) => {
    html += `<tr data-alarm="${x.alarm_id}" data-kind="${esc(x.kind)}" data-node="${esc(x.node_id)}" data-state="${x.state}"><td class="sev-${x.severity}">${x.severity}</td><td>${age(x.raised_at_ms, now)}</td><td><a href="#/node/${encodeURIComponent(x.node_id)}">${esc(x.node_id)}</a></td><td>${esc(x.kind)}</td><td>${esc(x.message)}</td>
      <td>${x.state}${x.state === "acknowledged" ? " by " + esc(x.acknowledged_by) : ""}</td><td>${x.state === "raised" ? `<button class="ack" data-id="${x.alarm_id}">acknowledge</button>` : ""}</td></tr>`;
  });
  html += `</table></div><div class="panel"><h3>History (cleared)</h3><table id="alarm-history"><tr><th>severity</th><th>raised</th><th>cleared</th><th>where</th><th>kind</th><th>message</th><th>acknowledged</th></tr>`;
  (h.ok ? h.data : []).filter((x) => x.state === "cleared").sort((x, y) => y.cleared_at_ms - x.cleared_at_ms).slice(0, 200).forEach((x) => {
    html += `<tr data-alarm="${x.alarm_id}"><td class="sev-${x.severity}">${x.severity}</td><td>${cst(x.raised_at_ms, true)}</td><td>${cst(x.cleared_at_ms, true)}</td><td>${esc(x.node_id)}</td><td>${esc(x.kind)}</td><td>${esc(x.message)}</td><td>${x.acknowledged_by ? esc(x.acknowledged_by) : "–"}</td></tr>`;
  });
  html += `</table></div>`;
  main.innerHTML = html;
  $$("button.ack").forEach((b) => (b.onclick = async () => {
    b.disabled = true;
    const r = await api(`/alarms/${b.dataset.id}/ack`, { user: USER });
    if (!r.ok) alert((r.data && r.data.error) || "acknowledge failed");
    render();
  }));
}

// The optimizer's plan over its horizon (GetPlan): planned heat per plant
// (stacked) and supply temperatures, with the critical substation and the head.
function planHtml(r) {
  if (!r || !r.ok) return `<p class="muted">No plan: ${esc(r && r.data && r.data.error)}</p>`;
  const p = r.data;
  if (!p.plants || !p.plants.length || !p.step_ms) return `<p class="muted">${esc(p.note || "no plan yet")} (mode ${esc(p.mode)})</p>`;
  const t0 = p.planned_at_ms, step = p.step_ms;
  const heat = p.plants.map((pl) => ({ name: pl.plant_id + (pl.lead ? " (lead)" : "") + (pl.available ? "" : " (out)"), pts: pl.heat_w.map((w, i) => [t0 + i * step, w / 1e6]) }));
  const temps = p.plants.map((pl) => ({ name: pl.plant_id, pts: pl.supply_temp_c.map((c, i) => [t0 + i * step, c]) }));
  let h = `<p>Mode <b>${esc(p.mode)}</b>, planned at ${new Date(t0).toISOString().slice(0, 16).replace("T", " ")} (network time), weather from ${p.weather_forecast ? "the forecast" : "persistence of the measured outdoor temperature"}; cost over the horizon ${fmt(p.cost_yuan, 0)} yuan, losses ${fmt(100 * p.loss_share, 1)} %.</p>`;
  h += `<p>Critical substation <b>${esc(p.critical_substation_id || "–")}</b>: ${p.critical_diff_pressure_pa == null ? "–" : fmt(p.critical_diff_pressure_pa / 1000, 0)} kPa (target ${fmt(p.diff_pressure_target_pa / 1000, 0)} kPa); lead plant ${esc(p.lead_plant_id || "–")} holds ${p.head_setpoint_pa == null ? "–" : fmt(p.head_setpoint_pa / 1000, 0)} kPa.${p.room_target_c == null ? "" : ` Coldest rooms aimed at ${fmt(p.room_target_c, 1)} °C${p.room_target_c > 19.05 ? " (raised ahead of a shortage)" : ""}.`}${p.curve_sun_k == null ? "" : ` Curves read ${fmt(p.curve_sun_k, 1)} K milder than the outdoor temperature for the sun of the next 2 h.`}</p>`;
  h += chart("plan-heat", "Planned heat per plant, MW (stacked)", heat, { stacked: true, zero: true, height: 200 });
  h += chart("plan-supply", "Planned plant supply temperature, °C", temps, { height: 180 });
  return h;
}

async function pagePlants(main, token) {
  const st = await api("/state");
  if (token !== pageToken) return;
  if (!st.ok) throw new Error(st.data && st.data.error);
  const plants = st.data.nodes.filter((n) => n.kind === "plant");
  const hs = await Promise.all(plants.map((p) => api("/node/" + encodeURIComponent(p.node_id) + "/history")));
  const plan = await api("/plan");
  if (token !== pageToken) return;
  const price = {};
  ((CONFIG.layout && CONFIG.layout.sites) || []).forEach((s) => { if (s.kind === "plant") price[s.id] = s.heat_price_yuan_per_gj; });
  // Align every plant on the first plant's time stamps (one sample per scan).
  const times = hs.length ? hs[0].data.samples.map((s) => s.t_ms) : [];
  const at = (samples, t) => { const s = samples.find((x) => x.t_ms >= t); return s && s.readings.heat_w != null ? s.readings.heat_w / 1e6 : NaN; };
  const stacked = plants.map((p, i) => ({ name: p.node_id, pts: times.map((t) => [t, at(hs[i].data.samples, t)]) }));
  const cost = [{ name: "all plants", pts: times.map((t) => [t, plants.reduce((acc, p, i) => acc + (at(hs[i].data.samples, t) || 0) * 3.6 * (price[p.node_id] || 0), 0)]) }];
  let html = `<h2>Plants</h2><div class="row"><div class="panel">`;
  html += chart("dispatch", "Dispatch: heat output per plant, MW (stacked)", stacked, { stacked: true, zero: true, height: 240 });
  html += chart("cost", "Cost rate, yuan/h", cost, { zero: true });
  html += `</div><div class="panel"><table id="plants"><tr><th>plant</th><th>status</th><th>mode</th><th>supply °C</th><th>setpoint °C</th><th>heat MW</th><th>price yuan/GJ</th><th>cost yuan/h</th></tr>`;
  plants.forEach((p) => {
    const mw = p.readings.heat_w != null ? p.readings.heat_w / 1e6 : null;
    html += `<tr data-node="${esc(p.node_id)}"><td><a href="#/node/${encodeURIComponent(p.node_id)}">${esc(p.node_id)}</a></td><td>${p.online ? "online" : '<span class="offline">lost</span>'}</td><td class="mode-${p.mode}">${p.mode}</td><td class="num">${fmt(p.readings.supply_temp_c)}</td><td class="num">${fmt(p.commanded_setpoint_c)}</td><td class="num">${fmt(mw, 2)}</td><td class="num">${fmt(price[p.node_id])}</td><td class="num">${mw == null ? "–" : fmt(mw * 3.6 * (price[p.node_id] || 0), 0)}</td></tr>`;
  });
  html += `</table><h3>Plan ahead</h3><div id="plan">${planHtml(plan)}</div></div></div>`;
  main.innerHTML = html;
}

// The simulator has no weather query: the panel remembers the last answer.
let WEATHER_MSG = "";

async function pageSim(main, token) {
  const s = await api("/sim");
  if (token !== pageToken) return;
  if (!s.ok) throw new Error(s.data && s.data.error);
  if (!s.data.enabled) { main.innerHTML = `<h2>Simulator</h2><p>This dashboard runs without a simulator (start it with --simulator).</p>`; return; }
  const d = s.data;
  const keep = {};
  ["fault-kind", "fault-device", "fault-metric", "fault-magnitude", "clock-speed"].forEach((id) => { const el = $("#" + id); if (el) keep[id] = el.value; });
  let html = `<div class="simbanner" id="sim-banner">SIMULATOR: these controls change the simulated world, not a real network.</div>`;
  html += `<div class="row"><div class="panel"><h3>Clock</h3><p id="sim-clock">network time ${cst(d.clock.time_ms, true)} · speed ×${fmt(d.clock.speed, 0)}${d.clock.paused ? " · paused" : ""}</p>
    <p>speed <input class="num" id="clock-speed" value="${keep["clock-speed"] || d.clock.speed}"> <button id="clock-set">set speed</button> <button id="clock-pause">${d.clock.paused ? "resume" : "pause"}</button></p>
    <h3>Weather</h3><p><button id="cold-snap">cold snap (−15 K)</button> <button id="weather-reset">normal weather</button> <span id="weather-msg" class="muted">${esc(WEATHER_MSG)}</span></p></div>`;
  html += `<div class="panel"><h3>Inject a fault</h3><p>kind <select id="fault-kind">${CONFIG.fault_kinds.map((k) => `<option value="${k}"${k === (keep["fault-kind"] || "sensor_dropout") ? " selected" : ""}>${k}</option>`).join("")}</select>
    device <select id="fault-device">${d.devices.map((k) => `<option value="${esc(k)}"${k === keep["fault-device"] ? " selected" : ""}>${esc(k)}</option>`).join("")}</select>
    metric <select id="fault-metric"><option value="">(none)</option>${CONFIG.metrics.map((k) => `<option value="${k}"${k === (keep["fault-metric"] || "secondary_supply_temp_c") ? " selected" : ""}>${k}</option>`).join("")}</select>
    magnitude <input class="num" id="fault-magnitude" value="${keep["fault-magnitude"] || "0"}"> <button id="fault-inject">inject</button></p><p id="fault-msg" class="error"></p>`;
  html += `<h3>Faults</h3><table id="faults"><tr><th>id</th><th>kind</th><th>device</th><th>metric</th><th>magnitude</th><th>injected</th><th>state</th><th></th></tr>`;
  d.faults.slice().reverse().forEach((f) => {
    html += `<tr data-fault="${f.fault_id}" data-active="${f.active}"><td>${f.fault_id}</td><td>${f.kind}</td><td>${esc(f.device_id)}</td><td>${f.metric || "–"}</td><td class="num">${fmt(f.magnitude, 2)}</td><td>${cst(f.injected_at_ms, true)}</td><td>${f.active ? "active" : "cleared " + cst(f.cleared_at_ms, true)}</td><td>${f.active ? `<button class="clear" data-id="${f.fault_id}">clear</button>` : ""}</td></tr>`;
  });
  html += `</table></div></div>`;
  main.innerHTML = html;
  $("#clock-set").onclick = async () => { await api("/sim/clock", { speed: parseFloat($("#clock-speed").value) }); render(); };
  $("#clock-pause").onclick = async () => { await api("/sim/clock", { paused: !d.clock.paused }); render(); };
  const weather = async (k) => {
    const r = await api("/sim/weather", { outdoor_offset_k: k });
    WEATHER_MSG = r.ok ? `outdoor now ${fmt(r.data.outdoor_temp_c)} °C (offset ${fmt(r.data.outdoor_offset_k)} K)` : (r.data && r.data.error) || "refused";
    const m = $("#weather-msg");
    if (m) m.textContent = WEATHER_MSG;
  };
  $("#cold-snap").onclick = () => weather(-15);
  $("#weather-reset").onclick = () => weather(0);
  $("#fault-inject").onclick = async () => {
    const body = { kind: $("#fault-kind").value, device_id: $("#fault-device").value, metric: $("#fault-metric").value || null, magnitude: parseFloat($("#fault-magnitude").value) || 0 };
    const r = await api("/sim/faults", body);
    if (!r.ok) { $("#fault-msg").textContent = (r.data && r.data.error) || "refused"; return; }
    render();
  };
  $$("button.clear").forEach((b) => (b.onclick = async () => { await api(`/sim/faults/${b.dataset.id}/clear`, {}); render(); }));
}

async function pageReport(main, token) {
  const r = await api("/report");
  if (token !== pageToken) return;
  if (!r.ok) { main.innerHTML = `<h2>Season report</h2><p id="report-missing">No season report yet.</p><p class="muted">${esc(r.data && r.data.error)}</p>`; return; }
  const rep = r.data;
  let html = `<h2>Season report</h2><div class="row"><div class="panel"><table id="report">`;
  const arrays = [];
  const walk = (obj, prefix) => Object.keys(obj).forEach((k) => {
    const v = obj[k], key = prefix ? prefix + "." + k : k;
    if (Array.isArray(v) && v.length && v.every((x) => typeof x === "number")) arrays.push([key, v]);
    else if (Array.isArray(v) && v.length && v.every((x) => Array.isArray(x) && x.length === 2)) arrays.push([key, v]);
    else if (v && typeof v === "object" && !Array.isArray(v)) walk(v, key);
    else html += `<tr><td>${esc(key)}</td><td class="num">${typeof v === "number" ? fmt(v, 3) : esc(JSON.stringify(v))}</td></tr>`;
  });
  walk(rep, "");
  html += `</table></div><div class="panel">`;
  arrays.forEach(([k, v]) => {
    const pts = typeof v[0] === "number" ? v.map((y, i) => [i * 3600e3, y]) : v;
    html += chart("report-" + k, k, [{ name: k.split(".").pop(), pts: pts }]);
  });
  html += `</div></div>`;
  main.innerHTML = html;
}

// ---- router -------------------------------------------------------------------

async function render() {
  const token = ++pageToken;
  const parts = (location.hash || "#/network").slice(2).split("/").map(decodeURIComponent);
  const page = parts[0] || "network";
  $$("nav a").forEach((a) => a.classList.toggle("active", a.dataset.page === page || (page === "node" && a.dataset.page === "network")));
  const main = $("#main");
  try {
    if (page === "node") await pageNode(main, token, parts[1]);
    else if (page === "curves") await pageCurves(main, token, parts[1]);
    else if (page === "alarms") await pageAlarms(main, token);
    else if (page === "plants") await pagePlants(main, token);
    else if (page === "sim") await pageSim(main, token);
    else if (page === "report") await pageReport(main, token);
    else await pageNetwork(main, token);
    if (token === pageToken) setStatus("live · " + new Date().toLocaleTimeString(), false);
  } catch (e) {
    if (token === pageToken) setStatus("optimizer unreachable: " + e.message, true);
  }
  api("/alarms").then((a) => { if (a.ok) $("#alarm-badge").textContent = a.data.filter((x) => x.state === "raised").length || ""; });
}

// Pages with forms refresh less eagerly: never while the user is typing in them.
function tick() {
  const active = document.activeElement;
  const typing = active && (active.tagName === "INPUT" || active.tagName === "SELECT");
  const page = (location.hash || "#/network").slice(2).split("/")[0];
  if (DRAGGING) return;
  if (!(typing && (page === "curves" || page === "sim" || page === "node"))) render();
}

async function boot() {
  const c = await api("/config");
  CONFIG = c.ok ? c.data : { layout: null, simulator: null, fault_kinds: [], metrics: [] };
  $("#nav-sim").hidden = !CONFIG.simulator;
  window.addEventListener("hashchange", render);
  await render();
  timer = setInterval(tick, 2000);
}

boot();

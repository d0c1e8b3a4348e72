// realtime-service status page: polls GET /v1/status every second (the whole report once, then
// only the samples after the newest it has) and draws this node's last ten minutes on <canvas>.
// The API key, when the service asks for one, is kept in this tab's sessionStorage. Plain
// JavaScript, no build step, no chart library.
"use strict";

const $ = (id) => document.getElementById(id);
const WINDOW_MS = 10 * 60 * 1000;
const KEY = "realtime-service.apiKey";
const COLORS = ["#2f5bea", "#c4320a", "#137a43", "#7a2fea", "#0e9384", "#b54708", "#667085", "#dd2590", "#4e5ba6", "#a15c07"];
const TRANSPORTS = { websocket: "WebSocket", sse: "SSE", socketio: "Socket.IO" };

const state = { report: null, samples: [], started: 0, timer: null };

// --- numbers ---------------------------------------------------------------------------------

function fmt(v) {
  if (v == null || Number.isNaN(v)) return "–";
  const a = Math.abs(v);
  if (a >= 1e9) return (v / 1e9).toFixed(1) + "G";
  if (a >= 1e6) return (v / 1e6).toFixed(1) + "M";
  if (a >= 1e4) return (v / 1e3).toFixed(1) + "k";
  if (a >= 100 || Number.isInteger(v)) return String(Math.round(v));
  return v.toFixed(a >= 10 ? 1 : 2).replace(/\.?0+$/, "");
}
const bytes = (b) => (b >= 1 << 30 ? (b / (1 << 30)).toFixed(1) + " GiB" : (b / (1 << 20)).toFixed(0) + " MiB");
const sum = (m) => Object.values(m || {}).reduce((a, b) => a + b, 0);
const parts = (m, names = {}) =>
  Object.entries(m || {}).filter(([, v]) => v > 0).sort((a, b) => b[1] - a[1])
    .map(([k, v]) => `${names[k] || k} ${fmt(v)}`).join(" · ");

function duration(ms) {
  const s = Math.floor(ms / 1000);
  if (s < 60) return `up ${s}s`;
  if (s < 3600) return `up ${Math.floor(s / 60)}m ${s % 60}s`;
  return `up ${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
}

// niceMax rounds v up to 1, 2 or 5 times a power of ten (at least 1).
function niceMax(v) {
  if (!(v > 1)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  return [1, 2, 5, 10].map((m) => m * p).find((m) => m >= v);
}

// --- the chart -------------------------------------------------------------------------------

// drawChart draws series [{name, color, dash?, values: [[t, v]...]}] on the section's canvas over span
// ms up to now, with a y axis from 0 and a legend of the newest values; it returns the points
// drawn and keeps their number in the canvas's data-points.
function drawChart(section, series, now, span) {
  const canvas = section.querySelector("canvas");
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth, h = canvas.clientHeight;
  if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(h * dpr);
  }
  const g = canvas.getContext("2d");
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  g.clearRect(0, 0, w, h);
  const L = 44, R = 8, T = 6, B = 18, pw = w - L - R, ph = h - T - B;
  const from = now - span;
  let top = 0;
  for (const s of series) for (const [t, v] of s.values) if (t >= from) top = Math.max(top, v);
  top = niceMax(top);
  const x = (t) => L + ((t - from) / span) * pw;
  const y = (v) => T + ph - (v / top) * ph;

  g.font = "11px system-ui, sans-serif";
  g.fillStyle = "#667085";
  g.strokeStyle = "#e4e7ec";
  g.lineWidth = 1;
  g.textAlign = "right";
  g.textBaseline = "middle";
  for (let i = 0; i <= 4; i++) {
    const v = (top * i) / 4, yy = Math.round(y(v)) + 0.5;
    g.beginPath(); g.moveTo(L, yy); g.lineTo(w - R, yy); g.stroke();
    g.fillText(fmt(v), L - 6, yy);
  }
  g.textBaseline = "top";
  for (const [ago, align] of [[span, "left"], [span / 2, "center"], [0, "right"]]) {
    g.textAlign = align;
    g.fillText(ago ? `-${ago >= 120000 ? Math.round(ago / 60000) + " min" : Math.round(ago / 1000) + " s"}` : "now", x(now - ago), h - B + 5);
  }

  let points = 0;
  g.lineWidth = 1.8;
  g.lineJoin = "round";
  for (const s of series) {
    g.strokeStyle = s.color;
    g.setLineDash(s.dash || []);
    g.beginPath();
    let started = false;
    for (const [t, v] of s.values) {
      if (t < from) continue;
      started ? g.lineTo(x(t), y(v)) : g.moveTo(x(t), y(v));
      started = true;
      points++;
    }
    g.stroke();
  }
  g.setLineDash([]);
  canvas.dataset.points = String(points);

  const legend = section.querySelector(".legend");
  legend.replaceChildren(...series.map((s) => {
    const el = document.createElement("span");
    el.style.setProperty("--c", s.color);
    if (s.dash) el.style.setProperty("--s", "dashed");
    const last = s.values.length ? s.values[s.values.length - 1][1] : 0;
    el.append(s.name + " ");
    const b = document.createElement("b");
    b.textContent = fmt(last);
    el.append(b);
    return el;
  }));
  if (!series.length) legend.textContent = section.dataset.empty || "nothing yet";
  return points;
}

// seriesOf returns one series per key that pick(sample) yields, in the order of keys.
function seriesOf(samples, keys, pick, names = {}) {
  return keys.map((k, i) => ({
    name: names[k] || k,
    color: COLORS[i % COLORS.length],
    values: samples.map((s) => [s.t, pick(s, k) || 0]),
  }));
}

// --- the page --------------------------------------------------------------------------------

function render() {
  const r = state.report, all = state.samples;
  if (!r || !all.length) return;
  const last = all[all.length - 1], now = last.t;
  // The charts span the samples held: from one minute (a node just started) to ten.
  const span = Math.min(WINDOW_MS, Math.max(60000, now - all[0].t));
  $("node").textContent = r.node || "this node";
  $("uptime").textContent = duration(now - r.started);
  const tot = r.totals;

  $("connections").textContent = fmt(sum(last.connections));
  $("connections-by").textContent = parts(last.connections, TRANSPORTS) || "none open";
  $("in-rate").textContent = fmt(last.notificationsIn);
  $("in-total").textContent = `${fmt(sum(tot.notifications))} since start`;
  $("out-rate").textContent = fmt(last.deliveriesOut);
  $("out-total").textContent = `${fmt(tot.deliveries)} since start`;
  const lag = last.lag || {};
  $("lag").textContent = fmt(sum(lag));
  $("lag-by").textContent = Object.keys(lag).length ? `${Object.keys(lag).length} partitions · max ${fmt(Math.max(...Object.values(lag)))}` : "no partitions assigned";
  $("dlq").textContent = fmt(sum(tot.deadLetters));
  $("dlq-by").textContent = parts(tot.deadLetters) || "none";
  $("resumes").textContent = fmt(sum(tot.resumes));
  $("resume-by").textContent = parts(tot.resumes) || "none";
  $("resyncs").textContent = fmt(sum(tot.resyncs));
  $("resync-by").textContent = parts(tot.resyncs) || "none";
  $("cpu").textContent = `${fmt(last.cpu * 100)}%`;
  $("process").textContent = `${bytes(last.residentBytes)} · ${fmt(last.goroutines)} goroutines`;

  const charts = {};
  for (const el of document.querySelectorAll("[data-chart]")) charts[el.dataset.chart] = el;
  drawChart(charts.connections, seriesOf(all, Object.keys(TRANSPORTS), (s, k) => s.connections[k], TRANSPORTS), now, span);
  const flow = seriesOf(all, ["notificationsIn", "deliveriesOut"], (s, k) => s[k], { notificationsIn: "notifications in", deliveriesOut: "deliveries out" });
  flow[1].dash = [6, 4]; // one connection per user: out often equals in, and must stay visible
  drawChart(charts.throughput, flow, now, span);
  // Lag: every partition seen in the window, the ten largest if there are more.
  const seen = {};
  for (const s of all) for (const [k, v] of Object.entries(s.lag || {})) seen[k] = Math.max(seen[k] || 0, v);
  const keys = Object.keys(seen).sort((a, b) => seen[b] - seen[a] || a.localeCompare(b, "en", { numeric: true })).slice(0, 10);
  keys.sort((a, b) => a.localeCompare(b, "en", { numeric: true }));
  drawChart(charts.lag, seriesOf(all, keys, (s, k) => (s.lag || {})[k]), now, span);
  drawChart(charts.trouble, seriesOf(all, ["deadLetters", "resumes", "resyncs"], (s, k) => s[k], { deadLetters: "dead letters" }), now, span);

  renderErrors(r.errors || []);
}

function renderErrors(errors) {
  $("error-count").textContent = String(errors.length);
  $("no-errors").hidden = errors.length > 0;
  $("errors").replaceChildren(...errors.slice().reverse().map((e) => {
    const li = document.createElement("li");
    const when = document.createElement("span");
    when.className = "when";
    when.textContent = new Date(e.t).toLocaleTimeString();
    const level = document.createElement("span");
    level.className = "level " + e.level;
    level.textContent = e.level;
    const msg = document.createElement("span");
    msg.className = "msg";
    msg.textContent = e.msg;
    if (e.attrs && e.attrs.length) {
      const attrs = document.createElement("span");
      attrs.className = "attrs";
      attrs.textContent = e.attrs.map((a) => `${a.key}=${a.value}`).join("  ");
      msg.append(attrs);
    }
    li.append(when, level, msg);
    return li;
  }));
}

function setLive(text, kind) {
  $("live").textContent = text;
  $("live").dataset.state = kind;
}

// poll asks for the samples after the newest one held (all of them the first time or after the
// node restarted), keeps ten minutes of them, renders, and asks again a second later.
async function poll() {
  clearTimeout(state.timer);
  const newest = state.samples.length ? state.samples[state.samples.length - 1].t : 0;
  const key = sessionStorage.getItem(KEY);
  let res;
  try {
    res = await fetch("/v1/status" + (newest ? `?since=${newest}` : ""), { headers: key ? { Authorization: "Bearer " + key } : {}, cache: "no-store" });
  } catch (e) {
    setLive("cannot reach the service; retrying", "error");
    state.timer = setTimeout(poll, 2000);
    return;
  }
  if (res.status === 401) {
    sessionStorage.removeItem(KEY);
    $("key-form").hidden = false;
    $("key-error").textContent = key ? "That key was refused." : "";
    setLive("API key needed", "error");
    return; // until a key is given
  }
  if (!res.ok) {
    setLive(`GET /v1/status answered ${res.status}; retrying`, "error");
    state.timer = setTimeout(poll, 2000);
    return;
  }
  const r = await res.json();
  if (r.started !== state.started) state.samples = []; // another run of the node: start afresh
  state.started = r.started;
  state.report = r;
  state.samples.push(...r.samples.filter((s) => !state.samples.length || s.t > state.samples[state.samples.length - 1].t));
  const cut = state.samples.length ? state.samples[state.samples.length - 1].t - WINDOW_MS : 0;
  while (state.samples.length && state.samples[0].t < cut) state.samples.shift();
  $("key-form").hidden = true;
  setLive("live", "open");
  render();
  state.timer = setTimeout(poll, r.interval || 1000);
}

$("key-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  sessionStorage.setItem(KEY, $("key").value.trim());
  $("key").value = "";
  poll();
});
window.addEventListener("resize", render);
poll();

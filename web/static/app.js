// realtime-service demo page: connect as a user over WebSocket, SSE or Socket.IO, show the
// notifications that arrive, reconnect with jittered backoff resuming from the last cursor, and
// send test notifications through the HTTP API. Plain JavaScript, no build step.
"use strict";

const $ = (id) => document.getElementById(id);
// cursor and seen belong to the user the list shows (listUser): connecting as another user starts
// both, and the list, afresh.
const state = { conn: null, cursor: "", seen: new Set(), listUser: "", attempt: 0, timer: null, wanted: false };

function setStatus(text, kind) {
  $("status").textContent = text;
  $("status").dataset.state = kind;
}

async function tokenFor(user) {
  const given = $("token").value.trim();
  if (given) return given;
  const res = await fetch("/v1/dev/token?user=" + encodeURIComponent(user));
  if (!res.ok) throw new Error("no token: paste one (GET /v1/dev/token exists only in development)");
  return (await res.json()).token;
}

// startList empties the list for user: a new user has neither the previous one's notifications
// nor their resume cursor nor their de-duplication set.
function startList(user) {
  state.listUser = user;
  state.cursor = "";
  state.seen = new Set();
  $("notifications").replaceChildren();
  $("count").textContent = "0";
  $("list-user").textContent = "for " + user;
}

// show renders one frame {id, event, data, time, cursor}; duplicates (same id) are dropped, as
// every client of realtime-service should do. Control frames are resync and disconnect (their id
// is empty); Socket.IO events have no id at all (the server emits event, data, cursor, as the
// NestJS gateway did), but are notifications all the same: their time is when they arrived.
function show(frame) {
  if (frame.cursor) state.cursor = frame.cursor;
  if (frame.event === "cursor" && !frame.id) return; // only moves the resume position forward
  if (frame.id) {
    if (state.seen.has(frame.id)) return;
    state.seen.add(frame.id);
  }
  const control = !frame.id && (frame.event === "resync" || frame.event === "disconnect");
  const li = document.createElement("li");
  li.className = "note " + (control ? "control" : frame.event);
  li.dataset.id = frame.id || "";
  const data = frame.data || {};
  const text = data.message || (data.conceptName ? `Mastered ${data.conceptName} (${Math.round((data.masteryLevel || 0) * 100)}%)` : "");
  li.innerHTML = `<div class="head"><span class="event"></span><span class="meta"></span></div><p class="text"></p><pre></pre>`;
  li.querySelector(".event").textContent = frame.event;
  const when = new Date(frame.time || Date.now()).toLocaleTimeString();
  li.querySelector(".meta").textContent = frame.id ? `${frame.id} · ${when}` : control ? `control · ${when}` : `no event ID (Socket.IO) · received ${when}`;
  li.querySelector(".text").textContent = text;
  li.querySelector("pre").textContent = JSON.stringify(data);
  $("notifications").prepend(li);
  $("count").textContent = String($("notifications").children.length);
}

function scheduleReconnect() {
  if (!state.wanted) return;
  // Exponential backoff with full jitter: 0.5 s doubling up to 30 s.
  const ceiling = Math.min(30000, 500 * 2 ** state.attempt++);
  const delay = Math.round(Math.random() * ceiling);
  setStatus(`reconnecting in ${(delay / 1000).toFixed(1)} s`, "error");
  state.timer = setTimeout(connect, delay);
}

function opened(label) {
  state.attempt = 0;
  setStatus("connected as " + state.listUser + " over " + label, "open");
}

async function connect() {
  const user = state.listUser; // as of Connect: reconnects keep the user whatever the field says
  const transport = $("transport").value;
  let token;
  try {
    token = await tokenFor(user);
  } catch (err) {
    setStatus(err.message, "error");
    return scheduleReconnect();
  }
  if (!state.wanted) return; // Disconnect was clicked while the token was on its way
  const q = "access_token=" + encodeURIComponent(token);
  // Handlers act only while their connection is the current one: after Disconnect (or a newer
  // Connect) a late close or error event of an old connection must not touch the page.
  const conn = {};
  const current = () => state.conn === conn;
  if (transport === "websocket") {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const cursor = state.cursor ? "&cursor=" + encodeURIComponent(state.cursor) : "";
    const ws = new WebSocket(`${scheme}//${location.host}/v1/ws?${q}${cursor}`);
    state.conn = Object.assign(conn, { close: () => ws.close(1000) });
    ws.onopen = () => current() && opened("WebSocket");
    ws.onmessage = (m) => current() && show(JSON.parse(m.data));
    ws.onclose = (e) => { if (!current()) return; setStatus(`closed (${e.code} ${e.reason})`, "error"); state.conn = null; scheduleReconnect(); };
  } else if (transport === "sse") {
    const cursor = state.cursor ? "&lastEventId=" + encodeURIComponent(state.cursor) : "";
    const es = new EventSource(`/v1/events?${q}${cursor}`);
    state.conn = Object.assign(conn, { close: () => es.close() });
    es.onopen = () => current() && opened("SSE");
    es.onmessage = (m) => current() && show(JSON.parse(m.data));
    // EventSource reconnects by itself (sending Last-Event-ID); if it gives up, so do we.
    es.onerror = () => { if (!current()) return; if (es.readyState === EventSource.CLOSED) { state.conn = null; scheduleReconnect(); } else setStatus("reconnecting", "error"); };
  } else {
    // Socket.IO reconnects and recovers (connection state recovery) by itself.
    const socket = io({ auth: { token }, transports: ["polling", "websocket"] });
    state.conn = Object.assign(conn, { close: () => socket.disconnect() });
    // The label names the Engine.IO transport: polling first, then websocket once the engine has
    // upgraded (its "upgrade" event; every reconnect brings a new engine).
    const label = () => "Socket.IO (" + socket.io.engine.transport.name + (socket.recovered ? ", recovered" : "") + ")";
    const engines = new WeakSet();
    socket.on("connect", () => {
      if (!current()) return;
      opened(label());
      const engine = socket.io.engine;
      if (engines.has(engine)) return;
      engines.add(engine);
      engine.on("upgrade", () => current() && socket.connected && opened(label()));
    });
    socket.on("connect_error", (err) => current() && setStatus("connect_error: " + err.message, "error"));
    socket.on("disconnect", (reason) => current() && setStatus("disconnected: " + reason, "error"));
    socket.onAny((event, data) => current() && show({ id: "", event, data, time: new Date().toISOString() }));
  }
  $("connect").disabled = true;
  $("disconnect").disabled = false;
}

$("connect-form").addEventListener("submit", (e) => {
  e.preventDefault();
  state.wanted = true;
  state.attempt = 0;
  const user = $("user").value.trim();
  if (user !== state.listUser) startList(user);
  setStatus("connecting", "idle");
  connect();
});

$("disconnect").addEventListener("click", () => {
  state.wanted = false;
  clearTimeout(state.timer);
  if (state.conn) state.conn.close();
  state.conn = null;
  $("connect").disabled = false;
  $("disconnect").disabled = true;
  setStatus("not connected", "idle");
});

$("send-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const kind = $("kind").value;
  const userIds = $("to").value.split(",").map((s) => s.trim()).filter(Boolean);
  const body = kind === "concept-mastered"
    ? { conceptId: "js-arrays", userIds, conceptName: "JavaScript Arrays", masteryLevel: 0.92 }
    : { sessionId: "session-42", userIds, message: "Your session starts in 5 minutes", scheduledTime: new Date(Date.now() + 300000).toISOString() };
  const headers = { "Content-Type": "application/json" };
  const key = $("apikey").value.trim();
  if (key) headers["X-API-Key"] = key;
  const res = await fetch("/v1/notifications/" + kind, { method: "POST", headers, body: JSON.stringify(body) });
  const out = await res.json();
  $("send-result").textContent = res.ok ? `sent: ${out.id}` : `${res.status}: ${out.detail || out.title}`;
  $("send-result").dataset.state = res.ok ? "open" : "error";
});

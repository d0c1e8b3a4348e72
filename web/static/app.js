// realtime-service demo page: connect as a user over WebSocket, SSE or Socket.IO, show the
// notifications that arrive, reconnect with jittered backoff resuming from the last cursor and
// the IDs received since it, and send test notifications through the HTTP API. Plain
// JavaScript, no build step. The client's part of the cursor contract (docs/client-protocol.md,
// "Cursor"): keep the cursor of the last frame that carried one and the IDs of the events since,
// resume with "<cursor>~<id>,<id>,...", de-duplicate on id.
"use strict";

const $ = (id) => document.getElementById(id);
// cursor, since, seen and dropped belong to the user the list shows (listUser): connecting as
// another user starts them, and the list, afresh. cursor is the last cursor a frame carried;
// since, the IDs of the events received after it; seen, every ID shown (de-duplication);
// dropped, how many duplicates seen removed.
const state = { conn: null, cursor: "", since: [], seen: new Set(), dropped: 0, listUser: "", attempt: 0, timer: null, wanted: false };

// MAX_SINCE bounds the IDs a resume token lists (the server takes up to 4,096, the token up to
// 64 KiB). The server moves each partition past the newest ID listed for it, so the newest IDs
// are the ones to keep; with the default REALTIME_CURSOR_EVERY (32) there are at most 31.
const MAX_SINCE = 256;

// resumeToken is what a reconnect sends back: "" without a cursor, else the cursor and, after
// "~", the IDs received since it (docs/client-protocol.md, "Cursor").
function resumeToken() {
  if (!state.cursor) return "";
  return state.since.length ? state.cursor + "~" + state.since.join(",") : state.cursor;
}

// showResume says what the page would resume with, and how many duplicates it dropped.
function showResume() {
  $("resume").textContent = state.cursor
    ? `resume: cursor (${state.cursor.length} characters) + ${state.since.length} event ID${state.since.length === 1 ? "" : "s"} since · ${state.dropped} duplicate${state.dropped === 1 ? "" : "s"} dropped`
    : `resume: no cursor yet · ${state.dropped} duplicate${state.dropped === 1 ? "" : "s"} dropped`;
}

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
// nor their resume cursor and IDs nor their de-duplication set.
function startList(user) {
  state.listUser = user;
  state.cursor = "";
  state.since = [];
  state.seen = new Set();
  state.dropped = 0;
  $("notifications").replaceChildren();
  $("count").textContent = "0";
  $("list-user").textContent = "for " + user;
  showResume();
}

// show renders one frame {id, event, data, time, cursor}. A frame with a cursor (a cursor frame,
// a resync) replaces the resume position and forgets the IDs received before it; an event's ID
// joins those since the cursor. Duplicates (an ID shown already) are dropped, as every client of
// realtime-service must do: a resume with the cursor alone (an EventSource reconnecting by
// itself, socket.io-client's own recovery) may bring events again. Control frames (empty id) are
// cursor, resync and disconnect; Socket.IO events have no time of their own: theirs is when
// they arrived.
function show(frame) {
  if (frame.cursor) {
    state.cursor = frame.cursor;
    state.since = [];
  }
  if (frame.id) {
    if (state.seen.has(frame.id)) {
      state.dropped++;
      return showResume();
    }
    state.seen.add(frame.id);
    if (state.cursor) {
      state.since.push(frame.id);
      if (state.since.length > MAX_SINCE) state.since.shift();
    }
  }
  showResume();
  if (frame.event === "cursor" && !frame.id) return; // the resume position alone
  const control = !frame.id && (frame.event === "resync" || frame.event === "disconnect");
  const li = document.createElement("li");
  li.className = "note " + (control ? "control" : frame.event);
  li.dataset.id = frame.id || "";
  const data = frame.data || {};
  const text = data.message || (data.conceptName ? `Mastered ${data.conceptName} (${Math.round((data.masteryLevel || 0) * 100)}%)` : "");
  li.innerHTML = `<div class="head"><span class="event"></span><span class="meta"></span></div><p class="text"></p><pre></pre>`;
  li.querySelector(".event").textContent = frame.event;
  const when = new Date(frame.time || Date.now()).toLocaleTimeString();
  li.querySelector(".meta").textContent = frame.id ? `${frame.id} · ${frame.time ? when : "received " + when}` : `control · ${when}`;
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
    const resume = state.cursor ? "&cursor=" + encodeURIComponent(resumeToken()) : "";
    const ws = new WebSocket(`${scheme}//${location.host}/v1/ws?${q}${resume}`);
    state.conn = Object.assign(conn, { close: () => ws.close(1000) });
    ws.onopen = () => current() && opened("WebSocket");
    ws.onmessage = (m) => current() && show(JSON.parse(m.data));
    ws.onclose = (e) => { if (!current()) return; setStatus(`closed (${e.code} ${e.reason})`, "error"); state.conn = null; scheduleReconnect(); };
  } else if (transport === "sse") {
    const resume = state.cursor ? "&lastEventId=" + encodeURIComponent(resumeToken()) : "";
    const es = new EventSource(`/v1/events?${q}${resume}`);
    state.conn = Object.assign(conn, { close: () => es.close() });
    es.onopen = () => current() && opened("SSE");
    // A cursor frame's cursor is its id: line, the message's lastEventId (events have none).
    es.onmessage = (m) => {
      if (!current()) return;
      const f = JSON.parse(m.data);
      if (f.event === "cursor" && !f.id && m.lastEventId) f.cursor = m.lastEventId;
      show(f);
    };
    // EventSource reconnects by itself, sending Last-Event-ID (the last cursor, without the IDs
    // since: the duplicates that brings are dropped by show); if it gives up, so do we, and the
    // new EventSource sends the IDs too.
    es.onerror = () => { if (!current()) return; if (es.readyState === EventSource.CLOSED) { state.conn = null; scheduleReconnect(); } else setStatus("reconnecting", "error"); };
  } else {
    // Socket.IO reconnects and recovers (connection state recovery) by itself, sending its pid
    // and offset, the last cursor. socket.io-client merges auth over them, so auth's offset (a
    // recovery) and cursor (a new session) send the IDs since the cursor too.
    const auth = (cb) => cb(state.cursor ? { token, offset: resumeToken(), cursor: resumeToken() } : { token });
    const socket = io({ auth, transports: ["polling", "websocket"] });
    state.conn = Object.assign(conn, { socket, close: () => socket.disconnect() });
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
    // An event's last argument is {"id"}; that of a cursor or resync event, the cursor.
    socket.onAny((event, data, last) => current() && show({
      id: last && typeof last === "object" && typeof last.id === "string" ? last.id : "",
      event,
      data,
      cursor: typeof last === "string" ? last : "",
    }));
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

// realtime-service demo page: connect as a user, show the notifications that arrive, and send
// test notifications through the HTTP API. WebSocket and SSE go through the project's JS client
// (clients/js, served as /static/realtime.min.js, a copy `go generate ./web` refreshes): it
// falls back from WebSocket to SSE, reconnects with jittered backoff, resumes with the cursor and
// the IDs received since it, de-duplicates on id, keeps its resume position in localStorage and
// refreshes the token (clients/js/README.md). It does not speak Socket.IO, so that transport
// uses the vendored socket.io-client and keeps the cursor contract here (docs/client-protocol.md,
// "Cursor"). A reload reconnects the same user over the same transport and resumes: the list
// and the connection live in sessionStorage, the resume position in localStorage, the same
// {cursor, ids} for all transports.
import { createClient } from "/static/realtime.min.js";

const $ = (id) => document.getElementById(id);
// The page's state, for people and tests to read (window.demo). user is the user the list
// shows; cursor and since are that user's resume position (the last cursor and the IDs of the
// events after it); seen holds every ID shown and dropped counts the copies the page refused:
// the client never hands one over, and the page's Socket.IO code drops its own. rt is the JS
// client, socket the Socket.IO one, while connected.
const demo = { rt: null, socket: null, user: "", transport: "", cursor: "", since: [], seen: new Set(), dropped: 0 };
window.demo = demo;

const KEEP = 200; // notifications the list keeps (and stores for a reload)
// MAX_SINCE bounds the IDs a Socket.IO resume token lists (the server takes up to 4,096, the
// token up to 64 KiB). The server moves each partition past the newest ID listed for it, so the
// newest IDs are the ones to keep; with the default REALTIME_CURSOR_EVERY (32) there are at most 31.
const MAX_SINCE = 256;
const positionKey = (user) => "realtime-demo:" + user; // the JS client's storageKey, per user
const listKey = (user) => "realtime-demo:list:" + user;
const SESSION = "realtime-demo:connected"; // {user, transport} while connected, for a reload

// stored reads a JSON value of storage ({} or [] when it holds none or garbage).
function stored(storage, key, empty) {
  try {
    return JSON.parse(storage.getItem(key)) || empty;
  } catch {
    return empty;
  }
}

// held takes a resume position {cursor, ids}, the JSON the JS client keeps.
function held(pos) {
  demo.cursor = pos.cursor || "";
  demo.since = pos.ids || [];
  showResume();
}

// The JS client's storage: localStorage, with the page told of every saved position.
const storage = {
  get: (k) => localStorage.getItem(k),
  set: (k, v) => {
    localStorage.setItem(k, v);
    if (k === positionKey(demo.user)) held(JSON.parse(v));
  },
};

function showResume() {
  const n = demo.since.length;
  $("resume").textContent = (demo.cursor
    ? `resume: cursor (${demo.cursor.length} characters) + ${n} event ID${n === 1 ? "" : "s"} since`
    : "resume: no cursor yet") + ` · ${demo.dropped} duplicate${demo.dropped === 1 ? "" : "s"} dropped`;
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

// startList shows user's list: theirs from this tab's storage (empty at first), with their
// resume position, de-duplication set and no previous user's notifications.
function startList(user) {
  demo.user = user;
  demo.seen = new Set();
  demo.dropped = 0;
  $("notifications").replaceChildren();
  $("list-user").textContent = "for " + user;
  const list = stored(sessionStorage, listKey(user), []);
  for (const f of list.slice().reverse()) render(f);
  held(stored(localStorage, positionKey(user), {}));
}

// show adds one notification {id, event, data, time} or control message (empty id: resync) to
// the list, unless its ID is shown already, and keeps the list for a reload.
function show(frame) {
  if (frame.id) {
    if (demo.seen.has(frame.id)) {
      demo.dropped++;
      return showResume();
    }
  }
  render(frame);
  const list = stored(sessionStorage, listKey(demo.user), []);
  list.unshift(frame);
  sessionStorage.setItem(listKey(demo.user), JSON.stringify(list.slice(0, KEEP)));
}

function render(frame) {
  if (frame.id) demo.seen.add(frame.id);
  const data = frame.data || {};
  const li = document.createElement("li");
  li.className = "note " + (frame.id ? frame.event : "control");
  li.dataset.id = frame.id || "";
  const text = data.message || (data.conceptName ? `Mastered ${data.conceptName} (${Math.round((data.masteryLevel || 0) * 100)}%)` : "");
  li.innerHTML = `<div class="head"><span class="event"></span><span class="meta"></span></div><p class="text"></p><pre></pre>`;
  li.querySelector(".event").textContent = frame.event;
  const when = new Date(frame.time || frame.received).toLocaleTimeString();
  li.querySelector(".meta").textContent = frame.id ? `${frame.id} · ${frame.time ? when : "received " + when}` : `control · ${when}`;
  li.querySelector(".text").textContent = text;
  li.querySelector("pre").textContent = JSON.stringify(data);
  const ol = $("notifications");
  ol.prepend(li);
  while (ol.children.length > KEEP) ol.lastChild.remove();
  $("count").textContent = String(ol.children.length);
}

const LABELS = { websocket: "WebSocket", sse: "SSE" };

function connected(label) {
  setStatus("connected as " + demo.user + " over " + label, "open");
  sessionStorage.setItem(SESSION, JSON.stringify({ user: demo.user, transport: demo.transport }));
}

// connectClient connects with the JS client: WebSocket then SSE, or SSE alone. Its handlers act
// only while it is the page's client: after Disconnect its last events must not touch the page.
function connectClient(user, transport) {
  const rt = createClient({
    url: location.origin,
    token: () => tokenFor(user),
    storage,
    storageKey: positionKey(user),
    transports: transport === "sse" ? ["sse"] : ["websocket", "sse"],
  });
  demo.rt = rt;
  const current = () => demo.rt === rt;
  rt.on("connecting", ({ transport: t, attempt }) => current() && attempt > 0 && setStatus(`reconnecting over ${LABELS[t]} (attempt ${attempt + 1})`, "error"));
  rt.on("connected", ({ transport: t }) => current() && connected(LABELS[t]));
  rt.on("disconnected", ({ code, reason, reconnect }) => current() && setStatus(`closed (${code} ${reason})${reconnect ? ", reconnecting" : ""}`, "error"));
  rt.on("error", (e) => current() && setStatus(String(e?.message ?? e), "error"));
  rt.on("resync", (r) => current() && show({ id: "", event: "resync", data: r, received: Date.now() }));
  rt.on("*", (data, meta) => current() && show({ ...meta, data }));
}

// connectSocketIO connects with socket.io-client, which reconnects and recovers (connection
// state recovery) by itself, sending its pid and offset, the last cursor. It merges auth over
// them, so auth's offset (a recovery) and cursor (a new session) send the IDs since the cursor
// too. The position is kept as the JS client keeps it, so a reload resumes on any transport.
function connectSocketIO(user) {
  const save = () => localStorage.setItem(positionKey(user), JSON.stringify({ cursor: demo.cursor, ids: demo.since }));
  const resumeToken = () => (demo.since.length ? demo.cursor + "~" + demo.since.join(",") : demo.cursor);
  const auth = (cb) => tokenFor(user).then(
    (token) => cb(demo.cursor ? { token, offset: resumeToken(), cursor: resumeToken() } : { token }),
    (err) => { setStatus(err.message, "error"); cb({}); });
  const socket = io({ auth, transports: ["polling", "websocket"] });
  demo.socket = socket;
  const current = () => demo.socket === socket;
  // The label names the Engine.IO transport: polling first, then websocket once the engine has
  // upgraded (its "upgrade" event; every reconnect brings a new engine).
  const label = () => "Socket.IO (" + socket.io.engine.transport.name + (socket.recovered ? ", recovered" : "") + ")";
  const engines = new WeakSet();
  socket.on("connect", () => {
    if (!current()) return;
    connected(label());
    const engine = socket.io.engine;
    if (engines.has(engine)) return;
    engines.add(engine);
    engine.on("upgrade", () => current() && socket.connected && connected(label()));
  });
  socket.on("connect_error", (err) => current() && setStatus("connect_error: " + err.message, "error"));
  socket.on("disconnect", (reason) => current() && setStatus("disconnected: " + reason, "error"));
  // An event's last argument is {"id"}; that of a cursor or resync event, the cursor, which
  // replaces the position and forgets the IDs before it. Socket.IO events have no time of their
  // own: theirs is when they arrived.
  socket.onAny((event, data, last) => {
    if (!current()) return;
    const id = last && typeof last === "object" && typeof last.id === "string" ? last.id : "";
    if (typeof last === "string" && last) {
      demo.cursor = last;
      demo.since = [];
    } else if (id && demo.cursor && !demo.seen.has(id)) {
      demo.since.push(id);
      if (demo.since.length > MAX_SINCE) demo.since.shift();
    }
    if (id || event === "resync") show({ id, event, data, received: Date.now() });
    save();
    showResume();
  });
}

function connect(user, transport) {
  if (user !== demo.user) startList(user);
  demo.transport = transport;
  setStatus("connecting", "idle");
  if (transport === "socketio") connectSocketIO(user);
  else connectClient(user, transport);
  $("connect").disabled = true;
  $("disconnect").disabled = false;
}

$("connect-form").addEventListener("submit", (e) => {
  e.preventDefault();
  connect($("user").value.trim(), $("transport").value);
});

$("disconnect").addEventListener("click", () => {
  const { rt, socket } = demo;
  demo.rt = demo.socket = null;
  rt?.close();
  socket?.disconnect();
  sessionStorage.removeItem(SESSION);
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

// After a reload: the user and transport the tab was connected with connect again, and the
// client resumes from the stored position.
const was = stored(sessionStorage, SESSION, null);
if (was?.user) {
  $("user").value = was.user;
  $("transport").value = was.transport;
  connect(was.user, was.transport);
}

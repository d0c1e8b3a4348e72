// Shared helpers of the Socket.IO conformance suite. The Go test (internal/socketio,
// TestConformance) starts the server and passes its address in the environment:
//   SIO_URL      the server under test: Socket.IO at /socket.io/ (pingInterval 300 ms,
//                pingTimeout 5 s), at /fast/socket.io/ (pingInterval 100 ms, pingTimeout
//                150 ms) and at /slow/socket.io/ (pingInterval 1 min), plus the test-only
//                /control/ endpoints
//   SIO_AUX_URL  a second server that /control/restart restarts
//   SIO_ORIGIN   the one browser origin the server allows
import WebSocket from "ws";

export const URL = process.env.SIO_URL;
export const AUX_URL = process.env.SIO_AUX_URL;
export const ORIGIN = process.env.SIO_ORIGIN;
if (!URL || !AUX_URL || !ORIGIN) {
  throw new Error("run through go test ./internal/socketio -run TestConformance (SIO_URL, SIO_AUX_URL, SIO_ORIGIN unset)");
}
export const WS_URL = URL.replace(/^http/, "ws");
export const SEP = "\x1e";
export const PING_INTERVAL = 300;
export const PING_TIMEOUT = 5000;
// The message size limits: MAX_PAYLOAD after the CONNECT (announced as maxPayload),
// PREAUTH_MAX_PAYLOAD before it (the server's defaults).
export const MAX_PAYLOAD = 65536;
export const PREAUTH_MAX_PAYLOAD = 16384;
export const SLOW = "/slow/socket.io/";
export const FAST = "/fast/socket.io/";

// Per-test timeout: generous, so that only a hang fails on time (no assertion is timed).
export const T = { timeout: 30000 };

let counter = 0;
/** A user ID unique to this test run, so that parallel test files never share users. */
export function uid(prefix = "user") {
  return `${prefix}-${process.pid}-${++counter}-${Math.random().toString(36).slice(2, 8)}`;
}

/** A token for user from the test server. opts: {ttl: seconds (negative: expired), secret: "wrong"}. */
export async function token(user, opts = {}) {
  const q = new URLSearchParams({ user });
  if (opts.ttl !== undefined) q.set("ttl", String(opts.ttl));
  if (opts.secret) q.set("secret", opts.secret);
  const res = await fetch(`${URL}/control/token?${q}`);
  if (res.status !== 200) throw new Error(`token: ${res.status} ${await res.text()}`);
  return res.text();
}

/** Publishes data to userIds through the hub, as the Kafka consumer would. Returns {id} (the event ID). */
export async function publish(userIds, data, { event, topic, aux } = {}) {
  const res = await fetch(`${URL}/control/${aux ? "aux/" : ""}publish`, {
    method: "POST",
    body: JSON.stringify({ userIds, data, event, topic }),
  });
  if (res.status !== 200) throw new Error(`publish: ${res.status} ${await res.text()}`);
  return res.json();
}

/** Resolves with the listener arguments of the next `event` on a socket.io-client emitter. */
export function once(emitter, event) {
  return new Promise((resolve) => emitter.once(event, (...args) => resolve(args)));
}

/** Collects the arguments of every `event` into an array. */
export function collect(emitter, event) {
  const got = [];
  emitter.on(event, (...args) => got.push(args));
  return got;
}

/** Waits until cond() holds, checking every few milliseconds (the test timeout bounds it). */
export async function until(cond) {
  while (!(await cond())) await sleep(5);
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function eioURL(query = {}, path = "/socket.io/") {
  const q = new URLSearchParams({ EIO: "4", transport: "polling", ...query });
  return `${URL}${path}?${q}`;
}

/**
 * A raw WebSocket that queues what it receives, so that no message is lost between awaits.
 * With autoPong (the default) it answers the server's pings "2" with "3" and hides them.
 */
const openSockets = new Set();

/** Closes every RawWS still open (register it with node:test's after()). */
export function closeAll() {
  for (const ws of openSockets) ws.close();
}

export class RawWS {
  constructor(url, { autoPong = true, headers } = {}) {
    this.ws = new WebSocket(url, { headers });
    openSockets.add(this);
    this.ws.once("close", () => openSockets.delete(this));
    this.ws.binaryType = "nodebuffer";
    this.autoPong = autoPong;
    this.queue = [];
    this.waiters = [];
    this.opened = new Promise((resolve, reject) => {
      this.ws.once("open", resolve);
      this.ws.once("unexpected-response", (_req, res) => {
        let body = "";
        res.on("data", (c) => (body += c));
        res.on("end", () => reject(Object.assign(new Error(`HTTP ${res.statusCode}`), { status: res.statusCode, body })));
      });
      this.ws.once("error", reject);
    });
    this.opened.catch(() => {});
    this.closed = new Promise((resolve) => this.ws.once("close", (code, reason) => resolve({ code, reason: reason.toString() })));
    this.ws.on("error", () => {});
    this.ws.on("message", (data, isBinary) => {
      const msg = isBinary ? Buffer.from(data) : data.toString();
      if (this.autoPong && msg === "2") {
        this.ws.send("3");
        return;
      }
      const w = this.waiters.shift();
      if (w) w(msg);
      else this.queue.push(msg);
    });
  }
  /** The next message (text as a string, binary as a Buffer), or null once the socket closed. */
  next() {
    if (this.queue.length) return Promise.resolve(this.queue.shift());
    return new Promise((resolve) => {
      this.waiters.push(resolve);
      this.closed.then(() => {
        const i = this.waiters.indexOf(resolve);
        if (i >= 0) {
          this.waiters.splice(i, 1);
          resolve(null);
        }
      });
    });
  }
  send(data) {
    this.ws.send(data);
  }
  close() {
    this.ws.close();
  }
  get isClosed() {
    return this.ws.readyState === WebSocket.CLOSED;
  }
}

/** Opens a WebSocket-only Engine.IO session; returns {ws, open} after the open packet. */
export async function wsSession(query = {}, path = "/socket.io/", opts = {}) {
  const q = new URLSearchParams({ EIO: "4", transport: "websocket", ...query });
  const ws = new RawWS(`${WS_URL}${path}?${q}`, opts);
  await ws.opened;
  const first = await ws.next();
  if (typeof first !== "string" || first[0] !== "0") throw new Error(`expected an open packet, got ${first}`);
  return { ws, open: JSON.parse(first.slice(1)) };
}

/**
 * The cursor of a cursor packet: `42["cursor",null,"<cursor>"]` (events end with {"id"}) or
 * `42["cursor","<cursor>"]` (auth cursorArg false); null for any other packet.
 */
export function cursorOf(packet) {
  if (typeof packet !== "string" || !packet.startsWith('42["cursor",')) return null;
  const args = JSON.parse(packet.slice(2));
  const last = args.at(-1);
  const shape = args.length === 3 ? args[1] === null : args.length === 2;
  return shape && typeof last === "string" && last !== "" ? last : null;
}

/**
 * Opens a WebSocket session and connects it to "/" as user; returns {ws, open, connect, cursor}
 * where cursor is the opening cursor (the cursor packet that follows the CONNECT reply).
 */
export async function wsConnected(user, path = "/socket.io/", opts = {}) {
  const s = await wsSession({}, path, opts);
  s.ws.send("40" + JSON.stringify({ token: await token(user) }));
  const reply = await s.ws.next();
  if (!reply?.startsWith("40{")) throw new Error(`CONNECT refused: ${reply}`);
  const opening = await s.ws.next();
  const cursor = cursorOf(opening);
  if (!cursor) throw new Error(`after the CONNECT reply ${opening}, want the opening cursor packet`);
  return { ...s, connect: JSON.parse(reply.slice(2)), cursor };
}

/** Opens a long-polling Engine.IO session; returns {sid, open}. */
export async function pollSession(query = {}, path = "/socket.io/", headers = {}) {
  const res = await fetch(eioURL(query, path), { headers });
  const text = await res.text();
  if (res.status !== 200 || text[0] !== "0") throw new Error(`handshake: ${res.status} ${text}`);
  const open = JSON.parse(text.slice(1));
  return { sid: open.sid, open };
}

/** One long-polling GET: {status, packets (split on the record separator), text, headers}. */
export async function get(sid, path = "/socket.io/", headers = {}) {
  const res = await fetch(eioURL({ sid }, path), { headers });
  const text = await res.text();
  return { status: res.status, text, packets: res.status === 200 ? text.split(SEP) : [], headers: res.headers };
}

/** One long-polling POST of packets joined by the record separator: {status, text, headers}. */
export async function post(sid, packets, path = "/socket.io/", headers = {}) {
  const body = Array.isArray(packets) ? packets.join(SEP) : packets;
  const res = await fetch(eioURL({ sid }, path), { method: "POST", body, headers: { "content-type": "text/plain;charset=UTF-8", ...headers } });
  return { status: res.status, text: await res.text(), headers: res.headers };
}

/**
 * Polls until `count` packets other than pings arrived (pings are answered), or the session
 * ended (a close packet or an HTTP error); returns the packets and the last status.
 */
export async function pollPackets(sid, count = 1, path = "/socket.io/") {
  const got = [];
  for (;;) {
    const r = await get(sid, path);
    if (r.status !== 200) return { packets: got, status: r.status };
    for (const p of r.packets) {
      if (p === "2") await post(sid, "3", path);
      else got.push(p);
    }
    if (got.length >= count || got.includes("1")) return { packets: got, status: r.status };
  }
}

/**
 * Opens a long-polling session connected to "/" as user; returns {sid, open, connect, cursor}
 * where cursor is the opening cursor (the cursor packet that follows the CONNECT reply).
 */
export async function pollConnected(user, path = "/socket.io/") {
  const s = await pollSession({}, path);
  const r = await post(s.sid, "40" + JSON.stringify({ token: await token(user) }), path);
  if (r.status !== 200) throw new Error(`POST CONNECT: ${r.status}`);
  const { packets } = await pollPackets(s.sid, 2, path);
  if (!packets[0]?.startsWith("40{")) throw new Error(`CONNECT refused: ${packets}`);
  const cursor = cursorOf(packets[1]);
  if (!cursor || packets.length !== 2) throw new Error(`after the CONNECT reply ${packets.slice(1)}, want the opening cursor packet`);
  return { ...s, connect: JSON.parse(packets[0].slice(2)), cursor };
}

// Helpers of the client tests: they run the real service binary (RT_BIN, built by the Go test
// TestJSClient in clients/js/client_test.go; built here with `go build` when unset) against its
// embedded Kafka broker run on its own (`realtime-service broker`), so that service nodes can be
// stopped and started while Kafka keeps the records, all on loopback.
import { spawn, execFileSync } from "node:child_process";
import { createHmac, randomBytes } from "node:crypto";
import { mkdtempSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";

export const SECRET = "sdk-test-secret-sdk-test-secret-0123456789";
export const API_KEY = "sdk-test-api-key-0123456789";
const repo = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");

let bin = process.env.RT_BIN;
/** The service binary: RT_BIN, or one built once from the repository. */
export function serviceBinary() {
  if (!bin) {
    bin = join(mkdtempSync(join(tmpdir(), "rt-sdk-")), "realtime-service");
    execFileSync("go", ["build", "-o", bin, "./cmd/realtime-service"], { cwd: repo, stdio: "inherit" });
  }
  return bin;
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Waits until cond() holds, polling every 10 ms; the test's timeout bounds it. */
export async function until(cond, what = "condition") {
  const start = Date.now();
  while (!(await cond())) {
    if (Date.now() - start > 90000) throw new Error("timed out waiting for " + what);
    await sleep(10);
  }
}

/** A loopback port nobody listens on right now. */
export async function freePort() {
  const srv = net.createServer();
  await new Promise((r) => srv.listen(0, "127.0.0.1", r));
  const { port } = srv.address();
  await new Promise((r) => srv.close(r));
  return port;
}

let users = 0;
export const uid = (p = "sdk") => `${p}-${process.pid}-${++users}-${randomBytes(3).toString("hex")}`;

/** An HS256 client token for user, valid ttl seconds, signed with SECRET (RFC 7519). */
export function sign(user, ttl = 3600) {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
  const now = Math.floor(Date.now() / 1000);
  const body = b64({ alg: "HS256", typ: "JWT" }) + "." + b64({ sub: user, iat: now, exp: now + ttl });
  return body + "." + createHmac("sha256", SECRET).update(body).digest("base64url");
}

/** A child process of the service binary, its output kept for failure messages. */
class Proc {
  constructor(args, env) {
    this.log = "";
    this.p = spawn(serviceBinary(), args, {
      env: { PATH: process.env.PATH, HOME: process.env.HOME, LOG_LEVEL: "warn", ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    const keep = (b) => (this.log = (this.log + b).slice(-20000));
    this.p.stdout.on("data", keep);
    this.p.stderr.on("data", keep);
    this.exited = new Promise((r) => this.p.on("exit", (code, sig) => r(code ?? sig)));
  }
  async stop() {
    if (this.p.exitCode === null && this.p.signalCode === null) this.p.kill("SIGTERM");
    const t = setTimeout(() => this.p.kill("SIGKILL"), 20000);
    const res = await this.exited;
    clearTimeout(t);
    return res;
  }
}

/** Runs `realtime-service broker` (the embedded Kafka broker alone) on a free port. */
export async function startBroker() {
  for (let tries = 0; ; tries++) {
    const port = await freePort();
    const p = new Proc(["broker"], { KAFKA_EMBEDDED_ADDR: `127.0.0.1:${port}`, LOG_LEVEL: "info" });
    try {
      await until(async () => {
        if (p.p.exitCode !== null) throw new Error("broker exited: " + p.log);
        return p.log.includes("embedded broker running");
      }, "the broker");
      return { addr: `127.0.0.1:${port}`, stop: () => p.stop(), proc: p };
    } catch (e) {
      if (tries >= 2) throw e;
    }
  }
}

/**
 * A service node on broker: start() runs it on a fixed free port (the same across restarts)
 * and waits for /health/ready; stop() is SIGTERM (graceful: 1001 and a final cursor).
 */
export class ServiceNode {
  constructor(broker, id, env = {}) {
    this.broker = broker;
    this.id = id;
    this.env = env;
  }
  async start() {
    this.port ??= await freePort();
    this.url = `http://127.0.0.1:${this.port}`;
    this.proc = new Proc(["serve"], {
      HTTP_ADDR: `127.0.0.1:${this.port}`,
      KAFKA_BROKERS: this.broker.addr,
      KAFKA_NODE_ID: this.id,
      KAFKA_REQUEST_TIMEOUT: "5000",
      REALTIME_JWT_SECRET: SECRET,
      REALTIME_API_KEYS: API_KEY,
      HTTP_SHUTDOWN_TIMEOUT: "5000",
      ...this.env,
    });
    await until(async () => {
      if (this.proc.p.exitCode !== null) throw new Error(`node ${this.id} exited: ${this.proc.log}`);
      try {
        return (await fetch(this.url + "/health/ready")).status === 200;
      } catch {
        return false;
      }
    }, `node ${this.id} ready`);
    return this;
  }
  async stop() {
    const code = await this.proc?.stop();
    if (code !== 0) throw new Error(`node ${this.id} exited with ${code}: ${this.proc.log}`);
  }
  async restart() {
    await this.stop();
    return this.start();
  }
}

/** Sends one concept-mastered notification to user through node's HTTP API; returns its id. */
export async function notify(node, user, i) {
  const res = await fetch(node.url + "/v1/notifications/concept-mastered", {
    method: "POST",
    headers: { "content-type": "application/json", "x-api-key": API_KEY },
    body: JSON.stringify({ conceptId: `c-${i}`, userIds: [user], conceptName: `n${i}`, masteryLevel: 0.5 }),
  });
  const body = await res.json();
  if (res.status !== 201) throw new Error(`notify: ${res.status} ${JSON.stringify(body)}`);
  return body.id;
}

/**
 * A loopback TCP proxy to port: cut() destroys every connection through it (the client sees
 * its connection dropped, as by a network failure; the server sees the client gone). With
 * rejectUpgrade it answers 403 to any request asking for a WebSocket upgrade, as a proxy that
 * does not pass WebSocket does.
 */
export async function startProxy(port, { rejectUpgrade = false } = {}) {
  const socks = new Set();
  const track = (s) => (socks.add(s), s.on("close", () => socks.delete(s)), s.on("error", () => {}));
  const srv = net.createServer((c) => {
    track(c);
    let head = Buffer.alloc(0);
    const first = (chunk) => {
      head = Buffer.concat([head, chunk]);
      if (!head.includes("\r\n\r\n") && head.length < 65536) return;
      c.off("data", first);
      c.pause();
      if (rejectUpgrade && /^upgrade:\s*websocket/im.test(head.toString("latin1"))) {
        c.end("HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        return;
      }
      const up = track(net.connect(port, "127.0.0.1"));
      up.on("error", () => c.destroy());
      c.on("close", () => up.destroy());
      up.on("close", () => c.destroy());
      up.write(head);
      c.pipe(up);
      up.pipe(c);
      c.resume();
    };
    c.on("data", first);
  });
  await new Promise((r) => srv.listen(0, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${srv.address().port}`,
    cut() {
      for (const s of socks) s.destroy();
    },
    close() {
      this.cut();
      return new Promise((r) => srv.close(r));
    },
  };
}

/**
 * Checks what an application callback saw against what was sent: every sent id exactly once,
 * and within each partition ("<topic>:<partition>") offsets strictly increasing. Returns a list
 * of problems (empty when all is well).
 */
export function checkDelivery(sent, got) {
  const problems = [];
  const count = new Map();
  for (const id of got) count.set(id, (count.get(id) || 0) + 1);
  const twice = [...count].filter(([, n]) => n > 1).map(([id]) => id);
  const missing = sent.filter((id) => !count.has(id));
  const extra = got.filter((id) => !sent.includes(id));
  if (twice.length) problems.push(`${twice.length} ids seen more than once, e.g. ${twice.slice(0, 5)}`);
  if (missing.length) problems.push(`${missing.length} ids never seen, e.g. ${missing.slice(0, 5)}`);
  if (extra.length) problems.push(`${extra.length} ids not sent, e.g. ${extra.slice(0, 5)}`);
  const last = new Map();
  for (const id of got) {
    const i = id.lastIndexOf(":");
    const part = id.slice(0, i), off = Number(id.slice(i + 1));
    if (last.has(part) && off <= last.get(part)) problems.push(`${id} after offset ${last.get(part)} of ${part}`);
    last.set(part, off);
  }
  return problems;
}

/** Resolves at the client's next `name` event whose argument passes pred. */
export function next(rt, name, pred = () => true) {
  return new Promise((resolve) => {
    const off = rt.on(name, (v) => pred(v) && (off(), resolve(v)));
  });
}

/**
 * Sends total notifications to user through producer, 25 at a time, and between two batches
 * does what plan says at that count: "cut" (proxy.cut()), "stop" or "start" (the node the client
 * uses; the notifications between a stop and a start are sent while it is down), or any other
 * step given in steps (e.g. "reload"). A cut or a stop waits until connected() holds first, so
 * that each one ends a live connection. Returns the ids in the order sent, and for each start
 * the ms from the restart's beginning until received() grows again (restartMs).
 */
export async function sendWithDisruptions({ total, producer, user, node, proxy, plan, steps = {}, received, connected }) {
  const sent = [];
  const restartMs = [];
  const waits = [];
  for (let i = 0; i < total; i += 25) {
    const what = plan[i];
    if (what === "cut" || what === "stop") await until(connected, "the client connected before the " + what);
    if (what === "cut") proxy.cut();
    else if (what === "stop") await node.stop();
    else if (what === "start") {
      const before = await received(); // nothing arrives while the node is down
      const t0 = Date.now();
      await node.start();
      waits.push(until(async () => (await received()) > before, "events after the restart").then(() => restartMs.push(Date.now() - t0)));
    } else if (what) await steps[what]();
    const batch = [];
    for (let j = i; j < Math.min(total, i + 25); j++) batch.push(notify(producer, user, j).then((id) => (sent[j] = id)));
    await Promise.all(batch);
  }
  await Promise.all(waits);
  return { sent, restartMs };
}

/** Scenario (a)'s plan: five cuts and two restarts, 100 notifications sent during each stop. */
export const PLAN = { 100: "cut", 200: "stop", 300: "start", 350: "cut", 450: "cut", 550: "stop", 650: "start", 700: "cut", 800: "cut" };

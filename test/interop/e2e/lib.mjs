// Shared helpers of the end-to-end scripts. Each script is run by a Go test of
// cmd/realtime-service (delivery_test.go, browser_test.go) against the whole service started
// in-process through run(), and gets its addresses in the environment:
//   E2E_URL     the service's HTTP base URL, http://127.0.0.1:<port>
//   E2E_BROKER  the Kafka broker it uses (the embedded one), host:port
// Scripts print one JSON document on stdout (the Go test asserts on it) and exit non-zero when
// they cannot finish (the JSON then has an "error" field). Nothing here asserts on time: waits
// poll with a generous deadline, which only a hang reaches.
import kafkajs from "kafkajs";
import WebSocket from "ws";
import { EventSource } from "eventsource";

const { Kafka, Partitioners, logLevel } = kafkajs;

export const DEADLINE_MS = 30000;

export function env(name) {
  const v = process.env[name];
  if (v === undefined || v === "") {
    fail(`${name} is unset: run this script through go test ./cmd/realtime-service`);
  }
  return v;
}

/** Prints result (with the error) as the script's JSON output and exits 1. */
export function fail(message, result = {}) {
  exitWith(1, { ...result, error: String(message) });
}

/** Prints result as the script's JSON output and exits 0. */
export function done(result) {
  exitWith(0, result);
}

// exitWith exits once the output is written: stdout is a pipe, where a large write is
// asynchronous and process.exit would cut it short. The first call wins.
let exiting = false;
function exitWith(code, result) {
  if (exiting) return;
  exiting = true;
  process.stdout.write(JSON.stringify(result) + "\n", () => process.exit(code));
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls cond until it holds; throws after DEADLINE_MS (a bound for hangs, not a timing check). */
export async function until(what, cond, ms = DEADLINE_MS) {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(10);
  }
}

/** Waits until the service's hub holds exactly n connections (GET /health, details.realtime). */
export async function waitConnections(url, n) {
  let last;
  await until(`${n} registered connection(s) (last seen: ${last})`, async () => {
    const res = await fetch(`${url}/health`);
    const body = await res.json();
    last = body?.details?.realtime?.connections;
    return last === n;
  });
}

/** A KafkaJS client (the original NestJS service's Kafka library) for the broker. */
export function kafka(broker) {
  return new Kafka({
    clientId: "e2e-kafkajs",
    brokers: [broker],
    logLevel: logLevel.ERROR,
    retry: { retries: 8, initialRetryTime: 100 },
  });
}

/** A connected KafkaJS producer with the Java-compatible partitioner (KafkaJS 2's default). */
export async function producer(k) {
  const p = k.producer({ createPartitioner: Partitioners.DefaultPartitioner, allowAutoTopicCreation: false });
  await p.connect();
  return p;
}

/**
 * Produces one record (tombstone: with a null value) and returns where it went, as KafkaJS
 * reports it: {topic, partition, offset, id: "<topic>:<partition>:<offset>", key, valueNull,
 * valueBytes, headers, timestamp}. One send per record, so that every record's offset is known
 * exactly.
 */
export async function produce(p, { topic, key = null, value, tombstone, headers, partition, timestamp }) {
  if (tombstone) value = null; // a record with a null value
  const message = { key, value, timestamp: String(timestamp ?? Date.now()) };
  if (headers) message.headers = headers;
  if (partition !== undefined && partition !== null) message.partition = partition;
  const [meta] = await p.send({ topic, acks: -1, messages: [message] });
  if (meta.errorCode !== 0) throw new Error(`produce to ${topic}: error code ${meta.errorCode}`);
  const offset = Number(meta.baseOffset);
  return {
    topic,
    partition: meta.partition,
    offset,
    id: `${topic}:${meta.partition}:${offset}`,
    key,
    valueNull: value === null,
    valueBytes: value === null ? 0 : Buffer.byteLength(value),
    headers: headers ?? {},
    timestamp: Number(message.timestamp),
  };
}

/** The partition numbers of each topic, from the broker's metadata. */
export async function partitions(k, topics) {
  const admin = k.admin();
  await admin.connect();
  try {
    const { topics: md } = await admin.fetchTopicMetadata({ topics });
    return Object.fromEntries(md.map((t) => [t.name, t.partitions.map((p) => p.partitionId).sort((a, b) => a - b)]));
  } finally {
    await admin.disconnect();
  }
}

/**
 * Opens a WebSocket to /v1/ws with the `ws` client. auth: "query" (?access_token=) or
 * "subprotocol" (["realtime.v1", "bearer.<token>"]); query: extra query parameters. The
 * returned connection collects every message in frames ({raw, binary}) and its close in closed;
 * opened resolves on open and rejects with the HTTP status on an unexpected response.
 */
export function openWS(url, { name, token, auth = "query", query = "" }) {
  const q = new URLSearchParams(query);
  let protocols;
  if (auth === "query") q.set("access_token", token);
  else protocols = ["realtime.v1", "bearer." + token];
  const target = `${url.replace(/^http/, "ws")}/v1/ws${q.size ? "?" + q : ""}`;
  const ws = new WebSocket(target, protocols);
  const c = { name, transport: "ws", ws, frames: [], closed: null, protocol: null };
  c.opened = new Promise((resolve, reject) => {
    ws.on("open", () => {
      c.protocol = ws.protocol;
      resolve();
    });
    ws.on("unexpected-response", (req, res) => {
      reject(new Error(`${name}: WebSocket upgrade refused with HTTP ${res.statusCode}`));
      req.destroy();
    });
    ws.on("error", reject);
  });
  c.opened.catch(() => {}); // reported by whoever awaits it
  ws.on("message", (data, binary) => c.frames.push({ raw: data.toString("utf8"), binary }));
  c.closedPromise = new Promise((resolve) => {
    ws.on("close", (code, reason) => {
      c.closed = { code, reason: reason.toString("utf8") };
      resolve(c.closed);
    });
  });
  c.close = () => ws.close(1000);
  return c;
}

/**
 * Opens an SSE stream to /v1/events with the `eventsource` client (token in ?access_token=,
 * query: extra parameters). Every message goes to frames ({raw, lastEventId, type}).
 */
export function openSSE(url, { name, token, query = "" }) {
  const q = new URLSearchParams(query);
  q.set("access_token", token);
  const es = new EventSource(`${url}/v1/events?${q}`);
  const c = { name, transport: "sse", es, frames: [], errors: [] };
  c.opened = new Promise((resolve, reject) => {
    es.addEventListener("open", () => resolve());
    es.addEventListener("error", (e) => {
      c.errors.push({ code: e.code ?? null, message: e.message ?? null });
      if (es.readyState === EventSource.CLOSED) reject(new Error(`${name}: EventSource failed: ${e.code} ${e.message}`));
    });
  });
  c.opened.catch(() => {});
  es.addEventListener("message", (e) => c.frames.push({ raw: e.data, lastEventId: e.lastEventId, type: e.type }));
  c.close = () => es.close();
  return c;
}

/** The event IDs a connection has received (frames that parse as JSON with an id). */
export function receivedIDs(c) {
  const ids = new Set();
  for (const f of c.frames) {
    try {
      const id = JSON.parse(f.raw).id;
      if (id) ids.add(id);
    } catch {
      // not JSON: the Go test reports it
    }
  }
  return ids;
}

/** What a script reports of a connection. */
export function report(c) {
  const r = { name: c.name, transport: c.transport, frames: c.frames };
  if (c.transport === "ws") {
    r.protocol = c.protocol;
    r.closed = c.closed;
  } else {
    r.errors = c.errors;
  }
  return r;
}

// Socket.IO delivery end to end: socket.io-client connections (token in the handshake's auth, as
// the original NestJS gateway's clients send it) get the records KafkaJS produces as
// socket.emit(event, data, {id}), and `cursor` events. The Go test (socketio_test.go) checks the report.
//
// E2E_PLAN (JSON):
//   connections: [{name, token (null: none), transports? (omitted: socket.io-client's default,
//                 polling then upgrade), expect?: "connect_error"}]
//   records:     [{topic, key?, value, headers?, partition?}], produced once every connection
//                that should connect is in the hub (and the default ones have upgraded)
//   sentinelUsers
//   restart?:    {down: [records], after: [records]}: then, after the first round, the script
//                asks the Go test to stop the service (step "stop"), waits until every
//                connection has seen the disconnect, produces `down` while the service is
//                down, asks for a new service on the same addresses (step "start"), waits
//                until every connection has reconnected by itself, and produces `after`.
// Each round ends with one sentinel record (key "sentinel-<round>-<topic>-<partition>") naming
// sentinelUsers on every partition of both topics, and the script waits until every connected
// socket has all of them (see deliver.mjs for why that proves absence without timing). Then each
// asks `await socket.emitWithAck("whoami")` and an unknown event.
// Connections that expect connect_error must get one and never connect.
// Output: {produced: [...], sentinels: [[keys of round 1], [keys of round 2]], connections:
// [{name, events: [{event, args}], connects: [{recovered, transport}], connectErrors: [{message,
// data}], disconnects, initialTransport (the engine's first), transport (at the end of each
// round), acks: [[whoami, unknown] per round]}]}.
import { io } from "socket.io-client";
import { env, fail, done, until, waitConnections, kafka, producer, produce, partitions, DEADLINE_MS } from "./lib.mjs";
import { track, step } from "./siolib.mjs";

const url = env("E2E_URL");
const broker = env("E2E_BROKER");
const plan = JSON.parse(env("E2E_PLAN"));
const TOPICS = ["concept-notifications", "session-notifications"];

const conns = plan.connections.map((c) => {
  const opts = { forceNew: true };
  if (c.token !== null) opts.auth = { token: c.token };
  if (c.transports) opts.transports = c.transports;
  const t = track(c.name, io(url, opts));
  t.plan = c;
  t.initialTransport = t.socket.io.engine?.transport?.name ?? null; // io() opened the engine
  t.acks = [];
  t.transport = [];
  t.settled = new Promise((resolve) => {
    t.socket.once("connect", resolve);
    t.socket.once("connect_error", resolve);
  });
  return t;
});
const good = conns.filter((c) => c.plan.expect !== "connect_error");

function sentinelValue(topic, k, userIds) {
  return topic === "concept-notifications"
    ? JSON.stringify({ conceptId: k, userIds, conceptName: "sentinel", masteryLevel: 0 })
    : JSON.stringify({ sessionId: k, userIds, message: "sentinel", scheduledTime: "2026-01-01T00:00:00Z" });
}

/** Produces records, then a sentinel per partition; waits until every good socket has them all. */
async function round(p, parts, n, records, produced, sentinels) {
  for (const r of records) produced.push(await produce(p, r));
  const keys = [];
  for (const topic of TOPICS) {
    for (const partition of parts[topic]) {
      const k = `sentinel-${n}-${topic}-${partition}`;
      await produce(p, { topic, key: "sentinel", value: sentinelValue(topic, k, plan.sentinelUsers), partition });
      keys.push(k);
    }
  }
  sentinels.push(keys);
  for (const c of good) await until(`${c.name} to receive the sentinels of round ${n}`, () => keys.every((k) => c.has(k)));
  for (const c of good) {
    c.transport.push(c.socket.io.engine?.transport?.name ?? null);
    const s = c.socket.timeout(DEADLINE_MS);
    c.acks.push([await s.emitWithAck("whoami"), await s.emitWithAck("no-such-event")]);
  }
}

const result = { produced: [], sentinels: [] };
let p;
try {
  await Promise.all(conns.map((c) => c.settled));
  for (const c of conns) {
    const want = c.plan.expect === "connect_error" ? "a connect_error" : "to connect";
    if ((c.plan.expect === "connect_error") !== (c.connectErrors.length > 0 && !c.socket.connected)) {
      throw new Error(`${c.name}: expected ${want}; connects ${JSON.stringify(c.connects)}, errors ${JSON.stringify(c.connectErrors)}`);
    }
  }
  // socket.io-client's default transports: long-polling first, then the upgrade to WebSocket.
  for (const c of good.filter((c) => !c.plan.transports)) {
    await until(`${c.name} to upgrade to WebSocket`, () => c.socket.io.engine?.transport?.name === "websocket");
  }
  await waitConnections(url, good.length);
  const k = kafka(broker);
  p = await producer(k);
  const parts = await partitions(k, TOPICS);
  await round(p, parts, 1, plan.records, result.produced, result.sentinels);

  if (plan.restart) {
    await step("stop");
    for (const c of good) await until(`${c.name} to see the disconnect`, () => c.disconnects.length > 0);
    result.producedWhileDown = [];
    for (const r of plan.restart.down) result.producedWhileDown.push(await produce(p, r));
    await step("start");
    for (const c of good) await until(`${c.name} to reconnect by itself`, () => c.connects.length === 2);
    await waitConnections(url, good.length);
    await round(p, parts, 2, plan.restart.after, result.produced, result.sentinels);
  }
} catch (err) {
  result.error = err.stack ?? String(err);
} finally {
  await p?.disconnect().catch(() => {});
}
result.connections = conns.map((c) => ({ ...c.report(), initialTransport: c.initialTransport, transport: c.transport, acks: c.acks }));
for (const c of conns) c.socket.disconnect();
if (result.error) fail(result.error, result);
else done(result);

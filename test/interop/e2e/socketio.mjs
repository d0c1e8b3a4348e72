// Socket.IO delivery end to end: socket.io-client connections (token in the handshake's auth, as
// the original NestJS gateway's clients send it) get the records KafkaJS produces as
// socket.emit(event, data). The Go test (delivery_test.go) checks the report.
//
// E2E_PLAN (JSON): {connections: [{name, token, transports: ["polling","websocket"] or
// ["websocket"]}], records: [{topic, key?, value}], sentinelUsers: [...]}
// After the records, one sentinel record (conceptId "sentinel-<partition>") naming sentinelUsers
// goes to every partition of concept-notifications, and the script waits until every
// connection has all of them (see deliver.mjs for why that proves absence without timing).
// Output: {produced: [...], sentinels: n, connections: [{name, transport, connectError,
// events: [{event, args}]}]}.
import { io } from "socket.io-client";
import { env, fail, done, until, waitConnections, kafka, producer, produce, partitions } from "./lib.mjs";

const url = env("E2E_URL");
const broker = env("E2E_BROKER");
const plan = JSON.parse(env("E2E_PLAN"));
const TOPIC = "concept-notifications";

const conns = plan.connections.map((c) => {
  const socket = io(url, { auth: { token: c.token }, transports: c.transports, reconnection: false, forceNew: true });
  const conn = { name: c.name, socket, events: [], connectError: null };
  conn.connected = new Promise((resolve, reject) => {
    socket.on("connect", resolve);
    socket.on("connect_error", (err) => {
      conn.connectError = String(err?.message ?? err);
      reject(new Error(`${c.name}: connect_error: ${conn.connectError}`));
    });
  });
  conn.connected.catch(() => {});
  socket.onAny((event, ...args) => conn.events.push({ event, args }));
  return conn;
});
const report = () => conns.map((c) => ({ name: c.name, transport: c.socket.io.engine?.transport?.name ?? null, connectError: c.connectError, events: c.events }));

const result = { produced: [], sentinels: 0 };
let p;
try {
  await Promise.all(conns.map((c) => c.connected));
  await waitConnections(url, conns.length);
  const k = kafka(broker);
  p = await producer(k);
  for (const r of plan.records) result.produced.push(await produce(p, r));
  const parts = (await partitions(k, [TOPIC]))[TOPIC];
  for (const partition of parts) {
    const value = JSON.stringify({ conceptId: `sentinel-${partition}`, userIds: plan.sentinelUsers, conceptName: "sentinel", masteryLevel: 0 });
    await produce(p, { topic: TOPIC, key: "sentinel", value, partition });
  }
  result.sentinels = parts.length;
  for (const c of conns) {
    await until(`${c.name} to receive every sentinel`, () =>
      c.events.filter((e) => String(e.args[0]?.conceptId).startsWith("sentinel-")).length >= parts.length);
  }
} catch (err) {
  result.error = err.stack ?? String(err);
} finally {
  await p?.disconnect().catch(() => {});
}
result.connections = report();
for (const c of conns) c.socket.disconnect();
if (result.error) fail(result.error, result);
else done(result);

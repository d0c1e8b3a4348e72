// Socket.IO connection state recovery end to end ("Nothing missed"): a socket.io-client@4 socket
// gets events, loses its connection, misses events that KafkaJS produces meanwhile, reconnects by
// itself (sending back the pid and the offset: the cursor of its last cursor event) and must report
// socket.recovered and get exactly the events it missed (and again at most those it got after
// its last cursor, which it de-duplicates on id), then live ones. The Go test (socketio_test.go)
// checks the report.
//
// The client reaches the service through a TCP proxy (siolib.mjs, tcpProxy) that plays the
// network, or the load balancer in front of several nodes: while the proxy refuses connections
// the client's reconnection attempts fail and it keeps trying with its default backoff, so the
// missed events are certainly produced and published while it is away — a "witness" socket of
// the same user, connected straight to the node the client comes back to, has received them
// before the proxy lets the client through again — and they can only reach the client as a
// recovery, never as live events.
//
// E2E_PLAN (JSON):
//   url:        the node the client first connects to (through the proxy)
//   witnessUrl: the node the client comes back to, where the witness connects
//   token:      the user's token; transports: the client's (omitted: socket.io-client's default)
//   before, missed, live: [{topic, key?, value, headers?, partition?, to}], produced by
//               KafkaJS in turn (the script waits for the user's events of each: every record's
//               value has a unique conceptId or sessionId, its key; `to` says whether it names
//               the user)
//   drop:       "network": the proxy destroys the client's connections (the network is lost);
//               "node": the proxy refuses new connections and the script asks the Go test to
//               stop the first node (step "stop-node"), which drops the client's connection;
//               omitted: no recovery part, only the resync one
//   moveTo:     with "node": where the proxy sends the client afterwards (the second node); a
//               second socket ("direct"), connected straight to the first node, is then replaced
//               by a new io() to moveTo that carries the direct socket's pid and offset
//   sentinelUsers: after `live`, one sentinel record (key "sentinel-<topic>-<partition>")
//               naming them goes to every partition of both topics, and the script waits until
//               the client has them all (see deliver.mjs for why that proves absence).
//   resync:     [{name, token, pid, offset, record}]: then, for each, a socket.io-client
//               socket to url whose recovery state is set by hand (socket._pid and
//               socket._lastOffset, which it sends back in its CONNECT as {pid, offset, token})
//               connects with token, then `record` (naming that token's user) is produced and
//               the script waits until the socket has it.
// Output: {produced: {before, missed, live, resync: [...produce()]}, sentinels: [keys],
// sockets: [track() reports: client, witness, direct, moved, then the resync ones]}.
import { io } from "socket.io-client";
import { env, fail, done, until, waitConnections, kafka, producer, produce, partitions } from "./lib.mjs";
import { tcpProxy, track, step, key } from "./siolib.mjs";

const broker = env("E2E_BROKER");
const plan = JSON.parse(env("E2E_PLAN"));
const TOPICS = ["concept-notifications", "session-notifications"];
const auth = { token: plan.token };

const keysFor = (records) => records.filter((r) => r.to).map((r) => key(JSON.parse(r.value)));
const hasAll = (t, keys) => keys.every((k) => t.has(k));

function sentinelValue(topic, k, userIds) {
  return topic === "concept-notifications"
    ? JSON.stringify({ conceptId: k, userIds, conceptName: "sentinel", masteryLevel: 0 })
    : JSON.stringify({ sessionId: k, userIds, message: "sentinel", scheduledTime: "2026-01-01T00:00:00Z" });
}

const connected = (t) => new Promise((resolve, reject) => {
  if (t.socket.connected) return resolve();
  t.socket.once("connect", resolve);
  t.socket.once("connect_error", (err) => reject(new Error(`${t.name}: connect_error: ${err.message}`)));
});

const result = { produced: { before: [], missed: [], live: [], resync: [] }, sentinels: [] };
const sockets = [];
let p, proxy;

/** The recovery: see the top of the file. */
async function recovery(k) {
  proxy = await tcpProxy(plan.url);
  // The client: socket.io-client's defaults (reconnection, backoff, transports unless the plan
  // says otherwise); only the token is ours.
  const opts = { auth };
  if (plan.transports) opts.transports = plan.transports;
  const client = track("client", io(proxy.url, opts));
  const witness = track("witness", io(plan.witnessUrl, { auth, transports: ["websocket"], forceNew: true }));
  sockets.push(client, witness);
  let direct;
  if (plan.drop === "node") {
    direct = track("direct", io(plan.url, { auth, transports: ["websocket"], forceNew: true }));
    sockets.push(direct);
  }
  await Promise.all(sockets.map(connected));
  if (!plan.transports) {
    await until("the client to upgrade to WebSocket", () => client.socket.io.engine?.transport?.name === "websocket");
  }
  if (plan.url === plan.witnessUrl) {
    await waitConnections(plan.url, sockets.length);
  } else {
    await waitConnections(plan.url, sockets.length - 1);
    await waitConnections(plan.witnessUrl, 1);
  }

  const parts = await partitions(k, TOPICS);
  for (const r of plan.before) result.produced.before.push(await produce(p, r));
  for (const t of sockets) await until(`${t.name} to get the events produced before the drop`, () => hasAll(t, keysFor(plan.before)));

  // The connection drops; the client tries to reconnect and cannot.
  if (plan.drop === "network") {
    proxy.drop();
  } else {
    proxy.refuse();
    await step("stop-node");
  }
  await until("the client to see the disconnect", () => client.disconnects.length === 1);
  if (direct) {
    await until("the direct socket to see the disconnect", () => direct.disconnects.length === 1);
    direct.socket.disconnect(); // it would keep trying the stopped node; its pid and offset stay
  }

  // Missed: produced, and published by the node the client comes back to.
  for (const r of plan.missed) result.produced.missed.push(await produce(p, r));
  await until("the witness to get the missed events", () => hasAll(witness, keysFor(plan.missed)));

  // The client comes back by itself; the direct socket's successor is pointed at the other node.
  proxy.resume(plan.moveTo);
  const waiting = [client];
  if (direct) {
    const moved = track("moved", io(plan.moveTo, { auth, transports: ["websocket"], forceNew: true, autoConnect: false }));
    moved.socket._pid = direct.socket._pid;
    moved.socket._lastOffset = direct.socket._lastOffset;
    moved.socket.connect();
    sockets.push(moved);
    waiting.push(moved);
  }
  await until("the client to reconnect by itself", () => client.connects.length === 2);
  for (const t of waiting) await connected(t);

  // Live events and the sentinels follow at once: a resumed connection gets what it missed
  // before any live event, so once it has the sentinels it has had every missed event it will
  // ever get (and a broken recovery fails the Go test without waiting for events that never come).
  for (const r of plan.live) result.produced.live.push(await produce(p, r));
  for (const topic of TOPICS) {
    for (const partition of parts[topic]) {
      const k = `sentinel-${topic}-${partition}`;
      await produce(p, { topic, key: "sentinel", value: sentinelValue(topic, k, plan.sentinelUsers), partition });
      result.sentinels.push(k);
    }
  }
  for (const t of sockets.filter((t) => t.name !== "direct")) {
    await until(`${t.name} to get the live events and the sentinels`, () => hasAll(t, [...keysFor(plan.live), ...result.sentinels]));
  }
}

/** The hub's connection count at url (GET /health). */
async function connections(url) {
  const res = await fetch(`${url}/health`);
  return (await res.json())?.details?.realtime?.connections;
}

/** Recovery attempts the server cannot honour: see the top of the file. */
async function resync() {
  for (const r of plan.resync) {
    const base = await connections(plan.url);
    const t = track(r.name, io(plan.url, { auth: { token: r.token }, forceNew: true, autoConnect: false }));
    t.socket._pid = r.pid;
    t.socket._lastOffset = r.offset;
    t.socket.connect();
    sockets.push(t);
    await connected(t);
    await waitConnections(plan.url, base + 1); // in the hub: it gets what follows
    result.produced.resync.push(await produce(p, r.record));
    await until(`${t.name} to get a live event`, () => t.has(key(JSON.parse(r.record.value))));
    t.socket.disconnect();
    await waitConnections(plan.url, base);
  }
}

try {
  const k = kafka(broker);
  p = await producer(k);
  if (plan.drop) await recovery(k);
  if (plan.resync) await resync();
} catch (err) {
  result.error = err.stack ?? String(err);
} finally {
  await p?.disconnect().catch(() => {});
}
result.sockets = sockets.map((t) => t.report());
for (const t of sockets) t.socket.disconnect();
proxy?.close();
if (result.error) fail(result.error, result);
else done(result);

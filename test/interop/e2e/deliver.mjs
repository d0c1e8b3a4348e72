// Delivery end to end: independent clients connect (the `ws` client over WebSocket, the
// `eventsource` client over SSE), KafkaJS produces records straight to the service's topics, and
// every frame each connection receives is reported for the Go test (delivery_test.go) to check.
//
// E2E_PLAN (JSON):
//   connections: [{name, transport: "ws"|"sse", token, auth?: "query"|"subprotocol", query?}]
//   records:     [{topic, key?, value (string: the exact bytes), tombstone?, headers?, partition?}]
//   sentinelUsers: user IDs named by the closing sentinel records
//
// Absence is checked without timing: after the records, one sentinel record naming
// sentinelUsers goes to every partition of both notification topics. The hub publishes each
// partition in offset order and queues each connection's frames in order, so once a connection
// has every sentinel, any record produced before it that was (wrongly) routed to that
// connection has arrived too.
//
// Output: {produced: [...produce()], sentinels: [ids], connections: [report()]}.
import { env, fail, done, until, waitConnections, kafka, producer, produce, partitions, openWS, openSSE, receivedIDs, report } from "./lib.mjs";

const url = env("E2E_URL");
const broker = env("E2E_BROKER");
const plan = JSON.parse(env("E2E_PLAN"));

const TOPICS = ["concept-notifications", "session-notifications"];

function sentinelValue(topic, userIds) {
  return topic === "concept-notifications"
    ? JSON.stringify({ conceptId: "sentinel", userIds, conceptName: "sentinel", masteryLevel: 0 })
    : JSON.stringify({ sessionId: "sentinel", userIds, message: "sentinel", scheduledTime: "2026-01-01T00:00:00Z" });
}

const conns = plan.connections.map((c) => (c.transport === "ws" ? openWS(url, c) : openSSE(url, c)));
const result = { produced: [], sentinels: [], connections: [] };
let k, p;
try {
  await Promise.all(conns.map((c) => c.opened));
  await waitConnections(url, conns.length); // every connection is in the hub: it gets what follows

  k = kafka(broker);
  p = await producer(k);
  const base = Date.now() - 60_000; // distinct, known timestamps: the frames' "time"
  for (const [i, r] of plan.records.entries()) {
    result.produced.push(await produce(p, { ...r, timestamp: base + i * 1000 + 7 }));
  }
  const parts = await partitions(k, TOPICS);
  for (const topic of TOPICS) {
    for (const partition of parts[topic]) {
      const s = await produce(p, { topic, key: "sentinel", value: sentinelValue(topic, plan.sentinelUsers), partition });
      result.sentinels.push(s.id);
    }
  }
  for (const c of conns) {
    await until(`${c.name} to receive every sentinel`, () => {
      const got = receivedIDs(c);
      return result.sentinels.every((id) => got.has(id));
    });
  }
} catch (err) {
  result.error = err.stack ?? String(err);
} finally {
  await p?.disconnect().catch(() => {});
}
result.connections = conns.map(report);
for (const c of conns) c.close();
if (result.error) fail(result.error, result);
else done(result);

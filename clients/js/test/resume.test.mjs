// Scenario (a) of issue 16: 1,000 notifications to one user while the node the client uses is
// stopped and started twice (100 notifications sent through another node while it is down) and
// the client's connection is cut five times (a loopback proxy drops it, as a network failure
// would): the application callback sees each notification exactly once, in order per partition.
import { test } from "node:test";
import assert from "node:assert/strict";
import WebSocket from "ws";
import { createClient } from "../dist/index.js";
import { startBroker, ServiceNode, startProxy, uid, sign, next, checkDelivery, sendWithDisruptions, PLAN } from "./helpers.mjs";

test("1,000 notifications through two restarts and five cuts: each once, in partition order", { timeout: 240000 }, async (t) => {
  const broker = await startBroker();
  t.after(() => broker.stop());
  const producer = await new ServiceNode(broker, "producer").start();
  t.after(() => producer.stop());
  const node = await new ServiceNode(broker, "edge").start();
  t.after(() => node.stop());
  const proxy = await startProxy(node.port);
  t.after(() => proxy.close());

  const user = uid();
  const got = [];
  const closes = [];
  const rt = createClient({ url: proxy.url, token: () => sign(user), WebSocket, minDelay: 100, maxDelay: 2000 });
  t.after(() => rt.close());
  rt.on("concept-mastered", (_, meta) => got.push(meta.id));
  // The closes of connections that had opened (failed attempts during a restart aside).
  let live = false;
  rt.on("connected", () => (live = true));
  rt.on("disconnected", (d) => {
    if (live) closes.push(`${d.transport} ${d.code} ${d.reason}`);
    live = false;
  });
  const resyncs = [];
  rt.on("resync", (r) => resyncs.push(r));
  await next(rt, "cursor"); // connected, with its opening cursor

  const { sent, restartMs } = await sendWithDisruptions({
    total: 1000, producer, user, node, proxy, plan: PLAN, received: () => got.length, connected: () => rt.state === "connected",
  });
  await waitFor(() => got.length >= sent.length, () => `got ${got.length} of ${sent.length}; closes: ${closes.join("; ")}`);
  await new Promise((r) => setTimeout(r, 500)); // room for a duplicate to show up
  assert.deepEqual(checkDelivery(sent, got), []);
  assert.deepEqual(resyncs, [], "every resume honoured");
  // Two restarts (1001 from the graceful stop) and five cuts (1006), each of a live connection.
  assert.deepEqual(closes.map((c) => c.split(" ")[1]).sort(), ["1001", "1001", "1006", "1006", "1006", "1006", "1006"], closes.join("; "));
  t.diagnostic(`disconnects: ${closes.length} (${closes.join("; ")})`);
  t.diagnostic(`ms from a restart's start to the client receiving again: ${restartMs.join(", ")}`);
});

async function waitFor(cond, why) {
  const start = Date.now();
  while (!cond()) {
    if (Date.now() - start > 60000) assert.fail("timed out: " + why());
    await new Promise((r) => setTimeout(r, 20));
  }
}

// Scenario (d) of issue 16: a proxy in front of the service refuses WebSocket upgrades (403), as
// some corporate proxies do: the client falls back to SSE and receives everything, through a
// cut of its stream and a restart of the node as well.
import { test } from "node:test";
import assert from "node:assert/strict";
import WebSocket from "ws";
import { createClient } from "../dist/index.js";
import { startBroker, ServiceNode, startProxy, uid, sign, next, checkDelivery, sendWithDisruptions } from "./helpers.mjs";

test("WebSocket refused: the client falls back to SSE and still receives everything", { timeout: 180000 }, async (t) => {
  const broker = await startBroker();
  t.after(() => broker.stop());
  const producer = await new ServiceNode(broker, "producer").start();
  t.after(() => producer.stop());
  const node = await new ServiceNode(broker, "edge").start();
  t.after(() => node.stop());
  const proxy = await startProxy(node.port, { rejectUpgrade: true });
  t.after(() => proxy.close());

  const user = uid();
  const got = [];
  const attempts = [];
  const opened = [];
  const rt = createClient({ url: proxy.url, token: () => sign(user), WebSocket, minDelay: 50, maxDelay: 1000 });
  t.after(() => rt.close());
  rt.on("concept-mastered", (_, meta) => got.push(meta.id));
  rt.on("connecting", (c) => attempts.push(c.transport));
  rt.on("connected", (c) => opened.push(c.transport));
  await next(rt, "cursor");
  assert.equal(attempts[0], "websocket", "WebSocket is tried first");
  assert.equal(rt.transport, "sse");

  const plan = { 100: "cut", 200: "stop", 250: "start", 350: "cut" };
  const { sent } = await sendWithDisruptions({ total: 500, producer, user, node, proxy, plan, received: () => got.length, connected: () => rt.state === "connected" });
  const start = Date.now();
  while (got.length < sent.length && Date.now() - start < 60000) await new Promise((r) => setTimeout(r, 20));
  await new Promise((r) => setTimeout(r, 300));
  assert.deepEqual(checkDelivery(sent, got), []);
  assert.ok(opened.length >= 3 && opened.every((tr) => tr === "sse"), `connections: ${opened}`);
  t.diagnostic(`attempts: ${attempts.join(",")}`);
});

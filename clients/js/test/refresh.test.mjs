// Scenario (c) of issue 16: tokens valid 3 s on a server that checks expiry every 300 ms, over a
// run of several lifetimes: the client refreshes each before its exp (in place on WebSocket, by
// reconnecting with its cursor on SSE) and no notification is lost or seen twice. A plain
// WebSocket with the same kind of token is closed with 4001 during the run: the server does
// enforce the expiry the client avoids.
import { test } from "node:test";
import assert from "node:assert/strict";
import WebSocket from "ws";
import { createClient } from "../dist/index.js";
import { startBroker, ServiceNode, uid, sign, next, notify, checkDelivery, sleep, until } from "./helpers.mjs";

const TTL = 3; // seconds

test("a token that expires during the run is refreshed without a lost event", { timeout: 180000 }, async (t) => {
  const broker = await startBroker();
  t.after(() => broker.stop());
  const node = await new ServiceNode(broker, "refresh", { REALTIME_PING_INTERVAL: "300" }).start();
  t.after(() => node.stop());

  for (const transport of ["websocket", "sse"]) {
    await t.test(transport, async (t) => {
      const user = uid();
      const got = [];
      const closes = [];
      let tokens = 0;
      const rt = createClient({
        url: node.url, WebSocket, transports: [transport], refreshLead: 1000, minDelay: 50, maxDelay: 500,
        token: () => (tokens++, sign(user, TTL)),
      });
      t.after(() => rt.close());
      rt.on("concept-mastered", (_, meta) => got.push(meta.id));
      rt.on("disconnected", (d) => closes.push(d));
      const errors = [];
      rt.on("error", (e) => errors.push(String(e)));
      await next(rt, "cursor");

      // The control: a connection that does not refresh is closed with 4001 at its exp.
      const plain = new WebSocket(node.url.replace("http", "ws") + "/v1/ws", { headers: { authorization: "Bearer " + sign(user, TTL) } });
      const plainClosed = new Promise((r) => plain.on("close", (code) => r(code)));

      const sent = [];
      const start = Date.now();
      for (let i = 0; Date.now() - start < 3.5 * TTL * 1000; i++) {
        sent.push(await notify(node, user, i));
        await sleep(40);
      }
      assert.equal(await plainClosed, 4001, "the control connection is closed when its token expires");
      await until(() => got.length >= sent.length, `all ${sent.length} events (got ${got.length})`);
      await sleep(300);
      assert.deepEqual(checkDelivery(sent, got), []);
      assert.ok(tokens >= 4, `${tokens} tokens fetched over ${3.5 * TTL} s of ${TTL} s tokens`);
      assert.deepEqual(closes.filter((d) => d.code === 4001), [], "no connection of the client expired");
      if (transport === "websocket") assert.deepEqual(closes, [], "refreshed in place: the connection stayed open");
      else assert.ok(closes.length >= 3 && closes.every((d) => d.code === 1000 && d.reason === "token refresh"), JSON.stringify(closes));
      assert.deepEqual(errors, []);
      t.diagnostic(`${transport}: ${got.length} events, ${tokens} tokens, ${closes.length} reconnects`);
    });
  }
});

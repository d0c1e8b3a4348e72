// Token refresh in place end to end: a `ws` client on /v1/ws and a socket.io-client socket
// (default transports: long-polling, then the upgrade) connect with a short-lived token, refresh
// it on the open connection ({"type":"refresh","token"} and emitWithAck("refresh", token)) while
// KafkaJS produces, and stay connected past the first token's exp; every record arrives once, in
// order. Two more connections refresh with another user's token: the `ws` one is closed with
// 4003, the socket one is disconnected by the server ("io server disconnect") and does not
// reconnect by itself. The Go test (refresh_test.go) checks the report.
//
// Step "tokens" (siolib.mjs): the Go test answers {first, refresh, other} (tokens: alice's
// short-lived one, alice's long-lived one, bob's), issued when the clients are about to connect,
// and firstExp (the first token's exp, Unix seconds).
// E2E_PLAN (JSON): {before, during, after}: record values for concept-notifications partition 0,
// produced before the refresh, while it runs, and once the first token has expired.
// Output: {tokens, wsFrames, wsClosed, wsOpen, sioEvents, sioAcks, sioConnects, sioDisconnects,
// otherWsClosed, otherAck, otherDisconnects, otherActive, pastFirstExp}.
import { io } from "socket.io-client";
import WebSocket from "ws";
import { env, fail, done, until, sleep, waitConnections, kafka, producer, produce, openWS, DEADLINE_MS } from "./lib.mjs";
import { track, step, key } from "./siolib.mjs";

const url = env("E2E_URL");
const broker = env("E2E_BROKER");
const plan = JSON.parse(env("E2E_PLAN"));
const TOPIC = "concept-notifications";

const result = {};
let p, ws, other, sio, sioOther;
const wsKeys = () => ws.frames.map((f) => JSON.parse(f.raw)).filter((f) => f.id).map((f) => key(f.data));
async function send(values) {
  for (const value of values) await produce(p, { topic: TOPIC, partition: 0, value });
}
try {
  p = await producer(kafka(broker)); // before the tokens: the clock of the first one runs
  const tokens = JSON.parse(await step("tokens"));
  result.tokens = tokens;

  ws = openWS(url, { name: "ws", token: tokens.first });
  other = openWS(url, { name: "ws-other", token: tokens.first });
  sio = track("sio", io(url, { forceNew: true, auth: { token: tokens.first } }));
  sioOther = track("sio-other", io(url, { forceNew: true, auth: { token: tokens.first }, transports: ["websocket"] }));
  await Promise.all([ws.opened, other.opened]);
  for (const s of [sio, sioOther]) await until(`${s.name} to connect`, () => s.socket.connected);
  await until("sio to upgrade to WebSocket", () => sio.socket.io.engine?.transport?.name === "websocket");
  await waitConnections(url, 4);

  await send(plan.before);
  ws.ws.send(JSON.stringify({ type: "refresh", token: tokens.refresh }));
  const [ack] = await Promise.all([sio.socket.timeout(DEADLINE_MS).emitWithAck("refresh", tokens.refresh), send(plan.during)]);
  result.sioAcks = [ack];
  await until("the ws refreshed answer", () => ws.frames.some((f) => JSON.parse(f.raw).event === "refreshed"));

  other.ws.send(JSON.stringify({ type: "refresh", token: tokens.other }));
  result.otherAck = await sioOther.socket.timeout(DEADLINE_MS).emitWithAck("refresh", tokens.other);
  await other.closedPromise;
  await until("sio-other's disconnect", () => sioOther.disconnects.length > 0);

  // Past the first token's exp by five pings (REALTIME_PING_INTERVAL=200 ms): without the
  // refresh the server would have closed both connections with 4001 by now.
  await sleep(Math.max(0, tokens.firstExp * 1000 - Date.now()) + 1000);
  await send(plan.after);
  const last = key(JSON.parse(plan.after.at(-1)));
  await until("ws to get the last record", () => wsKeys().includes(last));
  await until("sio to get the last record", () => sio.has(last));
  result.pastFirstExp = Date.now() > tokens.firstExp * 1000;
} catch (err) {
  result.error = err.stack ?? String(err);
} finally {
  await p?.disconnect().catch(() => {});
}
result.wsFrames = ws?.frames.map((f) => f.raw);
result.wsClosed = ws?.closed;
result.wsOpen = ws?.ws.readyState === WebSocket.OPEN;
result.sioEvents = sio?.events;
result.sioConnects = sio?.connects.length;
result.sioDisconnects = sio?.disconnects.map((d) => d.reason);
result.otherWsClosed = other?.closed;
result.otherDisconnects = sioOther?.disconnects.map((d) => d.reason);
result.otherActive = sioOther?.socket.active; // false: socket.io-client will not reconnect by itself
for (const c of [ws, other]) c?.close();
for (const s of [sio, sioOther]) s?.socket.disconnect();
if (result.error) fail(result.error, result);
else done(result);

// The client's protocol duties against a scripted WebSocket and fetch (no server): the resume
// token, de-duplication, resync, close codes, the stored position and the SSE fallback. The
// other files run the same client against the real service.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createClient } from "../dist/index.js";
import { sleep, until } from "./helpers.mjs";

/** A WebSocket whose server side the test plays: open(), frame(obj), close(code, reason). */
function fakeWebSocket() {
  const sockets = [];
  class FakeWS {
    constructor(url, protocols) {
      this.url = url;
      this.protocols = protocols;
      this.sent = [];
      sockets.push(this);
    }
    send(s) { this.sent.push(JSON.parse(s)); }
    close() { this.closed = true; }
    open() { this.onopen?.({}); }
    frame(f) { this.onmessage?.({ data: JSON.stringify({ time: "2026-01-01T00:00:00.000Z", data: null, ...f }) }); }
    end(code, reason = "") { this.onclose?.({ code, reason }); }
  }
  return { FakeWS, sockets };
}

const jwt = (exp) => "e30." + Buffer.from(JSON.stringify({ sub: "u", exp })).toString("base64url") + ".sig";
const token = () => jwt(Math.floor(Date.now() / 1000) + 3600);
const memory = (init = {}) => {
  const m = new Map(Object.entries(init));
  return { get: (k) => m.get(k), set: (k, v) => void m.set(k, v), m };
};

test("resumes with cursor~ids, drops a repeated id, authenticates with the subprotocol", async (t) => {
  const { FakeWS, sockets } = fakeWebSocket();
  const storage = memory();
  let last = "";
  const rt = createClient({ url: "http://rt.test/", token: () => (last = token()), WebSocket: FakeWS, storage, minDelay: 1, maxDelay: 5 });
  t.after(() => rt.close());
  const got = [];
  rt.on("concept-mastered", (d, m) => got.push(m.id));
  await until(() => sockets.length === 1);
  const ws = sockets[0];
  assert.equal(ws.url, "ws://rt.test/v1/ws");
  assert.deepEqual(ws.protocols, ["realtime.v1", "bearer." + last]);
  ws.open();
  ws.frame({ id: "", event: "cursor", cursor: "C1" });
  ws.frame({ id: "t:0:5", event: "concept-mastered" });
  ws.frame({ id: "t:1:2", event: "concept-mastered" });
  ws.frame({ id: "t:0:5", event: "concept-mastered" });
  assert.deepEqual(got, ["t:0:5", "t:1:2"]);
  assert.deepEqual(JSON.parse(storage.m.get("realtime:http://rt.test")), { cursor: "C1", ids: ["t:0:5", "t:1:2"] });
  ws.end(1006);
  await until(() => sockets.length === 2);
  assert.equal(sockets[1].url, "ws://rt.test/v1/ws?cursor=" + encodeURIComponent("C1~t:0:5,t:1:2"));
  sockets[1].open();
  sockets[1].frame({ id: "t:1:2", event: "concept-mastered" }); // replayed anyway: dropped
  sockets[1].frame({ id: "", event: "cursor", cursor: "C2" });
  sockets[1].frame({ id: "t:1:3", event: "concept-mastered" });
  assert.deepEqual(got, ["t:0:5", "t:1:2", "t:1:3"]);
  assert.equal(rt.cursor, "C2");
  sockets[1].end(1001, "server shutting down");
  await until(() => sockets.length === 3);
  assert.equal(sockets[2].url, "ws://rt.test/v1/ws?cursor=" + encodeURIComponent("C2~t:1:3"));
});

test("starts from the stored position; a resync moves the cursor and forgets the ids", async (t) => {
  const { FakeWS, sockets } = fakeWebSocket();
  const storage = memory({ k: JSON.stringify({ cursor: "S", ids: ["t:0:9"] }) });
  const rt = createClient({ url: "https://rt.test", token, WebSocket: FakeWS, storage, storageKey: "k", minDelay: 1, maxDelay: 5 });
  t.after(() => rt.close());
  const resyncs = [];
  rt.on("resync", (r) => resyncs.push(r));
  await until(() => sockets.length === 1);
  assert.equal(sockets[0].url, "wss://rt.test/v1/ws?cursor=" + encodeURIComponent("S~t:0:9"));
  sockets[0].open();
  sockets[0].frame({ id: "", event: "resync", data: { reason: "expired", message: "older than retention" }, cursor: "R" });
  assert.deepEqual(resyncs, [{ reason: "expired", message: "older than retention" }]);
  assert.deepEqual(JSON.parse(storage.m.get("k")), { cursor: "R", ids: [] });
  sockets[0].end(1006);
  await until(() => sockets.length === 2);
  assert.equal(sockets[1].url, "wss://rt.test/v1/ws?cursor=R");
});

test("close codes: 4003 ends for good, 4001 fetches a new token, close() says 1000", async (t) => {
  const { FakeWS, sockets } = fakeWebSocket();
  let tokens = 0;
  const rt = createClient({ url: "http://rt.test", token: () => (tokens++, token()), WebSocket: FakeWS, storage: null, minDelay: 1, maxDelay: 5 });
  t.after(() => rt.close());
  const closes = [];
  rt.on("disconnected", (d) => closes.push(d));
  await until(() => sockets.length === 1);
  sockets[0].open();
  sockets[0].end(4001, "token expired");
  await until(() => sockets.length === 2);
  assert.equal(tokens, 2, "a new token after 4001");
  sockets[1].open();
  sockets[1].end(4003, "token for another user");
  await sleep(50);
  assert.equal(sockets.length, 2, "no reconnect after 4003");
  assert.equal(rt.state, "closed");
  assert.deepEqual(closes.map((d) => [d.code, d.reconnect]), [[4001, true], [4003, false]]);

  const b = fakeWebSocket();
  const rt2 = createClient({ url: "http://rt.test", token, WebSocket: b.FakeWS, storage: null });
  const closes2 = [];
  rt2.on("disconnected", (d) => closes2.push(d));
  await until(() => b.sockets.length === 1);
  b.sockets[0].open();
  rt2.close();
  assert.equal(b.sockets[0].closed, true);
  assert.deepEqual(closes2.map((d) => [d.code, d.reconnect]), [[1000, false]]);
});

test("refreshes in place on WebSocket before exp", async (t) => {
  const { FakeWS, sockets } = fakeWebSocket();
  let n = 0;
  // The first token expires in 2.2 s: refreshed at exp - min(30 s, lifetime / 2).
  const rt = createClient({ url: "http://rt.test", token: () => (n++ ? token() : jwt(Date.now() / 1000 + 2.2)), WebSocket: FakeWS, storage: null });
  t.after(() => rt.close());
  await until(() => sockets.length === 1);
  sockets[0].open();
  await until(() => sockets[0].sent.some((m) => m.type === "refresh"));
  const refresh = sockets[0].sent.find((m) => m.type === "refresh");
  assert.equal(n, 2);
  assert.equal(JSON.parse(Buffer.from(refresh.token.split(".")[1], "base64url")).exp > Date.now() / 1000 + 3000, true);
  assert.equal(sockets.length, 1, "no reconnect");
});

test("a WebSocket that never opens: the next attempt is SSE, which resumes with lastEventId", async (t) => {
  const { FakeWS, sockets } = fakeWebSocket();
  const urls = [];
  const enc = new TextEncoder();
  const fetch = async (url, init) => {
    urls.push(url);
    const body = new ReadableStream({
      start(c) {
        c.enqueue(enc.encode('retry: 2000\n: connected\n\nid: C9\ndata: {"id":"","event":"cursor","data":null,"time":"x"}\n\ndata: {"id":"t:0:1","event":"e","data":{"a":1},"time":"x"}\n\n'));
        if (urls.length === 1) c.close(); // the first stream ends: the client resumes
        else init.signal.addEventListener("abort", () => c.error(new Error("aborted")));
      },
    });
    return new Response(body, { status: 200, headers: { "content-type": "text/event-stream" } });
  };
  const rt = createClient({ url: "http://rt.test", token: () => "tok", WebSocket: FakeWS, fetch, storage: null, minDelay: 1, maxDelay: 5 });
  t.after(() => rt.close());
  const got = [];
  rt.on("e", (d, m) => got.push([m.id, d]));
  await until(() => sockets.length === 1);
  sockets[0].end(1006); // refused before opening
  await until(() => got.length === 1);
  assert.equal(rt.transport, "sse");
  assert.equal(urls[0], "http://rt.test/v1/events?access_token=tok");
  assert.deepEqual(got, [["t:0:1", { a: 1 }]]);
  assert.equal(rt.cursor, "C9");
  await until(() => urls.length === 2);
  assert.equal(urls[1], "http://rt.test/v1/events?access_token=tok&lastEventId=" + encodeURIComponent("C9~t:0:1"));
  await sleep(20);
  assert.deepEqual(got, [["t:0:1", { a: 1 }]], "the second stream's copy of t:0:1 is dropped");
  assert.equal(sockets.length, 1, "SSE worked: WebSocket is not tried again");
});

test('resync "unavailable": the client keeps its position and retries three times, then takes the new cursor', async (t) => {
  const { FakeWS, sockets } = fakeWebSocket();
  const rt = createClient({ url: "http://rt.test", token, WebSocket: FakeWS, storage: memory({ k: '{"cursor":"A","ids":[]}' }), storageKey: "k", minDelay: 1, maxDelay: 5 });
  t.after(() => rt.close());
  const resyncs = [];
  const closes = [];
  rt.on("resync", (r) => resyncs.push(r.reason));
  rt.on("disconnected", (d) => closes.push(d.code));
  for (let i = 0; i < 4; i++) {
    await until(() => sockets.length === i + 1);
    assert.equal(sockets[i].url, "ws://rt.test/v1/ws?cursor=A", `attempt ${i + 1} resumes from A`);
    sockets[i].open();
    sockets[i].frame({ id: "", event: "resync", data: { reason: "unavailable", message: "starting" }, cursor: "B" });
  }
  assert.deepEqual(closes, [1013, 1013, 1013]);
  assert.deepEqual(resyncs, ["unavailable"]);
  assert.equal(rt.cursor, "B");
});

// Engine.IO protocol v4 conformance (https://github.com/socketio/engine.io-protocol, v4 README):
// handshake and errors, long-polling, WebSocket, heartbeat, upgrade, payload limit, CORS. Written
// from the specification; raw HTTP (fetch) and raw WebSocket (ws), no Socket.IO client.
import { describe, test, after } from "node:test";
import assert from "node:assert/strict";
import {
  URL, WS_URL, ORIGIN, SEP, T, PING_INTERVAL, PING_TIMEOUT, MAX_PAYLOAD, PREAUTH_MAX_PAYLOAD,
  SLOW, FAST, closeAll, uid, token, publish, until, eioURL, RawWS, wsSession, wsConnected, pollSession, pollConnected, get, post, pollPackets,
  cursorOf,
} from "./helpers.mjs";

after(closeAll);

async function errorOf(res) {
  assert.equal(res.headers.get("content-type"), "application/json");
  return res.json();
}

async function expectWSRefused(url, headers) {
  const ws = new RawWS(url, { headers });
  const err = await ws.opened.then(() => null, (e) => e);
  assert.ok(err, "the WebSocket handshake must fail");
  return { status: err.status, body: err.body ? JSON.parse(err.body) : undefined };
}

/** Connects a session to "/" on the default namespace over long-polling without reading replies. */
async function postConnect(sid, user) {
  const r = await post(sid, "40" + JSON.stringify({ token: await token(user) }));
  assert.equal(r.status, 200);
}

describe("Engine.IO handshake", () => {
  test("long-polling: the open packet with sid, upgrades, pingInterval, pingTimeout, maxPayload", T, async () => {
    const res = await fetch(eioURL());
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type"), /^text\/plain; charset=UTF-8$/i);
    const text = await res.text();
    assert.equal(text[0], "0");
    const open = JSON.parse(text.slice(1));
    assert.deepEqual(Object.keys(open).sort(), ["maxPayload", "pingInterval", "pingTimeout", "sid", "upgrades"]);
    assert.equal(typeof open.sid, "string");
    assert.ok(open.sid.length >= 16);
    assert.deepEqual(open.upgrades, ["websocket"]);
    assert.equal(open.pingInterval, PING_INTERVAL);
    assert.equal(open.pingTimeout, PING_TIMEOUT);
    assert.equal(open.maxPayload, MAX_PAYLOAD);
  });

  test("WebSocket: the open packet first, with no upgrades", T, async () => {
    const { ws, open } = await wsSession();
    assert.deepEqual(open.upgrades, []);
    assert.equal(open.pingInterval, PING_INTERVAL);
    assert.equal(open.maxPayload, MAX_PAYLOAD);
    ws.close();
  });

  test("session ids are distinct", T, async () => {
    const ids = new Set();
    for (let i = 0; i < 20; i++) ids.add((await pollSession()).sid);
    assert.equal(ids.size, 20);
  });

  const refusals = [
    ["no transport", `${URL}/socket.io/?EIO=4`, "GET", 0, "Transport unknown"],
    ["unknown transport", `${URL}/socket.io/?EIO=4&transport=abc`, "GET", 0, "Transport unknown"],
    ["no EIO", `${URL}/socket.io/?transport=polling`, "GET", 5, "Unsupported protocol version"],
    ["EIO=abc", `${URL}/socket.io/?EIO=abc&transport=polling`, "GET", 5, "Unsupported protocol version"],
    ["EIO=3 (Socket.IO v2 clients)", `${URL}/socket.io/?EIO=3&transport=polling`, "GET", 5, "Unsupported protocol version"],
    ["a handshake by POST", eioURL(), "POST", 2, "Bad handshake method"],
    ["a handshake by PUT", eioURL(), "PUT", 2, "Bad handshake method"],
    ["an unknown sid (GET)", eioURL({ sid: "nope" }), "GET", 1, "Session ID unknown"],
    ["an unknown sid (POST)", eioURL({ sid: "nope" }), "POST", 1, "Session ID unknown"],
    ["transport=websocket without a WebSocket upgrade", `${URL}/socket.io/?EIO=4&transport=websocket`, "GET", 3, "Bad request"],
  ];
  for (const [name, url, method, code, message] of refusals) {
    test(`refuses ${name}: HTTP 400 {"code":${code},"message":"${message}"}`, T, async () => {
      const res = await fetch(url, { method, body: method === "GET" ? undefined : "40" });
      assert.equal(res.status, 400);
      assert.deepEqual(await errorOf(res), { code, message });
    });
  }

  test("refuses EIO=3 and an unknown sid over WebSocket too", T, async () => {
    let r = await expectWSRefused(`${WS_URL}/socket.io/?EIO=3&transport=websocket`);
    assert.equal(r.status, 400);
    assert.deepEqual(r.body, { code: 5, message: "Unsupported protocol version" });
    r = await expectWSRefused(`${WS_URL}/socket.io/?EIO=4&transport=websocket&sid=nope`);
    assert.deepEqual(r.body, { code: 1, message: "Session ID unknown" });
  });

  test("other methods on a session are refused", T, async () => {
    const { sid } = await pollSession();
    const res = await fetch(eioURL({ sid }), { method: "PUT", body: "x" });
    assert.equal(res.status, 400);
    assert.deepEqual(await errorOf(res), { code: 3, message: "Bad request" });
  });
});

describe("Engine.IO over long-polling", () => {
  test("a POST is answered 'ok' (text/html); several packets split on the record separator", T, async () => {
    const user = uid();
    const { sid } = await pollSession();
    const r = await post(sid, ["40" + JSON.stringify({ token: await token(user) }), '421["whoami"]', "6", '422["other"]']);
    assert.equal(r.status, 200);
    assert.equal(r.text, "ok");
    assert.equal(r.headers.get("content-type"), "text/html");
    const { packets } = await pollPackets(sid, 4);
    assert.equal(packets[0].slice(0, 3), '40{');
    assert.ok(cursorOf(packets[1]), `${packets[1]}: the opening cursor packet`);
    assert.deepEqual(packets.slice(2), [`431[{"userId":"${user}"}]`, '432[{"error":"unknown-event"}]']);
  });

  test("the server's packets come in one GET payload, joined by the record separator", T, async () => {
    const user = uid();
    const { sid } = await pollConnected(user);
    await publish([user], { n: 1 });
    await publish([user], { n: 2 });
    await post(sid, '427["whoami"]');
    const { packets } = await pollPackets(sid, 3);
    const events = packets.filter((p) => p.startsWith("42"));
    assert.deepEqual(events.map((p) => JSON.parse(p.slice(2)).slice(0, 2)), [["concept-mastered", { n: 1 }], ["concept-mastered", { n: 2 }]]);
    assert.equal(packets.at(-1), `437[{"userId":"${user}"}]`);
  });

  test("a long-poll GET waits until there is something to send", T, async () => {
    const user = uid();
    const { sid } = await pollConnected(user);
    const pending = pollPackets(sid, 1);
    await publish([user], { late: true });
    const { packets } = await pending;
    assert.deepEqual(JSON.parse(packets[0].slice(2)).slice(0, 2), ["concept-mastered", { late: true }]);
  });

  test("binary attachments as b + base64 (BINARY_EVENT with an ack)", T, async () => {
    const user = uid();
    const { sid } = await pollConnected(user);
    const r = await post(sid, ['452-9["whoami",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]', "bAQIDBA==", "bBQYH"]);
    assert.equal(r.status, 200);
    const { packets } = await pollPackets(sid, 1);
    assert.deepEqual(packets, [`439[{"userId":"${user}"}]`]);
  });

  test("a second concurrent GET gets HTTP 400 and closes the session; the pending GET gets a close packet", T, async () => {
    const { sid } = await pollSession({}, SLOW);
    const [a, b] = await Promise.all([get(sid, SLOW), get(sid, SLOW)]); // one waits, the other overlaps it
    const [refused, pending] = a.status === 400 ? [a, b] : [b, a];
    assert.equal(refused.status, 400);
    assert.deepEqual(JSON.parse(refused.text), { code: 3, message: "Bad request" });
    assert.equal(pending.status, 200);
    assert.deepEqual(pending.packets, ["1"]);
    const after = await get(sid, SLOW);
    assert.equal(after.status, 400);
    assert.deepEqual(JSON.parse(after.text), { code: 1, message: "Session ID unknown" });
  });

  test("a second concurrent POST gets HTTP 400 and closes the session", T, async () => {
    const { sid } = await pollSession({}, SLOW);
    let release;
    const body = new ReadableStream({ start(c) { c.enqueue(new TextEncoder().encode("6")); release = () => c.close(); } });
    const slow = fetch(eioURL({ sid }, SLOW), { method: "POST", body, duplex: "half" });
    let second;
    await until(async () => {
      second = await post(sid, "6", SLOW);
      return second.status === 400;
    });
    assert.deepEqual(JSON.parse(second.text), { code: 3, message: "Bad request" });
    release();
    await slow.then((r) => r.text(), () => {});
    assert.equal((await get(sid, SLOW)).status, 400);
  });

  test("a close packet from the client ends the session; the GET sent with it gets a noop", T, async () => {
    const { sid } = await pollSession({}, SLOW);
    const [pending, closing] = await Promise.all([get(sid, SLOW), post(sid, "1", SLOW)]); // as the protocol's test suite
    assert.equal(closing.status, 200);
    assert.equal(pending.status, 200);
    assert.deepEqual(pending.packets, ["6"]);
    const after = await get(sid, SLOW);
    assert.equal(after.status, 400);
    assert.deepEqual(JSON.parse(after.text), { code: 1, message: "Session ID unknown" });
  });

  test(`a body of maxPayload bytes is accepted; one byte more gets HTTP 413 and closes the session`, T, async () => {
    const { sid } = await pollConnected(uid());
    const atLimit = Array(MAX_PAYLOAD / 2).fill("3").join(SEP) + "x"; // pongs, and a trailing byte on the last
    assert.equal(atLimit.length, MAX_PAYLOAD);
    let r = await post(sid, atLimit.slice(0, -1) + "6");
    assert.equal(r.status, 200);
    r = await post(sid, atLimit + "x");
    assert.equal(r.status, 413);
    assert.deepEqual(JSON.parse(r.text), { code: 3, message: "Bad request" });
    assert.equal((await get(sid)).status, 400);

    // the same without Content-Length (a chunked body)
    const second = await pollConnected(uid());
    const chunks = [atLimit.slice(0, MAX_PAYLOAD / 2), atLimit.slice(MAX_PAYLOAD / 2) + "x"];
    const body = new ReadableStream({ pull(c) { chunks.length ? c.enqueue(new TextEncoder().encode(chunks.shift())) : c.close(); } });
    const res = await fetch(eioURL({ sid: second.sid }), { method: "POST", body, duplex: "half" });
    assert.equal(res.status, 413);
    assert.equal((await get(second.sid)).status, 400);
  });

  test("before the CONNECT the limit is smaller: one byte over it gets HTTP 413", T, async () => {
    const atLimit = Array(PREAUTH_MAX_PAYLOAD / 2).fill("6").join(SEP) + "x"; // noops
    assert.equal(atLimit.length, PREAUTH_MAX_PAYLOAD);
    const { sid } = await pollSession();
    assert.equal((await post(sid, atLimit)).status, 200);
    const r = await post(sid, atLimit + "x");
    assert.equal(r.status, 413);
    assert.deepEqual(JSON.parse(r.text), { code: 3, message: "Bad request" });
    assert.equal((await get(sid)).status, 400);
  });

  test("a malformed payload gets HTTP 400 and closes that session only", T, async () => {
    const bystander = await pollConnected(uid());
    for (const bad of ["abc", "", "4hello" + SEP + "9", "b!!!notbase64"]) {
      const { sid } = await pollSession();
      const r = await post(sid, bad);
      assert.equal(r.status, 400, JSON.stringify(bad));
      assert.deepEqual(JSON.parse(r.text), { code: 3, message: "Bad request" });
      assert.equal((await get(sid)).status, 400);
    }
    await post(bystander.sid, '421["whoami"]');
    const { packets } = await pollPackets(bystander.sid, 1);
    assert.match(packets[0], /^431\[\{"userId"/);
  });
});

describe("Engine.IO heartbeat", () => {
  test("long-polling: the server pings every pingInterval; the client's pong keeps the session", T, async () => {
    const { sid } = await pollSession();
    for (let i = 0; i < 3; i++) {
      const r = await get(sid);
      assert.deepEqual(r.packets, ["2"]);
      assert.equal((await post(sid, "3")).status, 200);
    }
  });

  test("WebSocket: pings from the server, pongs from the client", T, async () => {
    const { ws } = await wsSession({}, "/socket.io/", { autoPong: false });
    for (let i = 0; i < 3; i++) {
      assert.equal(await ws.next(), "2");
      ws.send("3");
    }
    ws.close();
  });

  test("long-polling: no pong within pingTimeout closes the session", T, async () => {
    const path = FAST;
    const { sid } = await pollConnected(uid(), path); // connected: only the heartbeat can end it
    let r;
    do r = await get(sid, path); // never answer the pings
    while (r.status === 200 && !r.packets.includes("1"));
    await until(async () => (await get(sid, path)).status === 400);
    assert.deepEqual(JSON.parse((await get(sid, path)).text), { code: 1, message: "Session ID unknown" });
  });

  test("WebSocket: no pong within pingTimeout closes the connection", T, async () => {
    const ws = new RawWS(`${WS_URL}${FAST}?EIO=4&transport=websocket`, { autoPong: false });
    await ws.opened;
    assert.equal((await ws.next())[0], "0");
    ws.send("40" + JSON.stringify({ token: await token(uid()) }));
    let msg;
    do msg = await ws.next(); // pings until the close; never answered
    while (msg !== null && msg.slice(0, 2) !== "40");
    assert.match(msg, /^40/);
    await ws.closed;
  });

  test("a session that never connects to a namespace is closed (connect timeout)", T, async () => {
    const { ws } = await wsSession({}, FAST); // answers pings
    await ws.closed;
  });

  test("a ping from the client breaks the v4 heartbeat direction: the session is closed", T, async () => {
    const { ws } = await wsSession();
    ws.send("2");
    await ws.closed;
    const { sid } = await pollSession();
    await post(sid, "2");
    assert.equal((await get(sid)).status, 400);
  });
});

describe("Engine.IO over WebSocket", () => {
  test("one packet per message; messages up to maxPayload; beyond it close 1009", T, async () => {
    const user = uid();
    const { ws } = await wsConnected(user);
    ws.send("6" + "x".repeat(MAX_PAYLOAD - 1)); // a noop of exactly maxPayload bytes
    ws.send('421["whoami"]');
    assert.equal(await ws.next(), `431[{"userId":"${user}"}]`);
    ws.send("6" + "x".repeat(MAX_PAYLOAD));
    const { code } = await ws.closed;
    assert.equal(code, 1009);
  });

  test("before the CONNECT messages up to the pre-authentication limit; beyond it close 1009", T, async () => {
    const { ws } = await wsSession();
    ws.send("6" + "x".repeat(PREAUTH_MAX_PAYLOAD - 1));
    ws.send("6" + "x".repeat(PREAUTH_MAX_PAYLOAD));
    const { code } = await ws.closed;
    assert.equal(code, 1009);
  });

  test("malformed packets close that session only", T, async () => {
    const bystanderUser = uid();
    const bystander = await wsConnected(bystanderUser);
    for (const bad of ["", "x", "9", "7hello", Buffer.from([1, 2, 3]), "5"]) {
      const { ws } = await wsConnected(uid());
      ws.send(bad);
      await ws.closed;
    }
    bystander.ws.send('421["whoami"]');
    assert.equal(await bystander.ws.next(), `431[{"userId":"${bystanderUser}"}]`);
  });

  test("a close packet from the client ends the session", T, async () => {
    const { ws } = await wsSession();
    ws.send("1");
    await ws.closed;
  });
});

describe("Engine.IO upgrade from long-polling to WebSocket", () => {
  /** Runs the probe on a polling session with a GET pending; returns the ws and the GET's result. */
  async function probe(sid) {
    const pending = get(sid, SLOW);
    const ws = new RawWS(`${WS_URL}${SLOW}?EIO=4&transport=websocket&sid=${sid}`);
    await ws.opened;
    ws.send("2probe");
    assert.equal(await ws.next(), "3probe");
    return { ws, pending };
  }

  test("2probe → 3probe, noop to the pending GET, 5; then packets flow over the WebSocket", T, async () => {
    const user = uid();
    const { sid } = await pollConnected(user, SLOW);
    const { ws, pending } = await probe(sid);
    const r = await pending;
    assert.equal(r.status, 200);
    assert.deepEqual(r.packets.filter((p) => p !== "2"), ["6"]);
    ws.send("5");
    ws.send('421["whoami"]');
    assert.equal(await ws.next(), `431[{"userId":"${user}"}]`);
    await publish([user], { over: "websocket" });
    assert.deepEqual(JSON.parse((await ws.next()).slice(2)).slice(0, 2), ["concept-mastered", { over: "websocket" }]);
  });

  test("packets queued during the upgrade are flushed over the WebSocket, in order", T, async () => {
    const user = uid();
    const { sid } = await pollConnected(user, SLOW);
    const { ws, pending } = await probe(sid);
    await pending; // the noop
    for (let i = 0; i < 3; i++) await publish([user], { i });
    ws.send("5");
    for (let i = 0; i < 3; i++) assert.deepEqual(JSON.parse((await ws.next()).slice(2))[1], { i });
  });

  test("after the upgrade, polling requests are refused; a second WebSocket for the sid is closed (1008)", T, async () => {
    const { sid } = await pollConnected(uid(), SLOW);
    const { ws, pending } = await probe(sid);
    await pending;
    ws.send("5");
    ws.send('421["whoami"]');
    await ws.next(); // the upgrade is complete once the ack comes back over the WebSocket
    for (const r of [await get(sid, SLOW), await post(sid, "6", SLOW)]) {
      assert.equal(r.status, 400);
      assert.deepEqual(JSON.parse(r.text), { code: 3, message: "Bad request" });
    }
    const again = new RawWS(`${WS_URL}${SLOW}?EIO=4&transport=websocket&sid=${sid}`);
    await again.opened; // accepted, then closed (engine.io-protocol v4, "WebSocket")
    assert.equal((await again.closed).code, 1008);
    ws.send('422["whoami"]');
    assert.match(await ws.next(), /^432\[/);
  });

  test("a failed probe leaves the session on long-polling", T, async () => {
    const user = uid();
    const { sid } = await pollConnected(user, SLOW);
    const ws = new RawWS(`${WS_URL}${SLOW}?EIO=4&transport=websocket&sid=${sid}`);
    await ws.opened;
    ws.send("2notaprobe");
    await ws.closed;
    await post(sid, '421["whoami"]', SLOW);
    const { packets } = await pollPackets(sid, 1, SLOW);
    assert.deepEqual(packets, [`431[{"userId":"${user}"}]`]);
  });

  test("a second WebSocket for a WebSocket-only session is closed (1008); the first goes on", T, async () => {
    const user = uid();
    const { ws, open } = await wsConnected(user);
    const again = new RawWS(`${WS_URL}/socket.io/?EIO=4&transport=websocket&sid=${open.sid}`);
    await again.opened;
    assert.equal((await again.closed).code, 1008);
    ws.send('421["whoami"]');
    assert.equal(await ws.next(), `431[{"userId":"${user}"}]`);
    ws.close();
  });

  test("a failed probe gets a Close frame (1002)", T, async () => {
    const { sid } = await pollConnected(uid(), SLOW);
    const ws = new RawWS(`${WS_URL}${SLOW}?EIO=4&transport=websocket&sid=${sid}`);
    await ws.opened;
    ws.send("4hello");
    assert.equal((await ws.closed).code, 1002);
  });
});

describe("CORS", () => {
  test("an allowed origin gets Access-Control-Allow-Origin with credentials", T, async () => {
    const res = await fetch(eioURL(), { headers: { origin: ORIGIN } });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("access-control-allow-origin"), ORIGIN);
    assert.equal(res.headers.get("access-control-allow-credentials"), "true");
    assert.match(res.headers.get("vary"), /Origin/);
    const { sid } = JSON.parse((await res.text()).slice(1));
    const r = await post(sid, "6", "/socket.io/", { origin: ORIGIN });
    assert.equal(r.headers.get("access-control-allow-origin"), ORIGIN);
    const g = await get(sid, "/socket.io/", { origin: ORIGIN });
    assert.equal(g.headers.get("access-control-allow-origin"), ORIGIN);
  });

  test("another origin gets 403 Forbidden and no CORS headers, on both transports", T, async () => {
    const res = await fetch(eioURL(), { headers: { origin: "http://evil.example" } });
    assert.equal(res.status, 403);
    assert.equal(res.headers.get("access-control-allow-origin"), null);
    assert.deepEqual(await res.json(), { code: 4, message: "Forbidden" });
    const r = await expectWSRefused(`${WS_URL}/socket.io/?EIO=4&transport=websocket`, { origin: "http://evil.example" });
    assert.equal(r.status, 403);
    const ok = new RawWS(`${WS_URL}/socket.io/?EIO=4&transport=websocket`, { headers: { origin: ORIGIN } });
    await ok.opened;
    ok.close();
  });

  test("no Origin header (not a browser): allowed, no CORS headers", T, async () => {
    const res = await fetch(eioURL());
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("access-control-allow-origin"), null);
  });

  test("the preflight is answered", T, async () => {
    const res = await fetch(eioURL(), {
      method: "OPTIONS",
      headers: { origin: ORIGIN, "access-control-request-method": "POST", "access-control-request-headers": "content-type,x-custom" },
    });
    assert.equal(res.status, 204);
    assert.equal(res.headers.get("access-control-allow-origin"), ORIGIN);
    assert.equal(res.headers.get("access-control-allow-credentials"), "true");
    assert.match(res.headers.get("access-control-allow-methods"), /POST/);
    assert.equal(res.headers.get("access-control-allow-headers"), "content-type,x-custom");
  });
});

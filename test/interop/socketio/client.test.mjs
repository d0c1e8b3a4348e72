// Unmodified socket.io-client@4 (the frontends' library) against the server, with default
// transports (polling, then the upgrade to WebSocket), WebSocket only, and polling only.
import { describe, test, after } from "node:test";
import assert from "node:assert/strict";
import { io } from "socket.io-client";
import { URL, T, uid, token, publish, once, collect, until, sleep } from "./helpers.mjs";

const variants = {
  "default transports (polling then upgrade)": {},
  "websocket only": { transports: ["websocket"] },
  "polling only": { transports: ["polling"] },
};

const sockets = [];
after(() => sockets.forEach((s) => s.disconnect()));

/** Connects a socket.io-client socket for user; resolves once connected (and upgraded, if it will). */
async function connect(user, opts, extra = {}) {
  const s = io(URL, { forceNew: true, reconnectionDelay: 50, reconnectionDelayMax: 200, ...opts, auth: { token: await token(user) }, ...extra });
  sockets.push(s);
  const upgraded = opts.transports ? null : once(s.io, "open").then(() => once(s.io.engine, "upgrade"));
  await once(s, "connect");
  if (upgraded) await upgraded;
  return s;
}

/** The events of got (listener arguments [data, {id}]) with those whose id came before left out. */
function dedup(got) {
  const seen = new Set();
  return got.filter(([, { id }]) => !seen.has(id) && seen.add(id));
}

function conceptRecord(users, name = "Fractions") {
  return { conceptId: uid("concept"), userIds: users, conceptName: name, masteryLevel: 0.875 };
}

for (const [name, opts] of Object.entries(variants)) {
  describe(`socket.io-client 4.8.4, ${name}`, () => {
    test('receives each published event with its exact record value, and {"id"} last', T, async () => {
      const alice = uid("alice");
      const s = await connect(alice, opts);
      if (!opts.transports) assert.equal(s.io.engine.transport.name, "websocket");
      const got = collect(s, "concept-mastered");
      const records = [conceptRecord([alice], "Fractions"), conceptRecord([alice], "Dérivées — ∂ 🚀"), conceptRecord([alice, uid()], "x".repeat(70000))];
      const ids = [];
      for (const r of records) ids.push((await publish([alice], r)).id);
      await until(() => got.length === records.length);
      assert.deepEqual(got.map((args) => args[0]), records);
      assert.deepEqual(got.map((args) => args[1]), ids.map((id) => ({ id })), "the last argument is the event's {id}");
    });

    test("session-starting-soon and any other event name arrive under their own name", T, async () => {
      const alice = uid("alice");
      const s = await connect(alice, opts);
      const soon = once(s, "session-starting-soon");
      const record = { sessionId: "s1", userIds: [alice], message: "Starts in 5 minutes", scheduledTime: "2026-11-29T10:00:00Z" };
      await publish([alice], record, { event: "session-starting-soon", topic: "session-notifications" });
      assert.deepEqual((await soon)[0], record);
    });

    test("user B never receives user A's events", T, async () => {
      const alice = uid("alice"), bob = uid("bob");
      const a = await connect(alice, opts);
      const b = await connect(bob, opts);
      const gotA = collect(a, "concept-mastered");
      const gotB = collect(b, "concept-mastered");
      const forAlice = conceptRecord([alice]);
      const forBob = conceptRecord([bob]);
      await publish([alice], forAlice);
      await publish([bob], forBob); // published after: once B has it, A's would have arrived first
      await until(() => gotA.length === 1 && gotB.length === 1);
      assert.deepEqual(gotA.map((x) => x[0]), [forAlice]);
      assert.deepEqual(gotB.map((x) => x[0]), [forBob]);
    });

    test("every connection of a user gets the event", T, async () => {
      const alice = uid("alice");
      const s1 = await connect(alice, opts);
      const s2 = await connect(alice, { transports: ["websocket"] });
      const r = conceptRecord([alice]);
      const [g1, g2] = [once(s1, "concept-mastered"), once(s2, "concept-mastered")];
      await publish([alice], r);
      assert.deepEqual((await g1)[0], r);
      assert.deepEqual((await g2)[0], r);
    });

    test("acks: emitWithAck('whoami') answers the token's user; unknown events get an error", T, async () => {
      const alice = uid("alice");
      const s = await connect(alice, opts);
      assert.deepEqual(await s.emitWithAck("whoami"), { userId: alice });
      assert.deepEqual(await s.emitWithAck("whoami", { userId: "mallory" }), { userId: alice });
      assert.deepEqual(await s.emitWithAck("subscribe", "room-1"), { error: "unknown-event" });
      s.emit("fire-and-forget", 1); // no ack asked: ignored, the connection stays
      assert.deepEqual(await s.emitWithAck("whoami", Buffer.from([1, 2, 3])), { userId: alice }, "binary event");
      assert.equal(s.connected, true);
    });

    test("connect_error with a message a UI can show: missing, expired, bad signature", T, async () => {
      const cases = [
        [{}, /no token/],
        [{ token: await token(uid(), { ttl: -120 }) }, /expired/],
        [{ token: await token(uid(), { secret: "wrong" }) }, /signature/],
        [{ token: "not-a-jwt" }, /malformed/],
      ];
      for (const [auth, message] of cases) {
        const s = io(URL, { ...opts, forceNew: true, reconnection: false, auth });
        sockets.push(s);
        const [err] = await once(s, "connect_error");
        assert.match(err.message, message);
        assert.deepEqual(err.data, { code: "unauthorized" });
        assert.equal(s.connected, false);
        s.disconnect();
      }
    });

    test("the token may come as the access_token query parameter instead", T, async () => {
      const alice = uid("alice");
      const s = io(URL, { ...opts, forceNew: true, reconnection: false, query: { access_token: await token(alice) } });
      sockets.push(s);
      await once(s, "connect");
      assert.deepEqual(await s.emitWithAck("whoami"), { userId: alice });
    });

    // socket.io-client's offset is the last string argument it got: the cursor of the last cursor
    // packet (the opening one, or one a ping brought), not an event's {id}; the replay may
    // bring the event it had again, which the application de-duplicates on id.
    test("recovery: after a dropped transport the socket is recovered and gets what it missed", T, async () => {
      const alice = uid("alice");
      const s = await connect(alice, opts);
      const got = collect(s, "concept-mastered");
      const first = conceptRecord([alice], "before");
      await publish([alice], first);
      await until(() => got.length === 1);
      const id = s.id;

      s.io.reconnection(false);
      const down = once(s, "disconnect");
      s.io.engine.close(); // the transport drops
      await down;
      const missed = [conceptRecord([alice], "missed 1"), conceptRecord([alice, uid()], "missed 2")];
      for (const r of missed) await publish([alice], r);
      await publish([uid()], conceptRecord([], "someone else's"));

      s.io.reconnection(true);
      s.connect();
      await once(s, "connect");
      assert.equal(s.recovered, true);
      assert.notEqual(s.id, undefined);
      await until(() => dedup(got).length === 3);
      assert.deepEqual(dedup(got).map((a) => a[0]), [first, ...missed]);
      assert.ok(got.length <= 4, `${got.length} events: at most the one it had twice`);
      const live = conceptRecord([alice], "live");
      await publish([alice], live);
      await until(() => dedup(got).length === 4);
      assert.deepEqual(dedup(got)[3][0], live);
      assert.ok(id);
    });

    test("recovery by itself: the client reconnects after the server drops the transport", T, async () => {
      const alice = uid("alice");
      const s = await connect(alice, opts);
      const got = collect(s, "concept-mastered");
      await publish([alice], conceptRecord([alice], "before"));
      await until(() => got.length === 1);
      const down = once(s, "disconnect");
      // A second connection of another client must not be affected; the server-side drop is
      // simulated by the engine transport closing under the socket.
      s.io.engine.transport.close();
      const [reason] = await down;
      assert.equal(reason, "transport close");
      await once(s, "connect");
      assert.equal(s.recovered, true);
    });

    // The opening cursor packet gives a client that received nothing an offset all the same.
    test("without a prior event the socket is recovered from the opening cursor and gets what it missed", T, async () => {
      const alice = uid("alice");
      const s = await connect(alice, opts);
      const got = collect(s, "concept-mastered");
      await sleep(1000);
      s.io.reconnection(false);
      const down = once(s, "disconnect");
      s.io.engine.close(); // the transport drops
      await down;
      const missed = [conceptRecord([alice], "missed 1"), conceptRecord([alice, uid()], "missed 2")];
      for (const r of missed) await publish([alice], r);
      await publish([uid()], conceptRecord([], "someone else's"));

      s.io.reconnection(true);
      s.connect();
      await once(s, "connect");
      assert.equal(s.recovered, true);
      const live = conceptRecord([alice], "live");
      await publish([alice], live);
      await until(() => got.length >= 3);
      assert.deepEqual(got.map((a) => a[0]), [...missed, live], "exactly what it missed, then live events");
    });
  });
}

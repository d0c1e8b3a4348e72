// Socket.IO protocol v5 conformance (https://github.com/socketio/socket.io-protocol, v5 README)
// on raw Engine.IO sessions: CONNECT and its refusals, events from the hub, acks, binary packets,
// DISCONNECT, connection state recovery, and malformed packets, over WebSocket and long-polling.
import { describe, test, after } from "node:test";
import assert from "node:assert/strict";
import {
  T, FAST, SEP, closeAll, uid, token, publish, wsSession, wsConnected, pollSession, pollConnected, post, pollPackets,
  cursorOf,
} from "./helpers.mjs";

after(closeAll);

/**
 * A Socket.IO session on a raw transport, with the same interface over WebSocket and
 * long-polling: send(...packets) and next() (the next packet other than a ping).
 */
const transports = {
  websocket: {
    async open(path) {
      const { ws } = await wsSession({}, path);
      return { send: (...ps) => ps.forEach((p) => ws.send(p)), next: () => ws.next(), closed: () => ws.closed.then(() => true) };
    },
  },
  polling: {
    async open(path = "/socket.io/") {
      const { sid } = await pollSession({}, path);
      const buffered = [];
      return {
        send: (...ps) => post(sid, ps.map((p) => (Buffer.isBuffer(p) ? "b" + p.toString("base64") : p)).join(SEP), path),
        async next() {
          if (!buffered.length) {
            const r = await pollPackets(sid, 1, path);
            if (r.status !== 200) return null;
            buffered.push(...r.packets);
          }
          const p = buffered.shift();
          return p === "1" ? null : p;
        },
        async closed() {
          for (;;) {
            const r = await pollPackets(sid, 1, path);
            if (r.status !== 200 || r.packets.includes("1")) return true;
          }
        },
      };
    },
  },
};

/** A session connected to "/" as user: s.connect is the CONNECT reply, s.cursor the opening cursor. */
async function connected(kind, user) {
  const s = await transports[kind].open();
  await s.send("40" + JSON.stringify({ token: await token(user) }));
  const reply = await s.next();
  assert.match(reply, /^40\{/);
  s.connect = JSON.parse(reply.slice(2));
  const opening = await s.next();
  s.cursor = cursorOf(opening);
  assert.ok(s.cursor, `after the CONNECT reply ${opening}: want the opening cursor packet`);
  return s;
}

/** The next packet that is not a cursor packet (one may come at any ping once the hub moved). */
async function nextNotCursor(s) {
  for (;;) {
    const p = await s.next();
    if (!cursorOf(p)) return p;
  }
}

/** The user's identity as the server sees it, through an ack: proves the session still works. */
// whoami asks for the session's user and returns the ack, passing over the `cursor` control events
// that the server may send at any time (one at each ping: a slow test outlives a 300 ms interval).
async function whoami(s, id = 99) {
  await s.send(`42${id}["whoami"]`);
  for (;;) {
    const p = await s.next();
    if (!p.startsWith('42["cursor",')) return p;
  }
}

for (const kind of Object.keys(transports)) {
  describe(`Socket.IO over ${kind}`, () => {
    test("CONNECT with a valid token: {sid, pid}", T, async () => {
      const s = await transports[kind].open();
      await s.send('40{"token":"' + (await token(uid())) + '"}');
      const reply = await s.next();
      assert.match(reply, /^40\{/);
      const data = JSON.parse(reply.slice(2));
      assert.deepEqual(Object.keys(data).sort(), ["pid", "sid"]);
      assert.equal(typeof data.sid, "string");
      assert.equal(typeof data.pid, "string");
    });

    test("CONNECT refused: CONNECT_ERROR with a message and data.code, and the session stays open", T, async () => {
      const s = await transports[kind].open();
      const cases = [
        ["40", /no token/],
        ['40{"token":42}', /no token/],
        ["40" + JSON.stringify({ token: await token(uid(), { ttl: -120 }) }), /expired/],
        ["40" + JSON.stringify({ token: await token(uid(), { secret: "wrong" }) }), /signature/],
        ['40{"token":"a.b.c"}', /malformed/],
      ];
      for (const [packet, message] of cases) {
        await s.send(packet);
        const reply = await s.next();
        assert.match(reply, /^44\{/);
        const err = JSON.parse(reply.slice(2));
        assert.match(err.message, message);
        assert.deepEqual(err.data, { code: "unauthorized" });
      }
      const user = uid();
      await s.send("40" + JSON.stringify({ token: await token(user) }));
      assert.match(await s.next(), /^40\{/);
      assert.equal(await whoami(s), `4399[{"userId":"${user}"}]`);
    });

    test("CONNECT to an unknown namespace: Invalid namespace", T, async () => {
      const s = await transports[kind].open();
      await s.send('40/admin,{"token":"x"}');
      assert.equal(await s.next(), '44/admin,{"message":"Invalid namespace"}');
      await s.send("40/random");
      assert.equal(await s.next(), '44/random,{"message":"Invalid namespace"}');
      const user = uid();
      await s.send("40" + JSON.stringify({ token: await token(user) }));
      assert.match(await s.next(), /^40\{/);
      await s.send('42/admin,1["whoami"]'); // a namespace the client is not in: ignored
      assert.equal(await whoami(s), `4399[{"userId":"${user}"}]`);
    });

    test('events from the hub: 42[<event>, <record value>, {"id": <topic:partition:offset>}]', T, async () => {
      const user = uid();
      const s = await connected(kind, user);
      const data = { conceptId: "c1", userIds: [user], conceptName: "Fractions", masteryLevel: 1 };
      const { id } = await publish([user], data);
      assert.match(id, /^concept-notifications:\d+:\d+$/);
      const packet = await nextNotCursor(s);
      assert.match(packet, /^42\[/);
      assert.deepEqual(JSON.parse(packet.slice(2)), ["concept-mastered", data, { id }]);
    });

    test("EVENT with an ack id gets an ACK with the same id; without one, nothing", T, async () => {
      const user = uid();
      const s = await connected(kind, user);
      await s.send('42["whoami"]', '421["whoami"]', '42456["message-with-ack",1,"2",{"3":[false]}]', '420["whoami"]');
      assert.equal(await s.next(), `431[{"userId":"${user}"}]`);
      assert.equal(await s.next(), '43456[{"error":"unknown-event"}]');
      assert.equal(await s.next(), `430[{"userId":"${user}"}]`);
      await s.send('4212[42,"numeric event name"]');
      assert.equal(await s.next(), '4312[{"error":"unknown-event"}]');
    });

    test("ACKs from the client are accepted and ignored", T, async () => {
      const user = uid();
      const s = await connected(kind, user);
      await s.send('437[]', '438["x",{"y":1}]');
      assert.equal(await whoami(s), `4399[{"userId":"${user}"}]`);
    });

    test("BINARY_EVENT and BINARY_ACK with attachments", T, async () => {
      const user = uid();
      const s = await connected(kind, user);
      await s.send('452-7["whoami",{"_placeholder":true,"num":0},{"nested":[{"_placeholder":true,"num":1}]}]', Buffer.from([1, 2, 3]), Buffer.from([4, 5, 6]));
      assert.equal(await s.next(), `437[{"userId":"${user}"}]`);
      await s.send('461-3[{"_placeholder":true,"num":0}]', Buffer.from([9]));
      await s.send('451-["other",{"_placeholder":true,"num":0}]', Buffer.alloc(0));
      assert.equal(await whoami(s), `4399[{"userId":"${user}"}]`);
    });

    test("DISCONNECT from the client closes the session", T, async () => {
      const s = await connected(kind, uid());
      await s.send("41");
      assert.equal(await s.closed(), true);
    });

    // The offset is the last string argument the client got (socket.io-client keeps it): here the
    // opening cursor, events ending with an {"id"} object. The replay starts there, so the event
    // the client had comes again (it de-duplicates on id), then a cursor packet past the replay.
    test("recovery: the same pid and the missed events when the offset is readable; else a new pid", T, async () => {
      const user = uid();
      const s = await connected(kind, user);
      const { id } = await publish([user], { n: 0 });
      assert.deepEqual(JSON.parse((await nextNotCursor(s)).slice(2)), ["concept-mastered", { n: 0 }, { id }]);
      await s.send("41");
      const sent = [{ n: 0 }, { n: 1 }, { n: 2 }];
      const ids = [id];
      for (const m of sent.slice(1)) ids.push((await publish([user], m)).id);

      const again = await transports[kind].open();
      await again.send("40" + JSON.stringify({ token: await token(user), pid: s.connect.pid, offset: s.cursor }));
      const reply = JSON.parse((await again.next()).slice(2));
      assert.equal(reply.pid, s.connect.pid);
      for (const [i, m] of sent.entries()) {
        assert.deepEqual(JSON.parse((await again.next()).slice(2)), ["concept-mastered", m, { id: ids[i] }]);
      }
      const past = cursorOf(await again.next());
      assert.ok(past && past !== s.cursor, "a cursor packet past the replay");

      for (const offset of ["not-a-cursor", "", 42]) {
        const fresh = await transports[kind].open();
        await fresh.send("40" + JSON.stringify({ token: await token(user), pid: s.connect.pid, offset }));
        const r = JSON.parse((await fresh.next()).slice(2));
        assert.notEqual(r.pid, s.connect.pid, `offset ${JSON.stringify(offset)}`);
      }
    });

    test("a token that expires closes the connection with an Engine.IO close", T, async () => {
      const s = await transports[kind].open();
      await s.send("40" + JSON.stringify({ token: await token(uid(), { ttl: 1 }) }));
      assert.match(await s.next(), /^40\{/);
      assert.equal(await s.closed(), true);
    });

    const malformed = [
      ["an unknown packet type", "4abc"],
      ["an unknown packet type digit", "47[]"],
      ["a payload that is not an array", "42{}"],
      ["an empty event", "42[]"],
      ["an event without payload", "42"],
      ["an event name of another type", '42[{"a":1}]'],
      ["an invalid ack id", '42abc["whoami"]'],
      ["an ack id beyond 2^53-1", '429007199254740992["whoami"]'],
      ["invalid JSON", '42["whoami"'],
      ["a reserved event name", '42["disconnect"]'],
      ["another reserved event name", '421["connect"]'],
      ["a DISCONNECT with a payload", '41{"x":1}'],
      ["a CONNECT_ERROR from the client", '44{"message":"x"}'],
      ["a second CONNECT", "40{}"],
      ["too many attachments", '4511-["whoami"]'],
      ["an absurd attachment count", '45999999999999-["whoami"]'],
      ["attachments without a count", '45-["whoami"]'],
      ["a placeholder beyond the attachments", '451-["whoami",{"_placeholder":true,"num":1}]'],
      ["a placeholder with a negative num", '451-["whoami",{"_placeholder":true,"num":-1}]'],
      ["a placeholder without num", '451-["whoami",{"_placeholder":true}]'],
      ["text while attachments are awaited", '451-["whoami",{"_placeholder":true,"num":0}]', "42[\"x\"]"],
      ["an attachment nobody announced", Buffer.from([1, 2])],
      ["an ACK that is not an array", '431{"a":1}'],
    ];
    test("malformed packets close that session only", T, async () => {
      const bystanderUser = uid();
      const bystander = await connected(kind, bystanderUser);
      for (const [name, ...packets] of malformed) {
        const s = await connected(kind, uid());
        await s.send(...packets);
        assert.equal(await s.closed(), true, name);
      }
      assert.equal(await whoami(bystander), `4399[{"userId":"${bystanderUser}"}]`);
    });

    test("packets before CONNECT close the session", T, async () => {
      for (const p of ['42["whoami"]', '421["whoami"]', "43[]"]) {
        const s = await transports[kind].open();
        await s.send(p);
        assert.equal(await s.closed(), true, p);
      }
    });
  });
}

describe("Socket.IO connect timeout", () => {
  test("a session that never sends CONNECT is closed", T, async () => {
    const s = await transports.polling.open(FAST);
    assert.equal(await s.closed(), true);
  });
});

describe("Socket.IO over both transports at once", () => {
  test("a user's WebSocket and long-polling connections both get the event", T, async () => {
    const user = uid();
    const ws = await wsConnected(user);
    const poll = await pollConnected(user);
    const { id } = await publish([user], { both: true });
    let p = await ws.ws.next();
    while (cursorOf(p)) p = await ws.ws.next();
    assert.deepEqual(JSON.parse(p.slice(2)), ["concept-mastered", { both: true }, { id }]);
    const packets = [];
    while (!packets.some((p) => !cursorOf(p))) packets.push(...(await pollPackets(poll.sid, 1)).packets);
    assert.deepEqual(JSON.parse(packets.find((p) => !cursorOf(p)).slice(2)), ["concept-mastered", { both: true }, { id }]);
  });
});

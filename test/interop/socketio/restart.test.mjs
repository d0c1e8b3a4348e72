// socket.io-client reconnects by itself after the server restarts (a new process: new hub, no
// sessions), and receives events again. Runs against the auxiliary server, which
// POST /control/restart shuts down (as main does on SIGTERM) and starts again on the same port.
import { describe, test, after } from "node:test";
import assert from "node:assert/strict";
import { io } from "socket.io-client";
import { URL, AUX_URL, T, uid, token, publish, once, collect, until } from "./helpers.mjs";

const sockets = [];
after(() => sockets.forEach((s) => s.disconnect()));

const variants = {
  "default transports": {},
  "websocket only": { transports: ["websocket"] },
  "polling only": { transports: ["polling"] },
};

describe("reconnect after the server restarts", () => {
  for (const [name, opts] of Object.entries(variants)) {
    test(name, T, async () => {
      const user = uid();
      const s = io(AUX_URL, { ...opts, forceNew: true, reconnectionDelay: 100, reconnectionDelayMax: 300, auth: { token: await token(user) } });
      sockets.push(s);
      const upgraded = opts.transports ? null : once(s.io, "open").then(() => once(s.io.engine, "upgrade"));
      await once(s, "connect");
      if (upgraded) await upgraded;
      const got = collect(s, "concept-mastered");
      await publish([user], { before: true }, { aux: true });
      await until(() => got.length === 1);

      const down = once(s, "disconnect");
      const back = down.then(() => once(s, "connect"));
      const restarted = await fetch(`${URL}/control/restart`, { method: "POST" });
      assert.equal(restarted.status, 200);
      const [reason] = await down;
      assert.equal(reason, "transport close");
      await back;
      assert.equal(s.connected, true);

      await publish([user], { after: true }, { aux: true });
      await until(() => got.length === 2);
      assert.deepEqual(got.map((a) => a[0]), [{ before: true }, { after: true }]);
      assert.deepEqual(await s.emitWithAck("whoami"), { userId: user });
    });
  }
});

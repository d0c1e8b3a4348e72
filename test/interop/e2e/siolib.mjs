// Helpers of the Socket.IO end-to-end scripts (socketio.mjs, socketio-recovery.mjs): a TCP proxy
// that plays the network (or a load balancer) between socket.io-client and the service, a
// step protocol with the Go test over stdin/stdout, and a recorder of what a socket sees.
import net from "node:net";
import readline from "node:readline";

/**
 * A loopback TCP proxy to target (an http:// base URL). It stands for the network between a
 * client and the service, or for a load balancer in front of several nodes:
 *   drop()    the network is lost: every proxied connection is destroyed and new ones are
 *             refused (accepted, then destroyed at once) until resume();
 *   refuse()  new connections are refused, the established ones stay (a node going away
 *             behind a load balancer that has not picked another yet);
 *   resume(t) new connections are proxied again, to t if given (the load balancer now picks
 *             another node).
 * url is the proxy's base URL; close() stops it.
 */
export async function tcpProxy(target) {
  let to = new URL(target);
  let accepting = true;
  const open = new Set();
  const server = net.createServer((client) => {
    if (!accepting) {
      client.destroy();
      return;
    }
    const upstream = net.connect(Number(to.port), to.hostname);
    open.add(client);
    open.add(upstream);
    const kill = () => {
      client.destroy();
      upstream.destroy();
      open.delete(client);
      open.delete(upstream);
    };
    for (const s of [client, upstream]) {
      s.on("error", kill);
      s.on("close", kill);
    }
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", resolve);
  });
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    drop() {
      accepting = false;
      for (const s of open) s.destroy();
      open.clear();
    },
    refuse() {
      accepting = false;
    },
    resume(newTarget) {
      if (newTarget) to = new URL(newTarget);
      accepting = true;
    },
    close() {
      accepting = false;
      for (const s of open) s.destroy();
      server.close();
    },
  };
}

let stdinLines;

/**
 * Tells the Go test that the script reached a step where it must act ({"step": name, ...extra}
 * on stdout) and waits for its answer, one line on stdin, which it returns. Every other line the
 * script prints is its final report.
 */
export async function step(name, extra = {}) {
  stdinLines ??= readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]();
  process.stdout.write(JSON.stringify({ step: name, ...extra }) + "\n");
  const { value, done } = await stdinLines.next();
  if (done) throw new Error(`stdin closed while waiting for the answer to step ${name}`);
  return value;
}

/**
 * Records what a socket.io-client socket sees: every event with its arguments (events), and
 * every connect ({recovered, transport, pid}), connect_error ({message, data}) and disconnect
 * (reason), in the order they happened (log). The key of an event is its data's conceptId or
 * sessionId (every record of these scripts has a unique one).
 */
export function track(name, socket) {
  const t = { name, socket, events: [], connects: [], connectErrors: [], disconnects: [] };
  socket.on("connect", () =>
    t.connects.push({ recovered: socket.recovered, transport: socket.io.engine?.transport?.name ?? null, pid: socket._pid ?? null, atEvent: t.events.length }));
  socket.on("connect_error", (err) => t.connectErrors.push({ message: String(err?.message ?? err), data: err?.data ?? null }));
  socket.on("disconnect", (reason) => t.disconnects.push({ reason, atEvent: t.events.length }));
  socket.onAny((event, ...args) => t.events.push({ event, args }));
  t.keys = () => t.events.map((e) => key(e.args[0]));
  t.has = (k) => t.events.some((e) => key(e.args[0]) === k);
  // A copy: what happens after the report (the script's own disconnect) is not in it.
  t.report = () => structuredClone({ name, events: t.events, connects: t.connects, connectErrors: t.connectErrors, disconnects: t.disconnects });
  return t;
}

/** The unique key of a record value of these scripts (or of an event's data). */
export function key(data) {
  if (data === null || typeof data !== "object") return null;
  return data.conceptId ?? data.sessionId ?? null;
}

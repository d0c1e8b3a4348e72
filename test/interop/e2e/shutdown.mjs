// Shutdown end to end: the `ws` client (token in ?access_token= and in the subprotocol pair) and
// the `eventsource` client connect, and once the hub holds them the script prints
// {"ready":true} on a line of its own. The Go test (delivery_test.go) then stops the service and
// reads the last line: how each connection ended, i.e. the WebSocket close code and reason, and
// the final SSE frames (a "disconnect" control frame is expected).
//
// E2E_TOKEN: a user token. Output: {"ready":true}, then {connections: [report()]}.
import { env, fail, done, until, waitConnections, openWS, openSSE, report } from "./lib.mjs";

const url = env("E2E_URL");
const token = env("E2E_TOKEN");

const ws = openWS(url, { name: "ws-query", token });
const wsp = openWS(url, { name: "ws-subprotocol", token, auth: "subprotocol" });
const sse = openSSE(url, { name: "sse", token });
const conns = [ws, wsp, sse];
// The stream has ended once the disconnect frame came, or EventSource saw it end (an error
// after open: it then tries to reconnect); either way the Go test judges what it got.
let error;
const sseEnded = () => sse.errors.length > 0 || sse.frames.some((f) => f.raw.includes('"event":"disconnect"'));
try {
  await Promise.all(conns.map((c) => c.opened));
  await waitConnections(url, conns.length);
  process.stdout.write(JSON.stringify({ ready: true }) + "\n");
  await until("both WebSockets to close and the SSE stream to end", () => ws.closed && wsp.closed && sseEnded());
} catch (err) {
  error = err.stack ?? String(err);
} finally {
  sse.close(); // EventSource would reconnect to the stopped service
}
if (error) fail(error, { connections: conns.map(report) });
else done({ connections: conns.map(report) });

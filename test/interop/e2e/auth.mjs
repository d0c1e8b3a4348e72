// Client authentication end to end: for each token case, the `ws` client tries /v1/ws (token in
// ?access_token= and, when there is one, in the subprotocol pair) and the `eventsource` client
// tries /v1/events (?access_token=), and the script reports what the server answered: the HTTP
// status, Content-Type and body a refused WebSocket sees in 'unexpected-response', and the
// response EventSource's fetch got plus the error it raised. The Go test (delivery_test.go)
// requires 401 problem+json before any upgrade or stream for every bad token, and a working
// connection for the good one.
//
// E2E_TOKENS (JSON): {"<case>": "<token or empty>"}.
// Output: {results: [{case, endpoint, via, opened, status, contentType, body, wwwAuthenticate,
// eventSourceError}]}.
import WebSocket from "ws";
import { EventSource } from "eventsource";
import { env, fail, done } from "./lib.mjs";

const url = env("E2E_URL");
const tokens = JSON.parse(env("E2E_TOKENS"));

function readBody(res) {
  return new Promise((resolve) => {
    let body = "";
    res.setEncoding("utf8");
    res.on("data", (d) => (body += d));
    res.on("end", () => resolve(body));
    res.on("error", () => resolve(body));
  });
}

/** Tries a WebSocket; resolves with what happened, never rejects. */
function tryWS(token, via) {
  const q = new URLSearchParams();
  let protocols;
  if (token && via === "query") q.set("access_token", token);
  if (token && via === "subprotocol") protocols = ["realtime.v1", "bearer." + token];
  const target = `${url.replace(/^http/, "ws")}/v1/ws${q.size ? "?" + q : ""}`;
  return new Promise((resolve) => {
    const ws = new WebSocket(target, protocols);
    ws.on("open", () => {
      resolve({ opened: true, status: 101, protocol: ws.protocol });
      ws.close(1000);
    });
    ws.on("unexpected-response", async (req, res) => {
      const body = await readBody(res);
      resolve({
        opened: false,
        status: res.statusCode,
        contentType: res.headers["content-type"] ?? null,
        wwwAuthenticate: res.headers["www-authenticate"] ?? null,
        upgrade: res.headers["upgrade"] ?? null,
        body,
      });
      req.destroy();
    });
    ws.on("error", (err) => resolve({ opened: false, status: null, clientError: String(err) }));
  });
}

/** Tries an EventSource, recording the response its fetch got; resolves, never rejects. */
function trySSE(token) {
  const q = new URLSearchParams();
  if (token) q.set("access_token", token);
  let response = null;
  const es = new EventSource(`${url}/v1/events${q.size ? "?" + q : ""}`, {
    fetch: async (input, init) => {
      const res = await fetch(input, init);
      response = {
        status: res.status,
        contentType: res.headers.get("content-type"),
        wwwAuthenticate: res.headers.get("www-authenticate"),
        body: res.status === 200 ? null : await res.clone().text(),
      };
      return res;
    },
  });
  return new Promise((resolve) => {
    es.addEventListener("open", () => {
      resolve({ opened: true, ...response });
      es.close();
    });
    es.addEventListener("error", (e) => {
      resolve({ opened: false, ...response, eventSourceError: { code: e.code ?? null, message: e.message ?? null, closed: es.readyState === EventSource.CLOSED } });
      es.close();
    });
  });
}

const results = [];
let error;
try {
  for (const [name, token] of Object.entries(tokens)) {
    results.push({ case: name, endpoint: "/v1/ws", via: "query", ...(await tryWS(token, "query")) });
    if (token) results.push({ case: name, endpoint: "/v1/ws", via: "subprotocol", ...(await tryWS(token, "subprotocol")) });
    results.push({ case: name, endpoint: "/v1/events", via: "query", ...(await trySSE(token)) });
  }
} catch (err) {
  error = err.stack ?? String(err);
}
if (error) fail(error, { results });
else done({ results });

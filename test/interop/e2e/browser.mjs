// The demo page end to end in a real browser: headless Chromium (the Debian package, driven by
// playwright-core) opens the page the service serves at "/", connects as a user over each
// transport — WebSocket and SSE through the project's JS client (/static/realtime.min.js, built
// from clients/js), Socket.IO through the page's unmodified socket.io-client@4 bundle
// (/static/vendor/socket.io.min.js) — and shows the notifications that arrive: two sent
// through the page's own form (the HTTP API), one produced by KafkaJS straight to
// concept-notifications. The service runs in
// development mode (no REALTIME_JWT_SECRET, no REALTIME_API_KEYS), so the page gets its token
// from /v1/dev/token and sends without an API key. The Go test (browser_test.go) checks the
// report.
//
// Environment: E2E_URL, E2E_BROKER, E2E_CHROMIUM (the browser binary), E2E_ARTIFACTS (where
// demo-<transport>.png screenshots go), E2E_TRANSPORTS (comma-separated, default
// "websocket,sse,socketio").
// Then two first-run checks: a Socket.IO connection's status once its engine has upgraded to
// WebSocket (upgrade: {status, problems}), and switching users on one page — Disconnect alice,
// Connect as bob — (switchUser: {heading, count, ids, bobSent, seen, cursorAtSwitch, bobURL,
// problems}).
// Then the cursor contract (docs/client-protocol.md, "Cursor"), per transport (resume: [...]):
// the page gets two events, Disconnect, two more are sent, Connect again; what it held (held:
// {cursor, since}), the resume token its new WebSocket or SSE request sent (token; Socket.IO
// sends it in the CONNECT auth, out of sight), and after the replay its list and counters
// (after: {count, ids, dropped, since, cursorMoved, wire}). On Socket.IO, also a dropped engine
// that socket.io-client recovers by itself (recovery: {status, sent, shown, dropped}).
// Then the same through a reload (reload: [...]): the page gets two events, leaves (about:blank),
// two more are sent, and the page is opened again in the same tab: it must connect by itself as
// the same user over the same transport, resume with the stored cursor and IDs, and show the
// two it missed above the two before, each once (after: {status, ...}).
// wire is every event ID the page's WebSockets and SSE responses carried (the JS client drops
// copies before the page sees them, so copies the server sent show only there; Socket.IO's
// frames are not read: there the page drops copies itself, in dropped).
// Output: {transports: [{transport, user, status, notes: [{via, id, event, text, data, kind,
// meta}], count, screenshot, afterDisconnect: {status, state}, problems}], upgrade, switchUser,
// resume: [{transport, before, away, held, token, after, recovery, problems}],
// reload: [{transport, before, away, held, token, after, problems}]}.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { env, fail, done, waitConnections, kafka, producer, produce, DEADLINE_MS } from "./lib.mjs";

const url = env("E2E_URL");
const broker = env("E2E_BROKER");
const executablePath = env("E2E_CHROMIUM");
const artifacts = env("E2E_ARTIFACTS");
const transports = (process.env.E2E_TRANSPORTS || "websocket,sse,socketio").split(",");

const LABELS = { websocket: "WebSocket", sse: "SSE", socketio: "Socket.IO" };

/** What the page shows of a notification. */
async function shown(li) {
  return {
    id: await li.getAttribute("data-id"),
    event: await li.locator(".event").textContent(),
    text: await li.locator(".text").textContent(),
    data: JSON.parse(await li.locator("pre").textContent()),
    kind: await li.getAttribute("class"),
    meta: await li.locator(".meta").textContent(),
  };
}

/**
 * Waits for the page's next notification after `before` of them and returns what it shows. Every
 * transport carries the event ID (WebSocket and SSE in the frame's id, Socket.IO in the event's
 * trailing {"id"} argument), which the page keeps in data-id: it must be id.
 */
async function note(page, before, id) {
  const li = page.locator(`#notifications li[data-id="${id}"]`);
  await page.waitForFunction((n) => document.querySelectorAll("#notifications li").length > n, before, { timeout: DEADLINE_MS });
  await li.waitFor({ timeout: DEADLINE_MS });
  return shown(li);
}

const count = (page) => page.locator("#notifications li").count();

/** Sends through the page's form and returns the event ID the page says it got back. */
async function sendThroughPage(page, kind, to) {
  await page.selectOption("#kind", kind);
  await page.fill("#to", to);
  await page.locator("#send-result").evaluate((el) => (el.textContent = ""));
  await page.click("#send");
  await page.waitForFunction(() => document.querySelector("#send-result").textContent !== "", null, { timeout: DEADLINE_MS });
  const result = await page.textContent("#send-result");
  const m = /^sent: (\S+)$/.exec(result);
  if (!m) throw new Error(`the page's send form says ${JSON.stringify(result)}`);
  return m[1];
}

/** A page that records its problems (errors, failed requests, HTTP errors) in r.problems. */
async function watchedPage(context, r) {
  const page = await context.newPage();
  page.on("pageerror", (e) => r.problems.push(`page error: ${e}`));
  page.on("console", (m) => m.type() === "error" && r.problems.push(`console error: ${m.text()} (${m.location()?.url ?? "?"})`));
  page.on("response", (q) => q.status() >= 400 && r.problems.push(`HTTP ${q.status()}: ${q.request().method()} ${q.url()}`));
  const res = await page.goto(url + "/");
  if (res?.status() !== 200) throw new Error(`GET / answered ${res?.status()}: the service does not serve the demo page`);
  return page;
}

/** Connects the page as user over transport and waits for the connected status. */
async function connectAs(page, user, transport) {
  await page.fill("#user", user);
  await page.selectOption("#transport", transport);
  await page.click("#connect");
  await page.waitForFunction(() => document.querySelector("#status").dataset.state === "open", null, { timeout: DEADLINE_MS });
}

/** Waits until the page shows the notification with event ID id. */
const shows = (page, id) => page.locator(`#notifications li[data-id="${id}"]`).waitFor({ timeout: DEADLINE_MS });

/** Sends a notification through the HTTP API (not the page) and returns its event ID. */
async function sendAPI(kind, user) {
  const body = kind === "concept-mastered"
    ? { conceptId: "js-arrays", userIds: [user], conceptName: "JavaScript Arrays", masteryLevel: 0.92 }
    : { sessionId: "session-42", userIds: [user], message: "Your session starts in 5 minutes", scheduledTime: new Date(Date.now() + 300000).toISOString() };
  const res = await fetch(`${url}/v1/notifications/${kind}`, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
  const out = await res.json();
  if (!res.ok) throw new Error(`POST /v1/notifications/${kind}: ${res.status} ${JSON.stringify(out)}`);
  return out.id;
}

/** The resume token of the page's last connection: ?cursor= on its WebSocket, ?lastEventId= on
 * its SSE request; null on Socket.IO (it goes in the CONNECT auth). */
const resumeToken = (page, transport) => page.evaluate((t) => {
  if (t === "websocket") return new URL(window.__sockets.at(-1).url).searchParams.get("cursor");
  if (t === "sse") return new URL(window.__streams.at(-1), location.href).searchParams.get("lastEventId");
  return null;
}, transport);

/** What the page shows and holds after a resume from old, the cursor it held before. */
const afterResume = (page, old) => page.evaluate((old) => ({
  status: document.querySelector("#status").textContent,
  count: document.querySelector("#count").textContent,
  ids: [...document.querySelectorAll("#notifications li")].map((li) => li.dataset.id),
  dropped: demo.dropped,
  since: [...demo.since],
  cursorMoved: demo.cursor !== "" && demo.cursor !== old,
  shown: document.querySelector("#resume").textContent,
  wire: [...window.__wire],
}), old);

/** Waits for the cursor frame that ends a replay: a new cursor, no IDs since. */
const replayEnds = (page, old, r) => page.waitForFunction((old) => demo.cursor !== old && demo.since.length === 0, old, { timeout: DEADLINE_MS })
  .catch(() => r.problems.push("no cursor frame after the replay"));

/** Clicks Disconnect and waits until the page's WebSockets are closed and the hub is empty. */
async function disconnect(page) {
  await page.click("#disconnect");
  await page.waitForFunction(() => window.__sockets.every((s) => s.readyState === WebSocket.CLOSED), null, { timeout: DEADLINE_MS });
  await waitConnections(url, 0);
}

const userDataDir = await mkdtemp(join(tmpdir(), "realtime-e2e-chromium-"));
const result = { transports: [] };
let context, p;
try {
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath,
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  // Track the page's WebSockets, to know when their close events have been handled, and its
  // SSE requests (the JS client reads /v1/events with fetch), to read the resume token their URL
  // carries; and record the event IDs both carry (__wire), before the JS client de-duplicates.
  await context.addInitScript(() => {
    window.__wire = [];
    const wire = (json) => {
      try {
        const f = JSON.parse(json);
        if (f && typeof f.id === "string" && f.id) window.__wire.push(f.id);
      } catch {} // Engine.IO packets ("42[...]") and other non-JSON text
    };
    const Native = window.WebSocket;
    window.__sockets = [];
    window.WebSocket = class extends Native {
      constructor(...args) {
        super(...args);
        window.__sockets.push(this);
        this.addEventListener("message", (m) => typeof m.data === "string" && wire(m.data));
      }
    };
    const nativeFetch = window.fetch;
    window.__streams = [];
    window.fetch = async (input, init) => {
      const res = await nativeFetch(input, init);
      const u = typeof input === "string" ? input : input.url;
      if (!u.includes("/v1/events") || !res.body) return res;
      window.__streams.push(u);
      const [mine, theirs] = res.body.tee();
      (async () => {
        const rd = mine.getReader();
        const dec = new TextDecoder();
        let buf = "";
        for (;;) {
          const { value, done } = await rd.read();
          if (done) break;
          const lines = (buf += dec.decode(value, { stream: true })).split(/\r\n|\r|\n/);
          buf = lines.pop();
          for (const l of lines) if (l.startsWith("data:")) wire(l.slice(5));
        }
      })().catch(() => {}); // aborted with the client's request
      return new Response(theirs, { status: res.status, statusText: res.statusText, headers: res.headers });
    };
  });
  p = await producer(kafka(broker));
  for (const transport of transports) {
    const user = `browser-${transport}`;
    const r = { transport, user, notes: [], problems: [] };
    result.transports.push(r);
    const page = await context.newPage();
    page.on("pageerror", (e) => r.problems.push(`page error: ${e}`));
    page.on("console", (m) => m.type() === "error" && r.problems.push(`console error: ${m.text()} (${m.location()?.url ?? "?"})`));
    let leaving = false; // after Disconnect, closing the EventSource aborts its request: expected
    page.on("requestfailed", (q) => leaving || r.problems.push(`request failed: ${q.method()} ${q.url()}: ${q.failure()?.errorText}`));
    page.on("response", (q) => q.status() >= 400 && r.problems.push(`HTTP ${q.status()}: ${q.request().method()} ${q.url()}`));

    const res = await page.goto(url + "/");
    if (res?.status() !== 200) throw new Error(`GET / answered ${res?.status()}: the service does not serve the demo page`);
    await page.fill("#user", user);
    await page.selectOption("#transport", transport);
    await page.click("#connect");
    await page.waitForFunction(() => document.querySelector("#status").dataset.state === "open", null, { timeout: DEADLINE_MS });
    r.status = await page.textContent("#status");
    await waitConnections(url, 1); // the page's connection is in the hub: it gets what follows

    let before = await count(page);
    const sent = await sendThroughPage(page, "concept-mastered", user);
    r.notes.push({ via: "page form", sent, ...(await note(page, before, sent)) });
    before = await count(page);
    const session = await sendThroughPage(page, "session-starting-soon", user);
    r.notes.push({ via: "page form", sent: session, ...(await note(page, before, session)) });
    before = await count(page);
    const rec = await produce(p, {
      topic: "concept-notifications",
      key: "kafka-streams",
      value: JSON.stringify({ conceptId: "kafka-streams", userIds: [user], conceptName: `Kafka Streams (KafkaJS, ${LABELS[transport]})`, masteryLevel: 0.75 }),
    });
    r.notes.push({ via: "kafkajs", sent: rec.id, ...(await note(page, before, rec.id)) });

    r.count = await page.textContent("#count");
    r.screenshot = join(artifacts, `demo-${transport}.png`);
    await page.screenshot({ path: r.screenshot, fullPage: true });

    // Disconnect: the page says so, and no late event of the closed connection changes that.
    // A WebSocket's readyState turns CLOSED in the task that fires its close event, so once
    // every socket reads CLOSED the page's close handlers have run.
    leaving = true;
    await page.click("#disconnect");
    await page.waitForFunction(() => window.__sockets.every((s) => s.readyState === WebSocket.CLOSED), null, { timeout: DEADLINE_MS });
    await waitConnections(url, 0); // the next transport's page starts alone
    r.afterDisconnect = await page.evaluate(() => ({ status: document.querySelector("#status").textContent, state: document.querySelector("#status").dataset.state }));
    await page.close();
  }

  // Socket.IO starts on long-polling and upgrades to WebSocket: the status must follow.
  {
    const r = { problems: [] };
    result.upgrade = r;
    const page = await watchedPage(context, r);
    await connectAs(page, "browser-upgrade", "socketio");
    r.status = await page.textContent("#status");
    await page.waitForFunction(() => document.querySelector("#status").textContent.includes("(websocket"), null, { timeout: DEADLINE_MS })
      .catch(() => r.problems.push("the status never named the websocket transport"));
    r.status = await page.textContent("#status");
    await disconnect(page);
    await page.close();
  }

  // One page, two users: alice gets two notifications, Disconnect, bob connects and gets one.
  // bob's list, resume cursor and de-duplication set start empty.
  {
    const r = { problems: [] };
    result.switchUser = r;
    const page = await watchedPage(context, r);
    await connectAs(page, "switch-alice", "websocket");
    await waitConnections(url, 1);
    for (const kind of ["concept-mastered", "session-starting-soon"]) {
      const id = await sendThroughPage(page, kind, "switch-alice");
      await page.locator(`#notifications li[data-id="${id}"]`).waitFor({ timeout: DEADLINE_MS });
    }
    r.aliceCount = await page.textContent("#count");
    await disconnect(page);
    await connectAs(page, "switch-bob", "websocket");
    r.cursorAtSwitch = await page.evaluate(() => window.__sockets.at(-1).url.includes("cursor="));
    await waitConnections(url, 1);
    r.bobSent = await sendThroughPage(page, "concept-mastered", "switch-bob");
    await page.locator(`#notifications li[data-id="${r.bobSent}"]`).waitFor({ timeout: DEADLINE_MS });
    r.heading = (await page.textContent("#list-title")).replace(/\s+/g, " ").trim();
    r.count = await page.textContent("#count");
    r.ids = await page.locator("#notifications li").evaluateAll((lis) => lis.map((li) => li.dataset.id));
    r.seen = await page.evaluate(() => [...demo.seen]);
    await disconnect(page);
    await page.close();
  }

  // The cursor contract, on each transport: resume with the last cursor and the IDs since, so
  // that the replay brings exactly what was sent while away (nothing for the page to drop).
  result.resume = [];
  for (const transport of transports) {
    const user = `resume-${transport}`;
    const r = { transport, before: [], away: [], problems: [] };
    result.resume.push(r);
    const page = await watchedPage(context, r);
    await connectAs(page, user, transport);
    await waitConnections(url, 1);
    for (const kind of ["concept-mastered", "session-starting-soon"]) {
      const id = await sendThroughPage(page, kind, user);
      await shows(page, id);
      r.before.push(id);
    }
    r.held = await page.evaluate(() => ({ cursor: demo.cursor, since: [...demo.since] }));
    await disconnect(page);
    for (const kind of ["concept-mastered", "session-starting-soon"]) r.away.push(await sendThroughPage(page, kind, user));
    await connectAs(page, user, transport); // the same user: the page keeps its list and cursor
    for (const id of r.away) await shows(page, id);
    await replayEnds(page, r.held.cursor, r);
    r.token = await resumeToken(page, transport);
    r.after = await afterResume(page, r.held.cursor);
    if (transport === "socketio") {
      // The engine drops; socket.io-client reconnects after 1 s and recovers with its pid and,
      // through the page's auth function, the cursor and the IDs since as its offset.
      const rec = { dropped: -1 };
      r.recovery = rec;
      const id = await sendThroughPage(page, "concept-mastered", user);
      await shows(page, id);
      rec.held = await page.evaluate(() => [...demo.since]);
      await page.evaluate(() => {
        const m = demo.socket.io;
        m.reconnectionDelay(1000);
        m.reconnectionDelayMax(1000);
        m.randomizationFactor(0);
        m.engine.close();
      });
      await waitConnections(url, 0);
      rec.sent = await sendThroughPage(page, "session-starting-soon", user);
      await page.waitForFunction(() => document.querySelector("#status").textContent.includes("recovered"), null, { timeout: DEADLINE_MS })
        .catch(() => r.problems.push("socket.io-client did not recover"));
      rec.status = await page.textContent("#status");
      rec.shown = await shows(page, rec.sent).then(() => true, () => false);
      rec.dropped = await page.evaluate(() => demo.dropped);
    }
    await disconnect(page);
    await page.close();
  }

  // A reload resumes: the tab connects again by itself, from the stored position.
  result.reload = [];
  for (const transport of transports) {
    const user = `reload-${transport}`;
    const r = { transport, before: [], away: [], problems: [] };
    result.reload.push(r);
    const page = await watchedPage(context, r);
    await connectAs(page, user, transport);
    await waitConnections(url, 1);
    for (const kind of ["concept-mastered", "session-starting-soon"]) {
      const id = await sendThroughPage(page, kind, user);
      await shows(page, id);
      r.before.push(id);
    }
    r.held = await page.evaluate(() => ({ cursor: demo.cursor, since: [...demo.since] }));
    await page.goto("about:blank"); // the page is gone, its connection with it
    await waitConnections(url, 0);
    for (const kind of ["concept-mastered", "session-starting-soon"]) r.away.push(await sendAPI(kind, user));
    const res = await page.goto(url + "/");
    if (res?.status() !== 200) throw new Error(`GET / answered ${res?.status()}`);
    await page.waitForFunction(() => document.querySelector("#status").dataset.state === "open", null, { timeout: DEADLINE_MS })
      .catch(() => r.problems.push("the reloaded page did not connect by itself"));
    for (const id of r.away) await shows(page, id).catch(() => r.problems.push(`the reloaded page never showed ${id}`));
    await replayEnds(page, r.held.cursor, r);
    r.token = await resumeToken(page, transport);
    r.after = await afterResume(page, r.held.cursor);
    await disconnect(page);
    await page.close();
  }
} catch (err) {
  result.error = err.stack ?? String(err);
} finally {
  await p?.disconnect().catch(() => {});
  await context?.close().catch(() => {});
  await rm(userDataDir, { recursive: true, force: true });
}
if (result.error) fail(result.error, result);
done(result);

// The status page in a real browser: headless Chromium (the Debian package, driven by
// playwright-core) opens the demo page, connects it as alice over WebSocket and shows one
// notification sent through its form (screenshot demo.png); then opens /status while
// notifications for alice are sent through the HTTP API in a bounded loop, plus one poison record
// that the consumer copies to the dead-letter topic, and reads what the page shows: the tiles
// (connections, rates, dead letters), whether each chart drew points and coloured pixels, and
// the warnings list (screenshot status.png). The service runs in development mode (no API key).
// The Go test (browser_test.go, TestStatusPageInChromium) checks the report.
//
// Environment: E2E_URL, E2E_CHROMIUM (the browser binary), E2E_ARTIFACTS (where demo.png and
// status.png go), E2E_LOOP (notifications sent while the page watches, default 50).
//
// With E2E_API_KEY set (a service with REALTIME_API_KEYS) it checks the key prompt instead: the
// page asks for the key, says so when a wrong one is given, goes live with the right one and,
// reloaded, stays live without asking (the key is kept in sessionStorage). Output:
// {keyFlow: {asked, refused, live, node, afterReload}, problems}.
// Output: {demo: {count}, peak: {connections, inRate, outRate}, after: {connections, dlq, dlqBy,
// errors: [text]}, charts: {<name>: {points, inked}}, problems: [], sent}.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { env, fail, done, sleep, until, waitConnections, DEADLINE_MS } from "./lib.mjs";

const url = env("E2E_URL");
const executablePath = env("E2E_CHROMIUM");
const artifacts = env("E2E_ARTIFACTS");
// Notifications sent while the status page watches, 50 to 150 ms apart (a wave, so the charts
// show some shape); E2E_LOOP sets how many (default 50; more for the README's screenshots).
const LOOP = Number(process.env.E2E_LOOP || 50);

const concept = (i) => ({ conceptId: `c-${i}`, userIds: ["alice"], conceptName: `Kafka topic ${i}`, masteryLevel: 0.8 });

async function post(path, body) {
  const res = await fetch(url + path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
  if (res.status !== 201) throw new Error(`POST ${path}: ${res.status} ${await res.text()}`);
  return res.json();
}

/** A page that records its problems (errors, failed requests, HTTP errors) in problems. */
async function watchedPage(context, problems, path) {
  const page = await context.newPage();
  page.on("pageerror", (e) => problems.push(`${path}: page error: ${e}`));
  page.on("console", (m) => m.type() === "error" && problems.push(`${path}: console error: ${m.text()}`));
  page.on("response", (q) => q.status() >= 400 && problems.push(`${path}: HTTP ${q.status()}: ${q.request().method()} ${q.url()}`));
  const res = await page.goto(url + path);
  if (res?.status() !== 200) throw new Error(`GET ${path} answered ${res?.status()}`);
  return page;
}

const tiles = (page) => page.evaluate(() => {
  const num = (id) => Number(document.getElementById(id).textContent);
  return {
    connections: num("connections"), inRate: num("in-rate"), outRate: num("out-rate"),
    dlq: num("dlq"), dlqBy: document.getElementById("dlq-by").textContent,
    live: document.getElementById("live").textContent,
    errors: [...document.querySelectorAll("#errors li")].map((li) => li.textContent),
  };
});

// charts reports, per chart, the points drawn and the pixels of a series colour: coloured
// (not the grey of the grid and labels) and opaque.
const charts = (page) => page.evaluate(() => Object.fromEntries([...document.querySelectorAll("[data-chart]")].map((el) => {
  const c = el.querySelector("canvas");
  const px = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
  let inked = 0;
  for (let i = 0; i < px.length; i += 4) {
    const [r, g, b, a] = [px[i], px[i + 1], px[i + 2], px[i + 3]];
    if (a > 128 && Math.max(r, g, b) - Math.min(r, g, b) > 60) inked++;
  }
  return [el.dataset.chart, { points: Number(c.dataset.points || 0), inked }];
})));

async function keyFlow(context, key) {
  const r = (result.keyFlow = {});
  const page = await context.newPage();
  page.on("pageerror", (e) => result.problems.push(`/status: page error: ${e}`));
  await page.goto(url + "/status");
  const live = () => page.evaluate(() => document.getElementById("live").dataset.state === "open");
  await page.waitForSelector("#key-form:not([hidden])", { timeout: DEADLINE_MS });
  r.asked = await page.textContent("#live");
  await page.fill("#key", "not-the-key");
  await page.click("#key-form button");
  await page.waitForFunction(() => document.getElementById("key-error").textContent !== "", null, { timeout: DEADLINE_MS });
  r.refused = await page.textContent("#key-error");
  await page.fill("#key", key);
  await page.click("#key-form button");
  await until("the page live with the key", live);
  await page.waitForFunction(() => document.getElementById("node").textContent !== "…", null, { timeout: DEADLINE_MS });
  r.live = await page.textContent("#live");
  r.node = await page.textContent("#node");
  await page.reload();
  await until("the page live again after a reload", live);
  r.afterReload = await page.evaluate(() => ({ live: document.getElementById("live").textContent, asked: !document.getElementById("key-form").hidden }));
}

const userDataDir = await mkdtemp(join(tmpdir(), "realtime-e2e-status-"));
const result = { problems: [], sent: 0 };
let context;
try {
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath,
    headless: true,
    viewport: { width: 1280, height: 800 },
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });

  if (process.env.E2E_API_KEY) {
    await keyFlow(context, process.env.E2E_API_KEY);
    done(result);
  }

  // The demo page as alice, with one notification: the client the status page counts.
  const demo = await watchedPage(context, result.problems, "/");
  await demo.fill("#user", "alice");
  await demo.selectOption("#transport", "websocket");
  await demo.click("#connect");
  await demo.waitForFunction(() => document.querySelector("#status").dataset.state === "open", null, { timeout: DEADLINE_MS });
  await waitConnections(url, 1);
  await demo.click("#send");
  await demo.waitForFunction(() => document.querySelectorAll("#notifications li").length === 1, null, { timeout: DEADLINE_MS });
  result.demo = { count: await demo.textContent("#count") };
  await demo.screenshot({ path: join(artifacts, "demo.png"), fullPage: true });

  // The status page while notifications flow.
  const status = await watchedPage(context, result.problems, "/status");
  await status.waitForFunction(() => document.getElementById("live").dataset.state === "open", null, { timeout: DEADLINE_MS });
  // One poison record (valid JSON, not a notification): dead-lettered, with a warning.
  await post("/v1/topics/concept-notifications/records", { key: "poison", value: { hello: "not a notification" } });
  result.peak = { connections: 0, inRate: 0, outRate: 0 };
  for (let i = 0; i < LOOP; i++) {
    await post("/v1/notifications/concept-mastered", concept(i));
    result.sent++;
    const t = await tiles(status);
    for (const k of Object.keys(result.peak)) result.peak[k] = Math.max(result.peak[k], t[k]);
    await sleep(100 + 50 * Math.sin(i / 8));
  }
  // The page shows the dead letter and its warning within a few polls.
  await until("the dead letter on the status page", async () => {
    const t = await tiles(status);
    return t.dlq >= 1 && t.errors.some((e) => e.includes("dead-letter"));
  }).catch((e) => result.problems.push(String(e)));
  result.after = await tiles(status);
  result.charts = await charts(status);
  await status.screenshot({ path: join(artifacts, "status.png"), fullPage: true });
  done(result);
} catch (e) {
  fail(e?.stack || e, result);
} finally {
  await context?.close().catch(() => {});
  await rm(userDataDir, { recursive: true, force: true }).catch(() => {});
}

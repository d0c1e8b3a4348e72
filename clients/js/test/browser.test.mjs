// Scenario (b) of issue 16: the built bundle (dist/realtime.min.js) in headless Chromium (the
// Debian package, driven by playwright-core), through scenario (a)'s two restarts and five cuts,
// plus the page left for a blank one while 25 notifications are sent (they come back through
// the cursor the page kept in localStorage) and a reload while the node is down. The page's
// callback appends each id to localStorage, so what it saw survives the reloads: each
// notification exactly once, in order per partition.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import http from "node:http";
import { chromium } from "playwright-core";
import { startBroker, ServiceNode, startProxy, uid, sign, checkDelivery, sendWithDisruptions, sleep, until, PLAN } from "./helpers.mjs";

const browserPath = process.env.RT_CHROMIUM || ["/usr/bin/chromium", "/usr/bin/chromium-browser"].find(existsSync);

test("in Chromium, across page reloads: each notification once, in partition order", { timeout: 300000 }, async (t) => {
  if (!browserPath) {
    if (process.env.REQUIRE_INTEROP === "1") assert.fail("chromium is required (REQUIRE_INTEROP=1): apt-get install chromium");
    return t.skip("chromium not installed (apt-get install chromium)");
  }
  const user = uid();
  const bundle = readFileSync(new URL("../dist/realtime.min.js", import.meta.url));
  let serviceURL = "";
  const site = http.createServer((req, res) => {
    if (req.url === "/realtime.min.js") return res.writeHead(200, { "content-type": "text/javascript" }).end(bundle);
    if (req.url === "/token") return res.writeHead(200, { "content-type": "text/plain" }).end(sign(user));
    res.writeHead(200, { "content-type": "text/html" }).end(`<!doctype html><title>client test</title>
<script type="module">
import { createClient } from "/realtime.min.js";
const rt = createClient({ url: ${JSON.stringify(serviceURL)}, token: async () => (await fetch("/token")).text(), minDelay: 100, maxDelay: 2000 });
rt.on("concept-mastered", (_, meta) => localStorage.setItem("got", (localStorage.getItem("got") || "") + meta.id + " "));
rt.on("resync", (r) => localStorage.setItem("resyncs", (localStorage.getItem("resyncs") || "") + JSON.stringify(r)));
rt.on("cursor", () => (window.hasCursor = true));
rt.on("state", (s) => (window.rtState = s));
</script>`);
  });
  await new Promise((r) => site.listen(0, "127.0.0.1", r));
  t.after(() => new Promise((r) => site.close(r)));
  const pageURL = `http://127.0.0.1:${site.address().port}/`;

  const broker = await startBroker();
  t.after(() => broker.stop());
  const producer = await new ServiceNode(broker, "producer").start();
  t.after(() => producer.stop());
  const node = await new ServiceNode(broker, "edge", { REALTIME_ALLOWED_ORIGINS: pageURL.slice(0, -1) }).start();
  t.after(() => node.stop());
  const proxy = await startProxy(node.port);
  t.after(() => proxy.close());
  serviceURL = proxy.url;

  const browser = await chromium.launch({
    executablePath: browserPath,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  t.after(() => browser.close());
  const page = await browser.newPage();
  const problems = [];
  page.on("pageerror", (e) => problems.push(`page error: ${e}`));
  const stored = async (k) => {
    for (;;) {
      try {
        return await page.evaluate((k) => localStorage.getItem(k) || "", k);
      } catch (e) {
        if (!/context was destroyed|navigat|Access is denied/i.test(String(e))) throw e; // reloading, or away on about:blank
        await sleep(20);
      }
    }
  };
  const got = async () => (await stored("got")).split(" ").filter(Boolean);
  const open = async () => {
    await page.goto(pageURL);
    await page.waitForFunction(() => window.hasCursor === true, null, { timeout: 60000 });
  };
  await open();
  const steps = {
    async leave() { // no page for 25 notifications: they come back through the stored cursor
      assert.ok(JSON.parse(await stored("realtime:" + proxy.url)).cursor, "a cursor is stored when the page goes");
      await page.goto("about:blank");
    },
    async back() {
      await open();
    },
    async reload() { // while the node is down
      await page.reload();
    },
  };
  const plan = { ...PLAN, 500: "leave", 525: "back", 600: "reload" };
  const { sent, restartMs } = await sendWithDisruptions({
    total: 1000, producer, user, node, proxy, plan, steps, received: async () => (await got()).length,
    connected: () => page.evaluate(() => window.rtState === "connected").catch(() => false),
  });
  await until(async () => (await got()).length >= sent.length, "every notification in the page");
  await sleep(500);
  const seen = await got();
  assert.deepEqual(checkDelivery(sent, seen), []);
  assert.equal(await stored("resyncs"), "", "every resume honoured");
  const kept = JSON.parse(await stored("realtime:" + proxy.url));
  assert.ok(kept.cursor, "the cursor is in localStorage");
  assert.deepEqual(problems, []);
  t.diagnostic(`ms from a restart's start to the page receiving again: ${restartMs.join(", ")}`);
});

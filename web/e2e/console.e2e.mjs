// The console end to end, in a real browser: Debian's Chromium driven by
// playwright-core, against a real control plane (with the console
// embedded) and a real runner on a Docker Engine, which test/console
// starts (`make test-console`). What a user does on a host, the test does
// when asked on this script's stdout ("REDEEM <token>"; it answers "OK"
// on stdin). Screenshots of each page go to docs/console/
// (docs/console.md shows them), so they stay current.
//
// Env (from test/console): CONSOLE_URL, ADMIN_TOKEN, CP_CA (the control
// plane's CA), APP_JAR (an app to deploy), APP_HTTP_PORT (where the
// runner's Traefik serves apps), CAMEL_JAR (a real Camel app: test/apps
// camel-main), DOWNSTREAM_URL (where its deliveries post; down until the
// script asks "DOWNSTREAM up"); CHROMIUM (default /usr/bin/chromium),
// SCREENSHOTS (default ../docs/console).
import { mkdirSync, writeFileSync, mkdtempSync, readFileSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { request as httpRequest } from "node:http";
import { createInterface } from "node:readline";
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { chromium } from "playwright-core";

const root = resolve(import.meta.dirname, "../..");
const shots = process.env.SCREENSHOTS ?? join(root, "docs/console");
const need = (k) => process.env[k] ?? (console.error(`console e2e: ${k} is not set: run make test-console`), process.exit(2));
const url = need("CONSOLE_URL");
const admin = need("ADMIN_TOKEN");
const appJar = need("APP_JAR");
const appPort = need("APP_HTTP_PORT");
const camelJar = need("CAMEL_JAR");
const downstream = need("DOWNSTREAM_URL");
const card = "5500 0000 0000 0004";

// axe-core checks a page for what WCAG 2 A and AA ask (labels, names,
// contrast, structure). Evaluated through the browser's debugging
// protocol, which the console's content policy does not govern.
const axeSource = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");
const axeFindings = [];
async function accessible(page, what) {
  if (!(await page.evaluate(() => "axe" in window))) await page.evaluate(axeSource);
  const found = await page.evaluate(async () => {
    const r = await window.axe.run(document, { runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"] } });
    return r.violations.map((v) => `${v.id} (${v.impact}): ${v.nodes.length} × ${v.nodes[0].target.join(" ")}: ${v.nodes[0].failureSummary.split("\n").slice(0, 2).join(" ")}`);
  });
  axeFindings.push(...found.map((f) => `${what}: ${f}`));
}

// ask has the test do something on a host, and waits for its answer.
const answers = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
async function ask(line) {
  console.log(line);
  const { value } = await answers.next();
  assert.equal(value, "OK", `the test answered ${value} to ${line}`);
}

async function eventually(what, f, timeoutMs = 60000) {
  const end = Date.now() + timeoutMs;
  let last;
  while (Date.now() < end) {
    try {
      const v = await f();
      if (v !== false && v !== undefined) return v;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${what}: not after ${timeoutMs / 1000} s${last ? ` (${last.message})` : ""}`);
}

// getApp asks the runner's Traefik for an app by its host name.
function getApp(host, path) {
  return new Promise((ok, fail) => {
    const req = httpRequest({ host: "127.0.0.1", port: appPort, path, headers: { Host: host } }, (res) => {
      let b = "";
      res.on("data", (c) => (b += c));
      res.on("end", () => (res.statusCode === 200 ? ok(b) : fail(new Error(`${res.statusCode} ${b}`))));
    });
    req.on("error", fail);
    req.end();
  });
}

// The pages open, for a screenshot when the run fails.
const pages = [];

async function main() {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  try {
    // The control plane's certificate is its own CA's, which this test
    // browser has not been told to trust.
    const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 800 }, colorScheme: "light" });
    const page = await context.newPage();
    pages.push(page);
    const failed = [];
    // A stream the page closes (logs, when it leaves the app) is aborted,
    // not failed; Chromium drops what is in flight when the host's
    // interfaces change, as they do when the test's Docker Engine makes an
    // environment's network again for its egress.
    const notFailures = ["net::ERR_ABORTED", "net::ERR_NETWORK_CHANGED"];
    page.on("requestfailed", (r) => !notFailures.includes(r.failure()?.errorText) && failed.push(`${r.url()}: ${r.failure()?.errorText}`));
    page.on("request", (r) => assert.ok(r.url().startsWith(url), `a request to another host: ${r.url()}`));
    mkdirSync(shots, { recursive: true });

    // Sign in: a wrong token is one line, the admin's opens the console.
    await page.goto(url + "/");
    await page.getByLabel("API token").fill("cmla_wrong");
    await page.getByRole("button", { name: "Sign in" }).click();
    const alert = await page.getByRole("alert").textContent();
    assert.match(alert, /token/i, `a wrong token says: ${alert}`);
    await page.screenshot({ path: join(shots, "signin.png") });
    await accessible(page, "sign-in");
    await page.getByLabel("API token").fill(admin);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("heading", { name: "Runners" }).waitFor();
    assert.equal(await page.evaluate(() => localStorage.length), 0, "nothing in localStorage");

    // Add a runner from the page, run its command's registration on a
    // host (this one, tunnel only), and see it connect.
    await page.getByRole("button", { name: "Add a runner" }).click();
    const command = await page.getByTestId("install-command").textContent();
    const token = command.match(/(cmlr1\.[A-Za-z0-9._-]+)/)?.[1];
    assert.ok(token, `the install command carries a token: ${command}`);
    assert.ok(command.startsWith(`curl -sfL ${url}/install.sh | sh -s - --token `), command);
    await ask(`REDEEM ${token}`);
    await page.getByRole("button", { name: "Done" }).click();
    const row = page.locator("tr[data-runner='edge-1']");
    await row.getByText("connected", { exact: true }).waitFor({ timeout: 120000 });
    await page.screenshot({ path: join(shots, "runners.png") });
    await accessible(page, "runners");
    // Time to interactive of the runners page: from the navigation's start
    // to the list shown, the token already in the tab; five loads.
    const tti = [];
    for (let i = 0; i < 5; i++) {
      await page.reload();
      await row.getByText("connected", { exact: true }).waitFor();
      tti.push(await page.evaluate(() => performance.getEntriesByName("cameleer:runners-ready")[0]?.startTime));
    }
    console.log("runners page, time to interactive (ms):", tti.map((t) => Math.round(t)).join(" "));
    // What the runner says of itself, through its tunnel.
    await row.getByRole("button", { name: "edge-1", exact: true }).click();
    const detail = page.getByRole("region", { name: "Runner edge-1" });
    await detail.getByText("docker", { exact: true }).waitFor();
    // Its support bundle, downloaded through the tunnel; an upgrade,
    // refused in one line: this control plane serves no runner binary (and
    // a runner on Docker has no node of its own to upgrade).
    const [bundle] = await Promise.all([page.waitForEvent("download"), detail.getByRole("button", { name: "Download a support bundle" }).click()]);
    assert.match(bundle.suggestedFilename(), /^cameleer-support-.*\.tar\.gz$/);
    assert.equal(await bundle.failure(), null);
    assert.ok(statSync(await bundle.path()).size > 1024, "the bundle has its files");
    page.once("dialog", (d) => d.accept());
    await detail.getByRole("button", { name: "Upgrade" }).click();
    await detail.getByRole("alert").getByText(/serves no cameleer binary|runs no node of its own/).waitFor();

    // Environments: two made from the page, a value and a secret set;
    // after a reload the value is there and the secret only by its name.
    await page.getByRole("link", { name: "Environments" }).click();
    for (const env of ["dev", "prod"]) {
      await page.getByLabel("New environment").fill(env);
      await page.getByRole("button", { name: "Create" }).click();
      await page.getByRole("region", { name: env }).waitFor();
    }
    const dev = page.getByRole("region", { name: "dev" });
    await dev.getByRole("button", { name: "Add a value" }).click();
    await dev.getByLabel("Name of value 1 in dev").fill("GREETING");
    await dev.getByLabel("Value of GREETING in dev").fill("hello-dev");
    await dev.getByRole("button", { name: "Save dev" }).click();
    await dev.getByRole("status").waitFor();
    const prod = page.getByRole("region", { name: "prod" });
    await prod.getByRole("button", { name: "Set a secret" }).click();
    await prod.getByLabel("Name of new secret 1 in prod").fill("API_TOKEN");
    await prod.getByLabel("Value of new secret API_TOKEN in prod").fill("prod-s3cr3t-token");
    await prod.getByRole("button", { name: "Save prod" }).click();
    await prod.getByRole("status").waitFor();
    await page.reload();
    await page.getByRole("region", { name: "prod" }).locator("tr[data-secret='API_TOKEN']").waitFor();
    assert.equal(await page.getByLabel("Value of GREETING in dev").inputValue(), "hello-dev");
    assert.ok(!(await page.content()).includes("prod-s3cr3t-token"), "a secret's value is on the page");
    await page.screenshot({ path: join(shots, "environments.png"), fullPage: true });
    await accessible(page, "environments");

    // Apps: a file that is not a JAR is refused where it was uploaded; the
    // app's JAR goes to dev phase by phase and answers; its logs follow;
    // it is promoted to prod, the same image by digest.
    await page.getByRole("link", { name: "Apps" }).click();
    const form = page.getByRole("form", { name: "Deploy a JAR" });
    await form.getByLabel("App").fill("invoices");
    const bad = join(mkdtempSync(join(tmpdir(), "cameleer-e2e-")), "broken.jar");
    writeFileSync(bad, "not a jar at all");
    await form.getByLabel("JAR").setInputFiles(bad);
    await form.getByRole("button", { name: "Upload and deploy" }).click();
    const refusal = await form.getByRole("alert").textContent();
    assert.match(refusal, /ZIP|JAR/, `a file that is not a JAR: ${refusal}`);
    await page.screenshot({ path: join(shots, "apps-refused.png") });
    await form.getByLabel("JAR").setInputFiles(appJar);
    await form.getByRole("button", { name: "Upload and deploy" }).click();
    await form.locator("ol.phases li.done", { hasText: "running" }).waitFor({ timeout: 240000 });
    const app = page.getByRole("region", { name: "App invoices" });
    await app.getByTestId("instances").filter({ hasText: "1 of 1 ready" }).waitFor({ timeout: 30000 });
    const devHost = "invoices.dev.acme.localhost";
    assert.match(await eventually("the app answers", () => getApp(devHost, "/")), /orders says hello-dev/);
    const logs = app.getByLabel("Log lines");
    await logs.filter({ hasText: "GREETING=hello-dev" }).waitFor({ timeout: 30000 });
    await getApp(devHost, "/followed");
    await logs.filter({ hasText: "orders served /followed" }).waitFor({ timeout: 30000 });
    await page.screenshot({ path: join(shots, "apps.png"), fullPage: true });
    await accessible(page, "apps");
    await app.getByRole("button", { name: "Promote" }).click();
    const promotion = app.getByRole("status", { name: "Promotion" });
    await promotion.getByText("(the digest running here)").waitFor({ timeout: 30000 });
    await promotion.locator("ol.phases li.done", { hasText: "running" }).waitFor({ timeout: 120000 });
    assert.match(await eventually("prod answers", () => getApp("invoices.prod.acme.localhost", "/")), /token-length=17/);
    await page.screenshot({ path: join(shots, "apps-promoted.png"), fullPage: true });

    await observe(page);

    // Access: a token made with a role, shown once, listed by its id.
    await page.getByRole("link", { name: "Access" }).click();
    const tokens = page.getByRole("region", { name: "API tokens" });
    await tokens.getByLabel("Role").selectOption("operator");
    await tokens.getByRole("button", { name: "Make a token" }).click();
    const made = await tokens.getByTestId("new-token").textContent();
    assert.match(made, /^cmla_/, `a new token: ${made}`);
    const madeId = (await tokens.getByRole("status").textContent()).match(/Token (\S+) /)[1];
    await tokens.locator(`tr[data-token='${madeId}']`, { hasText: "operator" }).waitFor();
    await page.screenshot({ path: join(shots, "access.png") });
    await accessible(page, "access");

    // An app deleted: gone from its environment, its deployments listed
    // before.
    await page.getByRole("link", { name: "Apps" }).click();
    await page.locator("tr[data-app='invoices'] button", { hasText: "invoices" }).click();
    const invoices = page.getByRole("region", { name: "App invoices" });
    await invoices.getByText("Deployments (1)").click();
    await invoices.getByRole("table", { name: "Deployments of invoices" }).getByText(/^upload /).waitFor();
    page.once("dialog", (d) => d.accept());
    await invoices.getByRole("button", { name: "Delete" }).click();
    await page.locator("tr[data-app='invoices']").waitFor({ state: "detached" });

    await page.getByRole("link", { name: "Runners" }).click();

    // Dark, and signed out: the token is gone from the tab.
    await page.getByRole("button", { name: /dark theme/i }).click();
    await page.screenshot({ path: join(shots, "runners-dark.png") });
    await accessible(page, "runners, dark");
    await page.getByRole("link", { name: "Routes" }).click();
    await page.getByLabel("App", { exact: true }).selectOption("deliveries");
    await page.getByRole("region", { name: "Route deliver", exact: true }).locator("[data-node='map-delivery']").waitFor();
    await page.getByRole("region", { name: "Route deliver", exact: true }).screenshot({ path: join(shots, "route-deliver-dark.png") });
    await accessible(page, "routes, dark");
    await page.getByRole("link", { name: "Exchanges" }).click();
    await page.locator("tbody tr").first().waitFor();
    await accessible(page, "exchanges, dark");
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByLabel("API token").waitFor();
    assert.equal(await page.evaluate(() => sessionStorage.length), 0, "the token stays after sign-out");
    assert.deepEqual(failed, [], "failed requests");
    assert.deepEqual(axeFindings, [], "accessibility (axe-core, WCAG 2.1 A and AA)");
  } catch (e) {
    const shot = join(tmpdir(), "console-e2e-failed.png");
    await pages[0]?.screenshot({ path: shot, fullPage: true }).then(() => console.error("console e2e: the page as it failed:", shot), () => undefined);
    throw e;
  } finally {
    await browser.close();
  }
}

// api asks the control plane's API directly, as the admin: what the
// page's figures are checked against.
async function api(page, path) {
  const resp = await page.request.get(url + path, { headers: { Authorization: `Bearer ${admin}` } });
  assert.ok(resp.ok(), `${path}: ${resp.status()}`);
  return resp.json();
}

// addValues sets config values of env on the environments page, after
// the `had` values it has.
async function addValues(page, env, had, values) {
  const region = page.getByRole("region", { name: env });
  let i = had;
  for (const [k, v] of Object.entries(values)) {
    i++;
    await region.getByRole("button", { name: "Add a value" }).click();
    await region.getByLabel(`Name of value ${i} in ${env}`).fill(k);
    await region.getByLabel(`Value of ${k} in ${env}`).fill(v);
  }
  await region.getByRole("button", { name: `Save ${env}` }).click();
  await region.getByRole("status").waitFor();
}

// observe: a real Camel app (deliveries to a downstream service, and the
// demo routes) deployed to dev; a delivery that failed while the
// downstream was down is found, its timeline opened, and replayed once
// the downstream is up; one whose mapping failed is replayed edited;
// the rest in bulk; all of it in the audit log; the route diagrams'
// figures are the API's; a node's click lists its failed exchanges; and
// the exchanges page's time to interactive with 10,000 exchanges stored.
async function observe(page) {
  const base = "/api/v1/tenants/acme/environments";
  await page.getByRole("link", { name: "Environments" }).click();
  await addValues(page, "dev", 1, { DOWNSTREAM_URL: downstream });
  // prod delivers 5000, each traced, for the exchanges page's timing.
  await addValues(page, "prod", 0, {
    DOWNSTREAM_URL: downstream,
    DELIVER_COUNT: "5000",
    DELIVER_PERIOD: "2",
    DELIVER_BAD_EVERY: "0",
    CAMELEER_SAMPLE: "1",
    CAMELEER_SAMPLE_LIMIT: "0",
  });
  // Both may reach the downstream service, and only it.
  const { hostname, port } = new URL(downstream);
  for (const env of ["dev", "prod"]) {
    const egress = page.getByRole("group", { name: `Egress of ${env}` });
    await egress.getByRole("button", { name: "Add a rule" }).click();
    await egress.getByLabel(`Destination of rule 1 in ${env}`).fill(hostname);
    await egress.getByLabel(`Ports of rule 1 in ${env}`).fill(port);
    await egress.getByRole("button", { name: `Save egress of ${env}` }).click();
    await egress.getByRole("status").waitFor();
    await ask(`EGRESS ${env}`);
  }
  await page.screenshot({ path: join(shots, "environments-egress.png"), fullPage: true });
  await accessible(page, "egress");

  await page.getByRole("link", { name: "Apps" }).click();
  const form = page.getByRole("form", { name: "Deploy a JAR" });
  await form.getByLabel("App").fill("deliveries");
  await form.getByLabel("JAR").setInputFiles(camelJar);
  await form.getByRole("button", { name: "Upload and deploy" }).click();
  await form.locator("ol.phases li.done", { hasText: "running" }).waitFor({ timeout: 240000 });

  // A delivery that failed on the downstream being down.
  await page.getByRole("link", { name: "Exchanges" }).click();
  await page.getByLabel("App", { exact: true }).selectOption("deliveries");
  const filters = page.getByRole("form", { name: "Filter exchanges" });
  await filters.getByLabel("Route").fill("deliver");
  await filters.getByLabel("Status").selectOption("failed");
  const refused = page.locator("tbody tr", { hasText: "ConnectException" });
  await eventually(
    "a failed delivery listed",
    async () => {
      await filters.getByRole("button", { name: "Search" }).click();
      return (await refused.count()) >= 4;
    },
    180000,
  );
  const id = await refused.first().getAttribute("data-exchange");
  await refused.first().getByRole("button", { name: id }).click();
  const x = page.getByRole("region", { name: `Exchange ${id}` });
  const steps = x.getByRole("list", { name: "Timeline" }).locator("li");
  await steps.first().waitFor();
  assert.ok((await steps.count()) >= 2, "the timeline has the route's nodes");
  await x.locator("li.failed[data-node='call-downstream']").waitFor();
  await x.getByText(/Exception: java\.net\.ConnectException/).waitFor();
  const body = await x.getByLabel("Body").textContent();
  assert.match(body, /^delivery \d+ qty=\d+ card /, `the body: ${body}`);
  assert.ok(!body.includes(card) && !(await page.content()).includes(card), "the card number is on the page");
  await page.screenshot({ path: join(shots, "exchanges.png"), fullPage: true });
  await accessible(page, "exchanges");

  // Replayed once the downstream is up: the replay completes, and its
  // exchange says what it replays.
  await ask("DOWNSTREAM up");
  await x.getByRole("button", { name: "Replay", exact: true }).click({ timeout: 60000 });
  const outcome = x.getByRole("status", { name: "Replay" });
  await outcome.getByText("Replay completed").waitFor({ timeout: 60000 });
  const again = await outcome.locator("button.mono").textContent();
  await outcome.getByRole("button", { name: again }).click();
  const y = page.getByRole("region", { name: `Exchange ${again}` });
  await y.getByText("completed", { exact: true }).waitFor();
  await y.getByRole("button", { name: id }).waitFor();
  await page.screenshot({ path: join(shots, "exchange-replayed.png"), fullPage: true });

  // A delivery whose mapping failed, replayed with its quantity mended.
  const unmapped = page.locator("tbody tr", { hasText: "NumberFormatException" }).first();
  const bad = await unmapped.getAttribute("data-exchange");
  await unmapped.getByRole("button", { name: bad }).click();
  const z = page.getByRole("region", { name: `Exchange ${bad}` });
  await z.getByRole("button", { name: "Edit and replay" }).click({ timeout: 60000 });
  const edit = z.getByRole("form", { name: "Edit and replay" });
  const was = await edit.getByLabel("Body").inputValue();
  assert.match(was, /qty=many/, `the body to edit: ${was}`);
  await edit.getByLabel("Body").fill(was.replace("qty=many", "qty=7"));
  await page.screenshot({ path: join(shots, "exchange-edit.png"), fullPage: true });
  await edit.getByRole("button", { name: "Replay edited" }).click();
  await z.getByRole("status", { name: "Replay" }).getByText("Replay completed").waitFor({ timeout: 60000 });

  // The rest in bulk: what completed before is skipped, the other
  // unmapped one fails again.
  const bulk = page.getByRole("region", { name: "Bulk replay" });
  await bulk.getByRole("button", { name: "Replay all…" }).click();
  await bulk.getByText(/Replay \d+ failed exchanges of deliver/).waitFor();
  await bulk.getByRole("button", { name: "Start" }).click();
  const progress = bulk.getByRole("group", { name: "Bulk replay progress" });
  await progress.getByText("done", { exact: true }).waitFor({ timeout: 60000 });
  const counts = await eventually("the bulk replay's counts", async () => {
    const t = await progress.getByTestId("bulk-counts").textContent();
    const m = t.match(/^(\d+) of (\d+): (\d+) completed, (\d+) failed again, (\d+) skipped/);
    return m && m[1] === m[2] ? m : false;
  });
  assert.ok(Number(counts[3]) >= 1 && Number(counts[4]) >= 1 && Number(counts[5]) >= 2, `bulk replay: ${counts[0]}`);
  await page.screenshot({ path: join(shots, "bulk-replay.png"), fullPage: true });
  await accessible(page, "bulk replay");

  // The audit log: each replay, the edited one said.
  await page.getByRole("link", { name: "Audit log" }).click();
  await page.locator("tbody tr", { hasText: "edited=true" }).first().waitFor();
  await page.locator("tbody tr", { hasText: "/bulk-replays" }).first().waitFor();
  await page.screenshot({ path: join(shots, "audit.png") });
  await accessible(page, "audit log");

  // The route diagrams: every route of the app, each node's figures as
  // the API answers them.
  await page.getByRole("link", { name: "Routes" }).click();
  await page.getByLabel("App", { exact: true }).selectOption("deliveries");
  const deliver = page.getByRole("region", { name: "Route deliver", exact: true });
  await deliver.locator("[data-node='map-delivery']").waitFor();
  assert.ok((await page.getByRole("region", { name: /^Route / }).count()) >= 5, "several routes on the page");
  await eventually("the diagram's figures are the API's", async () => {
    const routes = await api(page, `${base}/dev/apps/deliveries/routes?window=1h`);
    for (const [route, node] of [["deliver", "map-delivery"], ["post-delivery", "call-downstream"]]) {
      const stats = routes.find((r) => r.id === route).nodes.find((n) => n.id === node).stats;
      const shown = await page.getByRole("region", { name: `Route ${route}`, exact: true }).locator(`[data-node='${node}'] [data-testid='node-figures']`).textContent();
      const pct = stats.count ? (100 * stats.failures) / stats.count : 0;
      const want = `${stats.count} · ${pct > 0 && pct < 10 ? pct.toFixed(1) : Math.round(pct)} % failed · p95 `;
      if (!shown.startsWith(want) || stats.count === 0) throw new Error(`${route}/${node}: the page shows "${shown}", the API ${JSON.stringify(stats)}`);
    }
    return true;
  });
  await page.getByRole("figure", { name: "deliveries: throughput and error rate" }).locator("polyline").first().waitFor();
  await page.screenshot({ path: join(shots, "routes.png") });
  await accessible(page, "routes");
  await page.getByRole("region", { name: "Route deliver", exact: true }).screenshot({ path: join(shots, "route-deliver.png") });
  // A node's failed exchanges: those that failed at it; by the keyboard.
  await page.getByRole("region", { name: "Route post-delivery", exact: true }).locator("[data-node='call-downstream']").focus();
  await page.keyboard.press("Enter");
  await page.getByRole("heading", { name: "Exchanges" }).waitFor();
  assert.equal(await page.getByRole("form", { name: "Filter exchanges" }).getByLabel("Failed at node").inputValue(), "call-downstream");
  await page.locator("tbody tr", { hasText: "ConnectException" }).first().waitFor();
  assert.equal(await page.locator("tbody tr", { hasText: "NumberFormatException" }).count(), 0, "a mapping failure listed as failed at call-downstream");

  // prod: the app promoted, 5000 deliveries traced (10,000 exchanges);
  // the exchanges page's time to interactive, five loads.
  await page.getByRole("link", { name: "Apps" }).click();
  await page.locator("tr[data-app='deliveries'] button", { hasText: "deliveries" }).click();
  const app = page.getByRole("region", { name: "App deliveries" });
  await app.getByRole("button", { name: "Promote" }).click();
  await app.getByRole("status", { name: "Promotion" }).locator("ol.phases li.done", { hasText: "running" }).waitFor({ timeout: 120000 });
  const stored = await eventually(
    "10,000 exchanges of prod's deliveries stored",
    async () => {
      let n = 0;
      let cursor = "";
      do {
        const p = await api(page, `${base}/prod/apps/deliveries/exchanges?limit=500${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
        n += p.exchanges.length;
        cursor = p.next ?? "";
      } while (cursor && n < 10000);
      return n >= 10000 ? n : false;
    },
    240000,
  );
  await page.goto(`${url}/exchanges?env=prod&app=deliveries`);
  const tti = [];
  for (let i = 0; i < 5; i++) {
    await page.reload();
    await page.locator("tbody tr").first().waitFor();
    tti.push(await page.evaluate(() => performance.getEntriesByName("cameleer:exchanges-ready")[0]?.startTime));
  }
  console.log(`exchanges page with ${stored}+ exchanges stored, time to interactive (ms):`, tti.map((t) => Math.round(t)).join(" "));
}

try {
  await main();
  console.error("console e2e: passed; screenshots in", shots);
  process.exit(0);
} catch (e) {
  console.error("console e2e:", e);
  process.exit(1);
}

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
// runner's Traefik serves apps); CHROMIUM (default /usr/bin/chromium),
// SCREENSHOTS (default ../docs/console).
import { mkdirSync, writeFileSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { request as httpRequest } from "node:http";
import { createInterface } from "node:readline";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";

const root = resolve(import.meta.dirname, "../..");
const shots = process.env.SCREENSHOTS ?? join(root, "docs/console");
const need = (k) => process.env[k] ?? (console.error(`console e2e: ${k} is not set: run make test-console`), process.exit(2));
const url = need("CONSOLE_URL");
const admin = need("ADMIN_TOKEN");
const appJar = need("APP_JAR");
const appPort = need("APP_HTTP_PORT");

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
    const failed = [];
    // A stream the page closes (logs, when it leaves the app) is aborted,
    // not failed.
    page.on("requestfailed", (r) => r.failure()?.errorText !== "net::ERR_ABORTED" && failed.push(`${r.url()}: ${r.failure()?.errorText}`));
    page.on("request", (r) => assert.ok(r.url().startsWith(url), `a request to another host: ${r.url()}`));
    mkdirSync(shots, { recursive: true });

    // Sign in: a wrong token is one line, the admin's opens the console.
    await page.goto(url + "/");
    await page.getByLabel("API token").fill("cmla_wrong");
    await page.getByRole("button", { name: "Sign in" }).click();
    const alert = await page.getByRole("alert").textContent();
    assert.match(alert, /token/i, `a wrong token says: ${alert}`);
    await page.screenshot({ path: join(shots, "signin.png") });
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
    // Time to interactive of the runners page: from the navigation's start
    // to the list shown, the token already in the tab; five loads.
    const tti = [];
    for (let i = 0; i < 5; i++) {
      await page.reload();
      await row.getByText("connected", { exact: true }).waitFor();
      tti.push(await page.evaluate(() => performance.getEntriesByName("cameleer:runners-ready")[0]?.startTime));
    }
    console.log("runners page, time to interactive (ms):", tti.map((t) => Math.round(t)).join(" "));

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
    await app.getByRole("button", { name: "Promote" }).click();
    const promotion = app.getByRole("status", { name: "Promotion" });
    await promotion.getByText("(the digest running here)").waitFor({ timeout: 30000 });
    await promotion.locator("ol.phases li.done", { hasText: "running" }).waitFor({ timeout: 120000 });
    assert.match(await eventually("prod answers", () => getApp("invoices.prod.acme.localhost", "/")), /token-length=17/);
    await page.screenshot({ path: join(shots, "apps-promoted.png"), fullPage: true });
    await page.getByRole("link", { name: "Runners" }).click();

    // Dark, and signed out: the token is gone from the tab.
    await page.getByRole("button", { name: /dark theme/i }).click();
    await page.screenshot({ path: join(shots, "runners-dark.png") });
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByLabel("API token").waitFor();
    assert.equal(await page.evaluate(() => sessionStorage.length), 0, "the token stays after sign-out");
    assert.deepEqual(failed, [], "failed requests");
  } finally {
    await browser.close();
  }
}

try {
  await main();
  console.error("console e2e: passed; screenshots in", shots);
  process.exit(0);
} catch (e) {
  console.error("console e2e:", e);
  process.exit(1);
}

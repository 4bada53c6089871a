// The console end to end, in a real browser: Debian's Chromium driven by
// playwright-core, against a real control plane (bin/cameleer-controlplane,
// with the console embedded) and a real runner (bin/cameleer, registered
// with the token the page makes). Screenshots of each page go to
// docs/console/ (docs/console.md shows them), so they stay current.
//
//   node e2e/console.e2e.mjs        (from web/, after make; `make test-console`)
//
// Env: CAMELEER_BIN and CAMELEER_CONTROLPLANE (default ../bin/...),
// CHROMIUM (default /usr/bin/chromium), SCREENSHOTS (default
// ../docs/console).
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, mkdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createServer } from "node:net";
import { request } from "node:https";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";

const root = resolve(import.meta.dirname, "../..");
const cameleer = process.env.CAMELEER_BIN ?? join(root, "bin/cameleer");
const controlplane = process.env.CAMELEER_CONTROLPLANE ?? join(root, "bin/cameleer-controlplane");
const shots = process.env.SCREENSHOTS ?? join(root, "docs/console");
const dir = mkdtempSync(join(tmpdir(), "cameleer-console-"));
const children = [];

function freePort() {
  return new Promise((ok, fail) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
    s.on("error", fail);
  });
}

function start(cmd, args, log) {
  const out = join(dir, log);
  const p = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"] });
  const chunks = [];
  p.stdout.on("data", (b) => chunks.push(b));
  p.stderr.on("data", (b) => chunks.push(b));
  p.log = () => Buffer.concat(chunks).toString();
  p.logFile = out;
  children.push(p);
  return p;
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

// call sends a JSON request to the control plane, trusting its CA, and
// resolves to the answer's status.
function call(url, ca, token, method, path, body) {
  return new Promise((ok, fail) => {
    const req = request(url + path, { method, ca, headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" } }, (res) => {
      res.resume();
      res.on("end", () => ok(res.statusCode));
    });
    req.on("error", fail);
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

async function main() {
  const port = await freePort();
  const url = `https://127.0.0.1:${port}`;
  const cp = start(controlplane, ["serve", "--data-dir", join(dir, "cp"), "--listen", `127.0.0.1:${port}`, "--url", url], "controlplane.log");
  const admin = await eventually("the control plane's admin token", () => readFileSync(join(dir, "cp", "admin.token"), "utf8").trim());
  // The API call the console does not make: a tenant is the control
  // plane operator's to create.
  const ca = readFileSync(join(dir, "cp", "pki", "ca.crt"));
  await eventually("the control plane answers", async () => (await call(url, ca, admin, "POST", "/api/v1/tenants", { name: "acme", tier: "high" })) === 201);

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
    page.on("requestfailed", (r) => failed.push(r.url()));
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
    const runnerDir = join(dir, "runner");
    execFileSync(cameleer, ["token", "redeem", token, "--data-dir", runnerDir, "--name", "edge-1"]);
    start(cameleer, ["run", "--no-engine", "--data-dir", runnerDir], "runner.log");
    await page.getByRole("button", { name: "Done" }).click();
    const row = page.locator("tr[data-runner='edge-1']");
    await row.getByText("connected", { exact: true }).waitFor({ timeout: 30000 });
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
  return cp;
}

let code = 0;
try {
  await main();
  console.log("console e2e: passed; screenshots in", shots);
} catch (e) {
  code = 1;
  console.error("console e2e:", e);
  for (const c of children) console.error(`--- ${c.logFile}\n${c.log().slice(-4000)}`);
} finally {
  for (const c of children) c.kill("SIGTERM");
  await new Promise((r) => setTimeout(r, 500));
  rmSync(dir, { recursive: true, force: true });
}
process.exit(code);

// Headless Chromium for the browser tests: Debian's /usr/bin/chromium through playwright-core,
// started with the flags this machine needs and a fresh profile. Only loopback is reachable
// (the provider's pages import web fonts; tests never touch the network).
//
// drive(steps) runs `steps(page, step)`; on success it prints one JSON line
// {"ok":true, ...what steps returned}; on failure it saves a screenshot under
// $SLUICE_SCREENSHOT_DIR (default ./screenshots), prints its path and the error to stderr and
// exits 1. The Rust side (test kit `chromium::drive`) reads that line.
import { chromium } from "playwright-core";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

const FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync"];

function loopback(url) {
  try {
    const host = new URL(url).hostname;
    return host === "127.0.0.1" || host === "[::1]" || host === "localhost" || host.endsWith(".localhost");
  } catch {
    return false;
  }
}

export async function drive(steps) {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "sluice-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: "/usr/bin/chromium",
    headless: true,
    args: FLAGS,
    timeout: 60000,
  });
  await context.route("**/*", (route) =>
    loopback(route.request().url()) ? route.continue() : route.abort("blockedbyclient"));
  const page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(30000);
  const step = (name) => console.error(`step: ${name}`);
  let failed = false;
  try {
    const result = (await steps(page, step)) ?? {};
    console.log(JSON.stringify({ ok: true, ...result }));
  } catch (e) {
    failed = true;
    const dir = process.env.SLUICE_SCREENSHOT_DIR || "screenshots";
    fs.mkdirSync(dir, { recursive: true });
    const shot = path.join(dir, `failure-${Date.now()}.png`);
    await page.screenshot({ path: shot, fullPage: true }).catch(() => {});
    console.error(`screenshot: ${shot}`);
    console.error(`at: ${page.url()}`);
    console.error(String((e && e.stack) || e));
  } finally {
    await context.close().catch(() => {});
    fs.rmSync(profile, { recursive: true, force: true });
  }
  if (failed) process.exit(1);
}

// Drives Debian's headless Chromium through the agent's request inspector page:
// load it, see a request appear live, open it, replay it as is, then edit and replay it.
// Usage: node inspector-browser.mjs INSPECTOR_URL EDGE_HOST:PORT PUBLIC_HOST
// Prints one JSON line {"ok":true} on success (see chromium.mjs for failures). The Rust test
// checks that the upstream received the replays.
import http from "node:http";
import { drive } from "./chromium.mjs";

const [inspector, edge, publicHost] = process.argv.slice(2);
const [edgeHost, edgePort] = edge.split(":");
const hookPath = "/browser-hook?step=1";

// Sends a request to the tunnel's public hostname through the edge (no DNS needed).
function sendThroughTunnel(body) {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: edgeHost,
        port: Number(edgePort),
        method: "POST",
        path: hookPath,
        headers: { host: publicHost, "content-type": "application/json", "content-length": Buffer.byteLength(body) },
        timeout: 20000,
      },
      (res) => {
        res.resume();
        res.on("end", () => resolve(res.statusCode));
      },
    );
    req.on("error", reject);
    req.on("timeout", () => req.destroy(new Error("request through the tunnel timed out")));
    req.end(body);
  });
}

await drive(async (page, step) => {
  step("load the page");
  await page.goto(inspector);
  await page.waitForSelector('body[data-live="1"]');

  step("a request appears live");
  const status = await sendThroughTunnel(JSON.stringify({ event: "browser", n: 1 }));
  if (status !== 200) throw new Error(`request through the tunnel answered ${status}`);
  const row = page.locator("#list li", { hasText: hookPath }).first();
  await row.waitFor();

  step("open it");
  await row.click();
  await page.locator("#detail h2", { hasText: `POST ${hookPath}` }).waitFor();
  await page.locator("#detail pre.body.json", { hasText: '"event": "browser"' }).waitFor();

  step("replay it");
  await page.click("#replay");
  await page.waitForSelector('#message[data-result="ok"]');
  await page.locator("#list li", { hasText: "(replay)" }).first().waitFor();

  step("edit and replay it");
  await page.click("#edit");
  await page.fill("#edit-body", '{"event":"edited"}');
  await page.evaluate(() => { document.getElementById("message").dataset.result = ""; });
  await page.click("#edit-send");
  await page.waitForSelector('#message[data-result="ok"]');
});

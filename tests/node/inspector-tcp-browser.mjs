// Drives Debian's headless Chromium through the inspector page of an `agent tcp`: load it,
// send 1000 bytes through the tunnel's TCP port to the echo upstream, and see the connection
// appear in the connections table, closed, with its bytes both ways.
// Usage: node inspector-tcp-browser.mjs INSPECTOR_URL EDGE_TCP_PORT
// Prints one JSON line {"ok":true} on success (see chromium.mjs for failures).
import net from "node:net";
import { drive } from "./chromium.mjs";

const [inspector, port] = process.argv.slice(2);

// One connection: 1000 bytes out, half-close, the echo read back to the end.
function echoThroughTunnel() {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: "127.0.0.1", port: Number(port) }, () => {
      socket.end(Buffer.alloc(1000, 7));
    });
    let got = 0;
    socket.on("data", (d) => { got += d.length; });
    socket.on("end", () => resolve({ got, local: `${socket.localAddress}:${socket.localPort}` }));
    socket.on("error", reject);
    socket.setTimeout(20000, () => socket.destroy(new Error("the echo timed out")));
  });
}

await drive(async (page, step) => {
  step("load the page");
  await page.goto(inspector);
  await page.waitForSelector('body[data-live="1"]');

  step("a connection appears, closed, with its bytes");
  const { got, local } = await echoThroughTunnel();
  if (got !== 1000) throw new Error(`echo returned ${got} bytes`);
  const row = page.locator("#conns tr.conn.closed", { hasText: local });
  await row.waitFor();
  const inBytes = await row.locator("td.in").textContent();
  const outBytes = await row.locator("td.out").textContent();
  if (inBytes !== "1000 B" || outBytes !== "1000 B") throw new Error(`row shows in ${inBytes}, out ${outBytes}`);
});

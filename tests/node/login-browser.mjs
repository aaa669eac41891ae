// Signs in through the edge's openid-connect flow in headless Chromium: opens a page of the
// tunnel's public URL, is sent to the provider, fills in its login form and consent page as a
// user would, and comes back to the app.
// Usage: node login-browser.mjs PAGE_URL USER
// Prints one JSON line {"ok":true,"url":...,"status":...,"text":...,"cookies":[names]} with
// where it landed and the page's text (see chromium.mjs for failures). The Rust test checks it.
import { drive } from "./chromium.mjs";

const [pageUrl, user] = process.argv.slice(2);
const publicOrigin = new URL(pageUrl).origin;

await drive(async (page, step) => {
  step("open the app: sent to the provider's login page");
  await page.goto(pageUrl);
  await page.waitForSelector('input[name="login"]');
  if (new URL(page.url()).origin === publicOrigin) {
    throw new Error(`the login form is on the app's own origin: ${page.url()}`);
  }

  step("log in");
  await page.fill('input[name="login"]', user);
  await page.fill('input[name="password"]', "chromium-password");
  await page.click('button[type="submit"]');

  step("consent");
  await page.waitForSelector('input[name="prompt"][value="consent"]', { state: "attached" });
  const landing = page.waitForResponse((r) => r.url() === pageUrl && r.request().isNavigationRequest());
  await page.click('button[type="submit"]');
  const response = await landing;
  await page.waitForLoadState("load");

  step("read the app's page");
  const text = await page.evaluate(() => (document.querySelector("pre") ?? document.body).textContent);
  const cookies = (await page.context().cookies(publicOrigin)).map((c) => c.name);
  return { url: page.url(), status: response.status(), text, cookies };
});

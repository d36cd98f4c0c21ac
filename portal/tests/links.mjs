// The pages mailed links open, in a real (headless) Chromium: verify an email, set a new
// password, confirm a grant of marketing mail (double opt-in).
// Usage: node tests/links.mjs BASE_URL VERIFY_TOKEN RESET_TOKEN NEW_PASSWORD CONSENT_TOKEN —
// exits non-zero on failure. Run by gateway/tests/it/portal.rs; CHROMIUM overrides the browser.
import assert from "node:assert/strict";
import { chromium } from "playwright-core";

const [base, verifyToken, resetToken, password, consentToken] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
try {
  const page = await browser.newPage({ locale: "en-US" });
  const problems = [];
  page.on("pageerror", (e) => problems.push(e.message));
  const requested = [];
  page.on("request", (r) => requested.push(r.url()));

  await page.goto(`${base}/portal/#/verify-email?token=${encodeURIComponent(verifyToken)}`);
  await page.waitForSelector("#link-result.ok");
  assert.match(await page.textContent("#link-title"), /Verify email/);
  assert.equal(await page.isHidden("#signup"), true);

  // A used link says so, in words, and changes nothing.
  await page.goto(`${base}/portal/?again#/verify-email?token=${encodeURIComponent(verifyToken)}`);
  await page.waitForSelector("#link-result.error");
  assert.match(await page.textContent("#link-result"), /invalid, used or expired/);

  await page.goto(`${base}/portal/?reset#/reset-password?token=${encodeURIComponent(resetToken)}`);
  await page.waitForSelector("#link-form [name=password]");
  await page.fill("#link-form [name=password]", "short");
  await page.click("#link-form button[type=submit]");
  await page.waitForSelector("#link-result.error .field-error");
  await page.fill("#link-form [name=password]", password);
  await page.click("#link-form button[type=submit]");
  await page.waitForSelector("#link-result.ok");

  // Double opt-in acts on the button only (a mail scanner opening the link confirms nothing).
  await page.goto(`${base}/portal/?consent#/consent/confirm?token=${encodeURIComponent(consentToken)}`);
  await page.waitForSelector("#link-form button[type=submit]");
  assert.match(await page.textContent("#link-title"), /Confirm news from the shop/);
  await page.click("#link-form button[type=submit]");
  await page.waitForSelector("#link-result.ok");
  assert.match(await page.textContent("#link-result"), /Confirmed/);

  // The tokens never left the browser in a URL: only in the bodies of the POSTs.
  const tokens = [verifyToken, resetToken, consentToken];
  assert.deepEqual(requested.filter((u) => tokens.some((t) => u.includes(t))), []);
  assert.deepEqual(problems, []);
  console.log("portal links ok");
} finally {
  await browser.close();
}

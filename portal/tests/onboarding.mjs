// A merchant signs up through the portal in a real (headless) Chromium.
// Usage: node tests/onboarding.mjs BASE_URL SLUG EMAIL PASSWORD — exits non-zero on failure.
// Run by gateway/tests/it/portal.rs against a live test app; CHROMIUM overrides the browser.
import assert from "node:assert/strict";
import { chromium } from "playwright-core";

const [base, slug, email, password] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
try {
  const page = await browser.newPage();
  const problems = [];
  page.on("pageerror", (e) => problems.push(e.message));
  // Failed loads are checked by status below; any other console error is a problem.
  page.on("console", (m) => m.type() === "error" && !m.text().startsWith("Failed to load resource")
    && problems.push(m.text()));
  const failed = [];
  page.on("response", (r) => r.status() >= 400 && failed.push(`${r.status()} ${new URL(r.url()).pathname}`));

  await page.goto(`${base}/portal/`);
  await page.click('nav button[data-lang="en"]');
  await page.waitForFunction(() => document.documentElement.lang === "en"
    && document.querySelector('[data-purpose="account"] label')?.textContent.includes("required"));
  // The checkboxes are the API's purposes, in its order; none is ticked for the user.
  const codes = await page.$$eval("[data-purpose]", (n) => n.map((x) => x.dataset.purpose));
  assert.deepEqual(codes, ["account", "marketing", "analytics"]);
  assert.equal(await page.$$eval("input[name=consent]:checked", (n) => n.length), 0);
  assert.match(await page.textContent("#policy summary"), /version 1\.0/);

  await page.fill('[name="business_name"]', "Toko <b>Budi</b>");
  await page.fill('[name="slug"]', slug);
  await page.selectOption('[name="locale"]', "en");
  await page.fill('[name="owner.full_name"]', "Budi Santoso");
  await page.fill('[name="owner.email"]', email);
  await page.fill('[name="owner.password"]', password);

  // Without the required consent: refused, and the error names the purpose.
  await page.check("#purpose-marketing");
  await page.click('button[type="submit"]');
  await page.waitForSelector("#result.error");
  assert.match(await page.textContent('.field-error[data-field="consents"]'), /account/);

  // With it: the shop is made.
  await page.check("#purpose-account");
  await page.click('button[type="submit"]');
  await page.waitForSelector("#result.ok");
  assert.match(await page.textContent("#result"), new RegExp(slug));
  assert.equal(await page.isHidden("#signup"), true);
  assert.deepEqual(problems, []);
  // The one failed request is the deliberate refusal (the browser's own favicon probe aside).
  assert.deepEqual(failed.filter((f) => !f.endsWith("/favicon.ico")), ["422 /api/v1/onboarding/merchants"]);
  console.log("portal sign-up ok");
} finally {
  await browser.close();
}

// The data-subject pages mailed links open, in a real (headless) Chromium: confirm a request,
// or download an export bundle, each link once. Usage:
// node tests/privacy.mjs BASE_URL confirm|download TOKEN — exits non-zero on failure. Run by
// gateway/tests/it/portal.rs (confirm first: the download token exists only after it).
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { chromium } from "playwright-core";

const [base, step, token] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
try {
  const page = await browser.newPage({ locale: "en-US", acceptDownloads: true });
  const problems = [];
  page.on("pageerror", (e) => problems.push(e.message));
  const requested = [];
  page.on("request", (r) => requested.push(r.url()));
  const open = async (query) => {
    await page.goto(`${base}/portal/?${query}#/privacy/${step}?token=${encodeURIComponent(token)}`);
    await page.waitForSelector("#link-form button[type=submit]");
  };

  await open("first");
  if (step === "confirm") {
    assert.match(await page.textContent("#link-title"), /Confirm your personal data request/);
    await page.click("#link-form button[type=submit]");
    await page.waitForSelector("#link-result.ok");
    assert.match(await page.textContent("#link-result"), /download your data is on its way/);
  } else {
    const [download] = await Promise.all([
      page.waitForEvent("download"),
      page.click("#link-form button[type=submit]"),
    ]);
    assert.equal(download.suggestedFilename(), "my-data.zip");
    const bytes = await readFile(await download.path());
    assert.equal(bytes.subarray(0, 2).toString(), "PK", "a zip file");
    assert.ok(bytes.includes(Buffer.from("manifest.json")));
    await page.waitForSelector("#link-result.ok");
  }

  // The link works once: the second press says so in words.
  await open("again");
  await page.click("#link-form button[type=submit]");
  await page.waitForSelector("#link-result.error");
  assert.match(await page.textContent("#link-result"), /invalid, used or expired/);

  assert.deepEqual(requested.filter((u) => u.includes(token)), [], "the token stays out of URLs");
  assert.deepEqual(problems, []);
  console.log(`portal privacy ${step} ok`);
} finally {
  await browser.close();
}

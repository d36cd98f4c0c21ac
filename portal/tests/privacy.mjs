// The data subject's pages, in a real (headless) Chromium: file a request without an account,
// confirm it from the mailed link, download the export bundle, each link once. Usage:
// node tests/privacy.mjs BASE_URL request SLUG EMAIL | confirm TOKEN | download TOKEN — exits
// non-zero on failure. Run by gateway/tests/it/portal.rs in that order (each token exists
// only after the step before).
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { chromium } from "playwright-core";

const [base, step, token, email] = process.argv.slice(2);
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
  if (step === "request") {
    await page.goto(`${base}/portal/`);
    await page.waitForSelector("#privacy-link");
    assert.match(await page.textContent("#privacy-link"), /Ask for your data/);
    await page.click("#privacy-link");
    await page.waitForSelector("#link-form [name=email]");
    assert.match(await page.textContent("#link-title"), /Your personal data/);
    await page.fill("#link-form [name=tenant]", token);
    await page.fill("#link-form [name=email]", email);
    await page.selectOption("#link-form [name=type]", "export");
    await page.click("#link-form button[type=submit]");
    await page.waitForSelector("#link-result.ok");
    assert.match(await page.textContent("#link-result"), /confirmation link is on its way/);
    assert.deepEqual(problems, []);
    console.log("portal privacy request ok");
  } else {
    await linkStep(page, problems, requested);
  }
} finally {
  await browser.close();
}

async function linkStep(page, problems, requested) {
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
}

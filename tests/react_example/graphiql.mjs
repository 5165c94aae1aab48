// Opens the gateway's own GraphiQL page in Debian's Chromium (the playwright-core this folder's
// lockfile installs for drive.mjs), pastes a bearer token into the Headers editor, runs an
// operation, and prints what it saw as one JSON object; tests/test_graphiql.py judges it.
//
// Usage: node graphiql.mjs '{"url": URL, "chromium": PATH, "headers": JSON, "query": GRAPHQL}'
import { STEP_MS, launchChromium } from "./chromium.mjs";

const config = JSON.parse(process.argv[2]);

const browser = await launchChromium(config.chromium);
const seen = { requests: [], consoleErrors: [] };
try {
  const page = await browser.newPage();
  page.on("request", (request) => seen.requests.push(request.url()));
  page.on("console", (message) => {
    if (message.type() === "error") seen.consoleErrors.push({ text: message.text(), url: message.location().url });
  });
  // Every refusal of the page's CSP, as the page itself sees it.
  await page.addInitScript(() => {
    window.__violations = [];
    document.addEventListener("securitypolicyviolation", (event) =>
      window.__violations.push(`${event.violatedDirective} ${event.blockedURI}`)
    );
  });
  const response = await page.goto(config.url, { timeout: STEP_MS });
  seen.csp = response.headers()["content-security-policy"] ?? null;
  await page.locator(".graphiql-execute-button").waitFor({ timeout: STEP_MS });
  // The tools section holds the variables and headers editors; the headers one is shown first.
  const headers = page.locator('section[aria-label="Headers"] .graphiql-editor:not(.hidden) .CodeMirror');
  seen.headersEditorVisible = await headers.isVisible();
  // What a user's paste and typing end in: the editors' text.
  await headers.evaluate((editor, text) => editor.CodeMirror.setValue(text), config.headers);
  await page
    .locator(".graphiql-query-editor .CodeMirror")
    .evaluate((editor, text) => editor.CodeMirror.setValue(text), config.query);
  await page.locator(".graphiql-execute-button").click();
  const result = page.locator(".result-window .CodeMirror");
  await page.waitForFunction(
    () => document.querySelector(".result-window .CodeMirror")?.CodeMirror.getValue().includes('"data"'),
    null,
    { timeout: STEP_MS }
  );
  seen.result = JSON.parse(await result.evaluate((editor) => editor.CodeMirror.getValue()));
  seen.violations = await page.evaluate(() => window.__violations);
} catch (error) {
  seen.failed = String(error);
} finally {
  await browser.close();
}
console.log(JSON.stringify(seen));

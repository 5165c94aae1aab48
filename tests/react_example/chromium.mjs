// The one way both drivers here (drive.mjs, graphiql.mjs) start Debian's Chromium through
// playwright-core, and how long any one step of theirs may wait.
import { chromium } from "playwright-core";

export const STEP_MS = 15_000;

/** Headless Chromium from `executablePath`, kept off the network except for what a page asks for. */
export function launchChromium(executablePath) {
  // Without the background-networking flags Chromium dials Google services, and the closed
  // network's refusals slow or break the run. Playwright gives each launch a fresh
  // --user-data-dir in the temporary folder and removes it on close.
  return chromium.launch({
    executablePath,
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}

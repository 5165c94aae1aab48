// Drives the built examples/react in Debian's Chromium (playwright-core, no downloaded browser)
// and prints what it saw as one JSON object; tests/test_react_example.py judges it.
//
// Usage: node drive.mjs '{"app": URL, "blocked": URL, "graphql": URL, "token": JWT, "pageSize": N,
//                        "profile": {...}, "session": {...}, "chromium": PATH}'
import { STEP_MS, launchChromium } from "./chromium.mjs";

const config = JSON.parse(process.argv[2]);

const browser = await launchChromium(config.chromium);

/** A fresh page that records every request to the gateway, its preflight, and its answer. */
async function recordedPage() {
  const context = await browser.newContext();
  const page = await context.newPage();
  const exchanges = [];
  const preflights = [];
  const consoleErrors = [];
  page.on("console", (message) => {
    if (message.type() === "error") consoleErrors.push(message.text());
  });
  page.on("request", (request) => {
    if (!request.url().startsWith(config.graphql)) return;
    const exchange = { method: request.method(), url: request.url(), body: request.postData() };
    exchanges.push(exchange);
    exchange.done = (async () => {
      exchange.headers = await request.allHeaders();
      const response = await request.response();
      if (response === null) {
        exchange.failure = request.failure()?.errorText ?? "no response";
        return;
      }
      exchange.status = response.status();
      exchange.responseHeaders = await response.allHeaders();
      exchange.response = await response.json().catch(() => null);
    })().catch((error) => {
      exchange.failure = String(error);
    });
  });
  const sockets = [];
  page.on("websocket", (ws) => {
    const socket = { url: ws.url(), received: [], closed: false, error: null };
    sockets.push(socket);
    ws.on("framereceived", ({ payload }) => socket.received.push(JSON.parse(String(payload)).type));
    ws.on("socketerror", (error) => (socket.error = String(error)));
    ws.on("close", () => (socket.closed = true));
  });
  // Playwright's request events leave out CORS preflights; the DevTools protocol reports them.
  const cdp = await context.newCDPSession(page);
  await cdp.send("Network.enable");
  const preflightIds = new Map();
  cdp.on("Network.requestWillBeSent", (event) => {
    if (event.type === "Preflight" || event.request.method === "OPTIONS") {
      const preflight = { url: event.request.url, headers: event.request.headers };
      preflights.push(preflight);
      preflightIds.set(event.requestId, preflight);
    }
  });
  cdp.on("Network.responseReceived", (event) => {
    const preflight = preflightIds.get(event.requestId);
    if (preflight) {
      preflight.status = event.response.status;
      preflight.responseHeaders = event.response.headers;
    }
  });
  async function settle() {
    await Promise.all(exchanges.map((e) => e.done));
    return exchanges.map(({ done, ...rest }) => rest);
  }
  return { page, context, settle, preflights, consoleErrors, sockets };
}

/** Wait until `condition()` holds, checking every 50 ms, for at most STEP_MS. */
async function until(condition, what) {
  const deadline = Date.now() + STEP_MS;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`still waiting after ${STEP_MS} ms until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** How many subscriptions the gateway serves, from its /readyz. */
async function gatewaySubscriptions() {
  const response = await fetch(new URL("/readyz", config.graphql));
  return (await response.json()).subscriptions;
}

const rows = (page) => page.getByTestId("session").allInnerTexts();

/** Runs `steps` on a recorded page at `url`; a failed step is reported with the page's text. */
async function visit(url, steps) {
  const { page, context, settle, preflights, consoleErrors, sockets } = await recordedPage();
  const seen = {};
  let step = "open";
  try {
    await page.goto(url);
    for (const [name, run] of Object.entries(steps)) {
      step = name;
      seen[name] = await run(page, sockets);
    }
  } catch (error) {
    seen.failed = { step, error: String(error), text: await page.locator("body").innerText() };
  }
  seen.alerts = await page.getByRole("alert").allInnerTexts();
  seen.exchanges = await settle();
  seen.preflights = preflights;
  seen.consoleErrors = consoleErrors;
  seen.sockets = sockets;
  await context.close();
  return seen;
}

const allowed = {
  async firstPage(page) {
    await page.getByTestId("session").nth(config.pageSize - 1).waitFor({ timeout: STEP_MS });
    return rows(page);
  },
  async afterFetchMore(page) {
    const before = await page.getByTestId("session").count();
    await page.getByRole("button", { name: "Load more" }).click();
    await page.getByTestId("session").nth(before).waitFor({ timeout: STEP_MS });
    await page.getByRole("button", { name: "Load more" }).waitFor({ state: "detached", timeout: STEP_MS });
    return rows(page);
  },
  async signedIn(page) {
    await page.getByLabel("Token").fill(config.token);
    await page.getByRole("button", { name: "Sign in" }).click();
    const profile = page.getByRole("form", { name: "Create your profile" });
    await profile.getByLabel("Name").fill(config.profile.displayName, { timeout: STEP_MS });
    await profile.getByLabel("Email").fill(config.profile.email);
    await profile.getByRole("button", { name: "Create profile" }).click();
    const greeting = page.getByText(`Signed in as ${config.profile.displayName}`);
    await greeting.waitFor({ timeout: STEP_MS });
    return greeting.innerText();
  },
  async subscribed() {
    // The feed subscribed at page load; the mutation must not run before the gateway serves it.
    await until(async () => (await gatewaySubscriptions()) >= 1, "the gateway serves the feed's subscription");
    return gatewaySubscriptions();
  },
  async afterCreate(page) {
    const form = page.getByRole("form", { name: "New session" });
    await form.getByLabel("Discipline").fill(config.session.discipline);
    await form.getByLabel("Location").fill(config.session.location);
    await form.getByLabel("Scores").fill(config.session.scores);
    await form.getByRole("button", { name: "Save session" }).click();
    await page.getByTestId("session").filter({ hasText: config.session.location }).waitFor({ timeout: STEP_MS });
    return rows(page);
  },
  async feed(page) {
    const entry = page.getByTestId("activity").filter({ hasText: config.profile.displayName });
    await entry.first().waitFor({ timeout: STEP_MS });
    return page.getByTestId("activity").allInnerTexts();
  },
};

const blocked = {
  async error(page, sockets) {
    await page.getByRole("alert").first().waitFor({ timeout: STEP_MS });
    await until(() => sockets.length > 0 && sockets.every((s) => s.closed), "the feed's WebSocket is closed");
    return rows(page);
  },
};

try {
  const result = { allowed: await visit(config.app, allowed), blocked: await visit(config.blocked, blocked) };
  process.stdout.write(JSON.stringify(result));
} finally {
  await browser.close();
}

// Subscribes with the npm `graphql-ws` client, as a browser app would, and prints one JSON line per
// message: {"event":"next","payload":…}, then {"event":"complete"} or {"event":"error",…}.
// Usage: node subscribe.mjs <ws-url> <query> [<variables JSON>] [<bearer token>] [<count>]
import { createClient } from "graphql-ws";
import WebSocket from "ws";

const [url, query, variables = "{}", token = "", count = "1"] = process.argv.slice(2);
const print = (line) => process.stdout.write(JSON.stringify(line) + "\n");

const client = createClient({
  url,
  webSocketImpl: WebSocket,
  connectionParams: token ? { Authorization: `Bearer ${token}` } : undefined,
  retryAttempts: 0,
  on: { closed: (event) => print({ event: "closed", code: event.code, reason: String(event.reason) }) },
});

let received = 0;
const unsubscribe = client.subscribe(
  { query, variables: JSON.parse(variables) },
  {
    next: (payload) => {
      print({ event: "next", payload });
      received += 1;
      if (received >= Number(count)) {
        unsubscribe();
        client.dispose();
      }
    },
    error: (error) => {
      print({ event: "error", error: Array.isArray(error) ? error : String(error.message ?? error) });
      process.exitCode = 1;
      client.dispose();
    },
    complete: () => print({ event: "complete" }),
  },
);

// The GraphQL-over-HTTP conformance audit of graphql-http, run against a live gateway.
// Usage: node audit.mjs http://127.0.0.1:PORT/graphql
// Prints one JSON array: {id, name, status, reason?} for every server audit, in order.
// `name` starts with the audit's level: MUST, SHOULD or MAY.
import { serverAudits } from 'graphql-http';

const url = process.argv[2];
if (!url) {
  console.error('usage: node audit.mjs <graphql url>');
  process.exit(2);
}

const results = [];
for (const audit of serverAudits({ url })) {
  let result;
  try {
    result = await audit.fn();
  } catch (error) {
    // An audit throws only on a fatal error (the server could not be reached, say).
    result = { id: audit.id, name: audit.name, status: 'error', reason: String(error) };
  }
  const row = { id: result.id, name: result.name, status: result.status };
  if (result.status !== 'ok') {
    row.reason = result.reason;
  }
  results.push(row);
}
console.log(JSON.stringify(results));

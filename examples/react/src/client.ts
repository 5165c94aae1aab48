// The Apollo Client: the bearer token on every request, automatic persisted queries,
// subscriptions over a WebSocket, and Relay-style pagination of the sessions list in the cache.
import { ApolloClient, ApolloLink, HttpLink, InMemoryCache, type Operation, from, split } from "@apollo/client";
import { createPersistedQueryLink } from "@apollo/client/link/persisted-queries";
import { GraphQLWsLink } from "@apollo/client/link/subscriptions";
import { getMainDefinition, relayStylePagination } from "@apollo/client/utilities";
import { createClient } from "graphql-ws";

export const GRAPHQL_URL: string = import.meta.env.VITE_GRAPHQL_URL ?? "http://127.0.0.1:3001/graphql";

const TOKEN_KEY = "club.token";

// Kept for this tab only: a development token pasted from `gateway token`.
export function readToken(): string | null {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function storeToken(token: string | null): void {
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  else sessionStorage.removeItem(TOKEN_KEY);
}

// Web Crypto is available on https:// pages and on http://localhost / 127.0.0.1.
async function sha256(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return Array.from(new Uint8Array(digest), (byte) => byte.toString(16).padStart(2, "0")).join("");
}

const bearer = new ApolloLink((operation, forward) => {
  const token = readToken();
  if (token) {
    operation.setContext(({ headers = {} }: { headers?: Record<string, string> }) => ({
      headers: { ...headers, authorization: `Bearer ${token}` },
    }));
  }
  return forward(operation);
});

// The first request of a query sends only its hash, by GET (cacheable by a CDN); the gateway
// answers PERSISTED_QUERY_NOT_FOUND once, the link retries with the text, and from then on the
// hash alone runs it.
const persisted = createPersistedQueryLink({ sha256, useGETForHashedQueries: true });

// Browsers cannot set headers on a WebSocket: the token goes in connection_init's payload, read
// when the socket opens. The feed shows nothing private, so a socket keeps the identity it
// opened with; an app whose subscriptions do would reconnect after sign-in (graphql-ws's
// restart recipe) before the next delivery.
const live = createClient({
  url: GRAPHQL_URL.replace(/^http/, "ws"),
  connectionParams: () => {
    const token = readToken();
    return token ? { Authorization: `Bearer ${token}` } : {};
  },
});

const http = from([bearer, persisted, new HttpLink({ uri: GRAPHQL_URL })]);

function isSubscription({ query }: Operation): boolean {
  const definition = getMainDefinition(query);
  return definition.kind === "OperationDefinition" && definition.operation === "subscription";
}

export const client = new ApolloClient({
  // Sent as apollographql-client-name/-version, which the gateway's CORS_ALLOW_HEADERS allows.
  clientAwareness: { name: "club-react-example", version: "1.0.0" },
  link: split(isSubscription, new GraphQLWsLink(live), http),
  cache: new InMemoryCache({
    typePolicies: {
      Query: { fields: { shootingSessions: relayStylePagination(["filter", "orderBy"]) } },
    },
  }),
});

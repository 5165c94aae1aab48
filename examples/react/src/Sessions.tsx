import { useQuery } from "@apollo/client";

import { SESSIONS } from "./operations";

const PAGE_SIZE = 5;

// The newest sessions, a page at a time: fetchMore asks for the page after the last cursor and
// the cache's relayStylePagination appends it.
export function Sessions() {
  const { data, error, loading, fetchMore } = useQuery(SESSIONS, {
    variables: { first: PAGE_SIZE },
    notifyOnNetworkStatusChange: true,
  });
  if (error) return <p role="alert">{error.message}</p>;
  if (!data) return <p>Loading…</p>;
  const { edges, pageInfo } = data.shootingSessions;
  return (
    <section>
      <h2>Sessions</h2>
      <ul>
        {edges.map(({ node }) => (
          <li key={node.id} data-testid="session">
            {new Date(node.startedAt).toLocaleDateString()} · {node.user.displayName} · {node.discipline}
            {node.location ? ` at ${node.location}` : ""} · {node.shotCount} shots, {node.totalScore}
          </li>
        ))}
      </ul>
      {pageInfo.hasNextPage && (
        <button
          disabled={loading}
          onClick={() => fetchMore({ variables: { after: pageInfo.endCursor } })}
        >
          Load more
        </button>
      )}
    </section>
  );
}

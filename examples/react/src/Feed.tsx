import { useSubscription } from "@apollo/client";
import { useState } from "react";

import type { ActivityAddedSubscription } from "./gql/graphql";
import { ACTIVITY_ADDED } from "./operations";

type Activity = ActivityAddedSubscription["activityAdded"];

const KEEP = 5;

const WHAT: Record<Activity["kind"], string> = {
  SESSION_CREATED: "recorded a session",
  SHOTS_ADDED: "added shots",
  SESSION_UPDATED: "updated a session",
  SESSION_DELETED: "deleted a session",
  GROUP_JOINED: "joined a group",
  GROUP_LEFT: "left a group",
};

// The club's activity as it happens: each entry arrives over the WebSocket subscription.
export function Feed() {
  const [entries, setEntries] = useState<Activity[]>([]);
  useSubscription(ACTIVITY_ADDED, {
    onData: ({ data }) => {
      const entry = data.data?.activityAdded;
      if (entry) setEntries((shown) => [entry, ...shown].slice(0, KEEP));
    },
  });
  return (
    <section>
      <h2>Live</h2>
      {entries.length === 0 && <p>Nothing yet.</p>}
      <ul>
        {entries.map((entry) => (
          <li key={entry.id} data-testid="activity">
            {entry.user.displayName} {WHAT[entry.kind]}
          </li>
        ))}
      </ul>
    </section>
  );
}

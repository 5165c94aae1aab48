import { useMutation } from "@apollo/client";
import { type FormEvent, useState } from "react";

import { CREATE_SESSION } from "./operations";

// Records a session for the signed-in member and puts it at the top of the loaded list.
export function NewSession() {
  const [discipline, setDiscipline] = useState("10m Air Rifle");
  const [location, setLocation] = useState("");
  const [scores, setScores] = useState("");
  const [createSession, { loading, error }] = useMutation(CREATE_SESSION, {
    update(cache, { data }) {
      if (!data) return;
      const node = cache.identify(data.createShootingSession);
      if (!node) return;
      cache.modify({
        fields: {
          shootingSessions(existing, { toReference }) {
            const connection = existing as { edges: unknown[] };
            // The mutation returns no cursor; paging goes on from pageInfo.endCursor, which a
            // new first edge leaves as it was.
            const edge = { __typename: "ShootingSessionEdge", cursor: "", node: toReference(node) };
            return { ...connection, edges: [edge, ...connection.edges] };
          },
        },
      });
    },
  });

  function submit(event: FormEvent) {
    event.preventDefault();
    const shots = scores
      .split(/[\s,]+/)
      .filter(Boolean)
      .map((score) => ({ score: Number(score) }));
    void createSession({ variables: { input: { discipline, location: location || null, shots } } })
      .then(() => {
        setLocation("");
        setScores("");
      })
      .catch(() => {});
  }
  return (
    <form onSubmit={submit} aria-label="New session">
      <h2>New session</h2>
      <label>
        Discipline <input name="discipline" value={discipline} onChange={(e) => setDiscipline(e.target.value)} required />
      </label>{" "}
      <label>
        Location <input name="location" value={location} onChange={(e) => setLocation(e.target.value)} />
      </label>{" "}
      <label>
        Scores <input name="scores" value={scores} onChange={(e) => setScores(e.target.value)} placeholder="10.2, 9.8" />
      </label>{" "}
      <button type="submit" disabled={loading}>
        Save session
      </button>
      {error && <p role="alert">{error.message}</p>}
    </form>
  );
}

import { useMutation } from "@apollo/client";
import { type FormEvent, useState } from "react";

import { CREATE_PROFILE, VIEWER } from "./operations";

// A signed-in person without a profile creates it once (createUser links it to the token's sub).
export function Profile() {
  const [displayName, setDisplayName] = useState("");
  const [email, setEmail] = useState("");
  const [createProfile, { loading, error }] = useMutation(CREATE_PROFILE, {
    refetchQueries: [VIEWER],
    awaitRefetchQueries: true,
  });

  function submit(event: FormEvent) {
    event.preventDefault();
    void createProfile({ variables: { input: { displayName, email } } }).catch(() => {});
  }
  return (
    <form onSubmit={submit} aria-label="Create your profile">
      <h2>Create your profile</h2>
      <label>
        Name <input name="displayName" value={displayName} onChange={(e) => setDisplayName(e.target.value)} required />
      </label>{" "}
      <label>
        Email <input name="email" type="email" value={email} onChange={(e) => setEmail(e.target.value)} required />
      </label>{" "}
      <button type="submit" disabled={loading}>
        Create profile
      </button>
      {error && <p role="alert">{error.message}</p>}
    </form>
  );
}

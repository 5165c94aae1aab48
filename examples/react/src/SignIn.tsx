import { type FormEvent, useState } from "react";

import type { ViewerQuery } from "./gql/graphql";

interface Props {
  signedIn: boolean;
  viewer: ViewerQuery["viewer"];
  onChange: (token: string | null) => Promise<void>;
}

// Sign-in for development: paste a token printed by `gateway token --sub me`.
export function SignIn({ signedIn, viewer, onChange }: Props) {
  const [token, setToken] = useState("");

  if (signedIn) {
    return (
      <p>
        Signed in{viewer ? ` as ${viewer.displayName}` : ""}.{" "}
        <button onClick={() => void onChange(null)}>Sign out</button>
      </p>
    );
  }
  function submit(event: FormEvent) {
    event.preventDefault();
    void onChange(token.trim());
    setToken("");
  }
  return (
    <form onSubmit={submit}>
      <label>
        Token <input name="token" value={token} onChange={(e) => setToken(e.target.value)} required />
      </label>{" "}
      <button type="submit">Sign in</button>
    </form>
  );
}

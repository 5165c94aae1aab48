import { useApolloClient, useQuery } from "@apollo/client";
import { useState } from "react";

import { Feed } from "./Feed";
import { readToken, storeToken } from "./client";
import { NewSession } from "./NewSession";
import { VIEWER } from "./operations";
import { Profile } from "./Profile";
import { Sessions } from "./Sessions";
import { SignIn } from "./SignIn";

export function App() {
  const client = useApolloClient();
  const [signedIn, setSignedIn] = useState(readToken() !== null);
  const { data } = useQuery(VIEWER);
  const viewer = data?.viewer ?? null;

  async function changeToken(token: string | null) {
    storeToken(token);
    setSignedIn(token !== null);
    // Every query runs again as the new person.
    await client.resetStore();
  }

  return (
    <main>
      <h1>Shooting club</h1>
      <SignIn signedIn={signedIn} viewer={viewer} onChange={changeToken} />
      {signedIn && !viewer && <Profile />}
      {viewer && <NewSession />}
      <Feed />
      <Sessions />
    </main>
  );
}

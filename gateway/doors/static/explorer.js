// The gateway's GraphiQL page: GraphiQL and React come from /graphiql/.../vendor/ (the npm builds
// scripts/graphiql-assets copies), and this file is the only code of ours, so the page runs under
// Content-Security-Policy: default-src 'self' with no inline script or style.
(function () {
  "use strict";
  var endpoint = new URL(window.location.pathname, window.location.href);
  var socket = new URL(endpoint.href);
  socket.protocol = endpoint.protocol === "https:" ? "wss:" : "ws:";
  var fetcher = GraphiQL.createFetcher({ url: endpoint.href, subscriptionUrl: socket.href });
  var root = ReactDOM.createRoot(document.getElementById("graphiql"));
  root.render(
    React.createElement(GraphiQL, {
      fetcher: fetcher,
      // Open at the headers editor: paste {"Authorization": "Bearer <token>"} there to sign in.
      defaultEditorToolsVisibility: "headers",
      shouldPersistHeaders: false,
    })
  );
})();

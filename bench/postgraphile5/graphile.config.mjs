// PostGraphile 5 for the benchmark: the Amber preset over the gateway's tables (connection, schema,
// host and port come from the command line). It runs on the Node 22 pinned beside it: Grafast and
// @dataplan/pg call Promise.withResolvers, which Node 20 lacks, and on Node 20 every list field
// answers "Cannot read properties of undefined (reading 'items')".
import { PostGraphileAmberPreset } from "postgraphile/presets/amber";

export default {
  extends: [PostGraphileAmberPreset],
  grafserv: { graphiql: false },
};

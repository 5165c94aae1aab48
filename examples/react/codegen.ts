import type { CodegenConfig } from "@graphql-codegen/cli";

// Types every operation in src/ against the gateway's schema: schema.graphql at the repository
// root is the output of `gateway export-schema` (against a running gateway, `schema` may be its URL).
const config: CodegenConfig = {
  schema: "../../schema.graphql",
  documents: ["src/**/*.{ts,tsx}", "!src/gql/**/*"],
  ignoreNoDocuments: false,
  generates: {
    "src/gql/": {
      preset: "client",
      presetConfig: { fragmentMasking: false },
      config: {
        scalars: { DateTime: "string" },
        enumsAsTypes: true,
        onlyOperationTypes: true,
        useTypeImports: true,
      },
    },
  },
};

export default config;

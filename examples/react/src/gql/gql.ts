/* eslint-disable */
import * as types from './graphql';
import type { TypedDocumentNode as DocumentNode } from '@graphql-typed-document-node/core';

/**
 * Map of all GraphQL operations in the project.
 *
 * This map has several performance disadvantages:
 * 1. It is not tree-shakeable, so it will include all operations in the project.
 * 2. It is not minifiable, so the string of a GraphQL query will be multiple times inside the bundle.
 * 3. It does not support dead code elimination, so it will add unused operations.
 *
 * Therefore it is highly recommended to use the babel or swc plugin for production.
 * Learn more about it here: https://the-guild.dev/graphql/codegen/plugins/presets/preset-client#reducing-bundle-size
 */
type Documents = {
    "\n  query Sessions($first: Int!, $after: String) {\n    shootingSessions(first: $first, after: $after) {\n      edges {\n        cursor\n        node {\n          ...SessionRow\n        }\n      }\n      pageInfo {\n        hasNextPage\n        endCursor\n      }\n    }\n  }\n": typeof types.SessionsDocument,
    "\n  fragment SessionRow on ShootingSession {\n    id\n    startedAt\n    discipline\n    location\n    shotCount\n    totalScore\n    user {\n      id\n      displayName\n    }\n  }\n": typeof types.SessionRowFragmentDoc,
    "\n  query Viewer {\n    viewer {\n      id\n      displayName\n      email\n    }\n  }\n": typeof types.ViewerDocument,
    "\n  mutation CreateProfile($input: CreateUserInput!) {\n    createUser(input: $input) {\n      id\n      displayName\n      email\n    }\n  }\n": typeof types.CreateProfileDocument,
    "\n  mutation CreateSession($input: CreateShootingSessionInput!) {\n    createShootingSession(input: $input) {\n      ...SessionRow\n    }\n  }\n": typeof types.CreateSessionDocument,
    "\n  subscription ActivityAdded {\n    activityAdded {\n      id\n      kind\n      createdAt\n      user {\n        id\n        displayName\n      }\n    }\n  }\n": typeof types.ActivityAddedDocument,
};
const documents: Documents = {
    "\n  query Sessions($first: Int!, $after: String) {\n    shootingSessions(first: $first, after: $after) {\n      edges {\n        cursor\n        node {\n          ...SessionRow\n        }\n      }\n      pageInfo {\n        hasNextPage\n        endCursor\n      }\n    }\n  }\n": types.SessionsDocument,
    "\n  fragment SessionRow on ShootingSession {\n    id\n    startedAt\n    discipline\n    location\n    shotCount\n    totalScore\n    user {\n      id\n      displayName\n    }\n  }\n": types.SessionRowFragmentDoc,
    "\n  query Viewer {\n    viewer {\n      id\n      displayName\n      email\n    }\n  }\n": types.ViewerDocument,
    "\n  mutation CreateProfile($input: CreateUserInput!) {\n    createUser(input: $input) {\n      id\n      displayName\n      email\n    }\n  }\n": types.CreateProfileDocument,
    "\n  mutation CreateSession($input: CreateShootingSessionInput!) {\n    createShootingSession(input: $input) {\n      ...SessionRow\n    }\n  }\n": types.CreateSessionDocument,
    "\n  subscription ActivityAdded {\n    activityAdded {\n      id\n      kind\n      createdAt\n      user {\n        id\n        displayName\n      }\n    }\n  }\n": types.ActivityAddedDocument,
};

/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 *
 *
 * @example
 * ```ts
 * const query = graphql(`query GetUser($id: ID!) { user(id: $id) { name } }`);
 * ```
 *
 * The query argument is unknown!
 * Please regenerate the types.
 */
export function graphql(source: string): unknown;

/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  query Sessions($first: Int!, $after: String) {\n    shootingSessions(first: $first, after: $after) {\n      edges {\n        cursor\n        node {\n          ...SessionRow\n        }\n      }\n      pageInfo {\n        hasNextPage\n        endCursor\n      }\n    }\n  }\n"): (typeof documents)["\n  query Sessions($first: Int!, $after: String) {\n    shootingSessions(first: $first, after: $after) {\n      edges {\n        cursor\n        node {\n          ...SessionRow\n        }\n      }\n      pageInfo {\n        hasNextPage\n        endCursor\n      }\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  fragment SessionRow on ShootingSession {\n    id\n    startedAt\n    discipline\n    location\n    shotCount\n    totalScore\n    user {\n      id\n      displayName\n    }\n  }\n"): (typeof documents)["\n  fragment SessionRow on ShootingSession {\n    id\n    startedAt\n    discipline\n    location\n    shotCount\n    totalScore\n    user {\n      id\n      displayName\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  query Viewer {\n    viewer {\n      id\n      displayName\n      email\n    }\n  }\n"): (typeof documents)["\n  query Viewer {\n    viewer {\n      id\n      displayName\n      email\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation CreateProfile($input: CreateUserInput!) {\n    createUser(input: $input) {\n      id\n      displayName\n      email\n    }\n  }\n"): (typeof documents)["\n  mutation CreateProfile($input: CreateUserInput!) {\n    createUser(input: $input) {\n      id\n      displayName\n      email\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation CreateSession($input: CreateShootingSessionInput!) {\n    createShootingSession(input: $input) {\n      ...SessionRow\n    }\n  }\n"): (typeof documents)["\n  mutation CreateSession($input: CreateShootingSessionInput!) {\n    createShootingSession(input: $input) {\n      ...SessionRow\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  subscription ActivityAdded {\n    activityAdded {\n      id\n      kind\n      createdAt\n      user {\n        id\n        displayName\n      }\n    }\n  }\n"): (typeof documents)["\n  subscription ActivityAdded {\n    activityAdded {\n      id\n      kind\n      createdAt\n      user {\n        id\n        displayName\n      }\n    }\n  }\n"];

export function graphql(source: string) {
  return (documents as any)[source] ?? {};
}

export type DocumentType<TDocumentNode extends DocumentNode<any, any>> = TDocumentNode extends DocumentNode<  infer TType,  any>  ? TType  : never;
// Every operation the app sends; `npm run codegen` types them in src/gql from the gateway's schema.
import { graphql } from "./gql";

export const SESSIONS = graphql(`
  query Sessions($first: Int!, $after: String) {
    shootingSessions(first: $first, after: $after) {
      edges {
        cursor
        node {
          ...SessionRow
        }
      }
      pageInfo {
        hasNextPage
        endCursor
      }
    }
  }
`);

export const SESSION_ROW = graphql(`
  fragment SessionRow on ShootingSession {
    id
    startedAt
    discipline
    location
    shotCount
    totalScore
    user {
      id
      displayName
    }
  }
`);

export const VIEWER = graphql(`
  query Viewer {
    viewer {
      id
      displayName
      email
    }
  }
`);

export const CREATE_PROFILE = graphql(`
  mutation CreateProfile($input: CreateUserInput!) {
    createUser(input: $input) {
      id
      displayName
      email
    }
  }
`);

export const CREATE_SESSION = graphql(`
  mutation CreateSession($input: CreateShootingSessionInput!) {
    createShootingSession(input: $input) {
      ...SessionRow
    }
  }
`);

export const ACTIVITY_ADDED = graphql(`
  subscription ActivityAdded {
    activityAdded {
      id
      kind
      createdAt
      user {
        id
        displayName
      }
    }
  }
`);

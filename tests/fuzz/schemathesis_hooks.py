"""Loaded by schemathesis (SCHEMATHESIS_HOOKS) in tests/test_fuzzing.py: our API's error codes.

Schemathesis's `not_a_server_error` counts a GraphQL error as the server's fault unless its
`extensions.code` is one it knows as the client's (Apollo's BAD_USER_INPUT, GRAPHQL_VALIDATION_FAILED…).
It cannot know ours: a missing row (NOT_FOUND), a duplicate email (CONFLICT), a sign-in or limit
refusal are answers to the request, not failures. INTERNAL, UNAVAILABLE and TIMEOUT stay server errors.
"""

from schemathesis.specs.graphql import validation

CLIENT_CODES = {
    "NOT_FOUND",
    "CONFLICT",
    "FORBIDDEN",
    "UNAUTHENTICATED",
    "QUERY_TOO_COMPLEX",
    "PERSISTED_QUERY_REQUIRED",
}
SERVER_CODES = {"INTERNAL", "UNAVAILABLE", "TIMEOUT"}

# Fail loudly if schemathesis stops classifying errors this way, instead of silently passing.
for markers in (validation.CLIENT_ERROR_MARKERS, validation.SERVER_ERROR_MARKERS):
    if not isinstance(markers, frozenset):
        raise RuntimeError("schemathesis no longer classifies GraphQL errors by code: update this file")
validation.CLIENT_ERROR_MARKERS = validation.CLIENT_ERROR_MARKERS | CLIENT_CODES
validation.SERVER_ERROR_MARKERS = validation.SERVER_ERROR_MARKERS | SERVER_CODES

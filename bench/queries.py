"""The benchmark's operations, as the gateway receives them (the peers' equivalents live beside them)."""

from __future__ import annotations

__all__ = ["QUERY_M", "QUERY_N", "QUERY_P", "shots_input"]

# N: the 50 newest sessions with their user and shots (a nested list).
QUERY_N = """{
  shootingSessions(first: 50) {
    edges { node { id startedAt location user { id displayName } shots { sequence score } } }
  }
}"""

# P: one user by id (a point lookup).
QUERY_P = "query($id: ID!) { user(id: $id) { id displayName email } }"

# M: record a session with 10 shots (a write).
QUERY_M = """mutation($input: CreateShootingSessionInput!) {
  createShootingSession(input: $input) { id shotCount totalScore }
}"""


def shots_input() -> list[dict[str, float]]:
    """The 10 shots every M request records."""
    return [{"score": round(9.0 + i / 10, 1)} for i in range(10)]

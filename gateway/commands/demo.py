"""A small sample club, so a new user sees data in GraphiQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from gateway.datasources.protocol import DataSource
from gateway.datasources.records import NewSession, NewShot, Page
from gateway.schema.inputs import MAX_GROUPS_PER_USER

__all__ = ["load_demo"]

_MEMBERS = [
    ("ada@example.com", "Ada Lovelace"),
    ("grace@example.com", "Grace Hopper"),
    ("alan@example.com", "Alan Turing"),
]
_GROUPS = [
    ("Air Rifle Juniors", "Tuesday evenings, 10 m air rifle"),
    ("Smallbore League", "50 m prone, league matches"),
]
_SCORES = [
    [10.4, 9.8, 10.1, 10.6, 9.5, 10.2, 10.9, 9.9, 10.0, 10.3],
    [9.1, 9.7, 8.8, 10.0, 9.4, 9.9, 10.2, 9.6],
    [10.7, 10.5, 10.8, 10.3, 10.6, 10.1],
]


async def load_demo(source: DataSource) -> bool:
    """Load the sample club into an empty database; False when it already has users."""
    if await source.list_users(Page(1)):
        return False
    users = [await source.create_user(email, name) for email, name in _MEMBERS]
    groups = [await source.create_group(name, text) for name, text in _GROUPS]
    for index, user in enumerate(users):
        group = groups[index % len(groups)]
        await source.join_group(group.id, user.id, MAX_GROUPS_PER_USER)
        for day, scores in enumerate(_SCORES):
            await source.create_session(
                NewSession(
                    user_id=user.id,
                    group_id=group.id,
                    started_at=datetime.now(UTC) - timedelta(days=day * 3 + index, hours=2),
                    discipline="10m Air Rifle" if group is groups[0] else "50m Prone",
                    location="Club range",
                    distance_meters=10 if group is groups[0] else 50,
                    shots=[NewShot(round(score * 10)) for score in scores],
                )
            )
    return True

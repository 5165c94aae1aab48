"""The instants the API accepts: with a UTC offset, and within what every backend stores alike."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from strawberry.schema.types.base_scalars import DateTimeDefinition

__all__ = ["DATETIME", "EARLIEST", "LATEST", "utc_instant"]

# Strawberry's DateTime, read and written as before, with `@specifiedBy` pointing at RFC 3339.
DATETIME = replace(
    DateTimeDefinition,
    description="An instant with its UTC offset, as RFC 3339 writes it: 2025-03-01T10:00:00+00:00.",
    specified_by_url="https://datatracker.ietf.org/doc/html/rfc3339",
)

# MySQL's DATETIME holds years 1000 to 9999; PostgreSQL and SQLite hold more, so these bound all three.
# Not up to datetime.max: asyncpg sends datetime.max as PostgreSQL's 'infinity', which reads back null.
EARLIEST = datetime(1000, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 12, 31, tzinfo=UTC)


def utc_instant(value: datetime) -> datetime | None:
    """`value` in UTC, or None when it has no offset or falls outside EARLIEST..LATEST once in UTC."""
    if value.tzinfo is None or value.utcoffset() is None:
        return None
    try:
        # 0001-01-01T00:00+14:00 is a valid datetime whose UTC time is before year 1.
        converted = value.astimezone(UTC)
    except OverflowError:
        return None
    return converted if EARLIEST <= converted <= LATEST else None

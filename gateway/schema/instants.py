"""The instants the API accepts: with a UTC offset, and within what every backend stores alike."""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["EARLIEST", "LATEST", "utc_instant"]

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

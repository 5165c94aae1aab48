"""Opaque IDs and pagination cursors: what the API hands out and accepts back."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from gateway.schema.instants import utc_instant

__all__ = ["MAX_KEY", "decode_cursor", "decode_global_id", "decode_id", "encode_cursor", "encode_id"]

# Row keys and cursor integers are signed 64-bit in every backend (BIGINT; SQLite's INTEGER).
MAX_KEY = 2**63 - 1


def _b64encode(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _b64decode(text: str) -> str | None:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None


def encode_id(type_name: str, pk: int) -> str:
    """The opaque ID of row `pk` of `type_name`."""
    return _b64encode(f"{type_name}:{pk}")


# No ID is longer: base64 of the longest type name, a colon and an 18-digit key.
_MAX_ID_LENGTH = 64


def decode_id(value: str, type_name: str) -> int | None:
    """The row key inside an ID of `type_name`, or None when the ID is malformed or another type's."""
    return None if len(value) > _MAX_ID_LENGTH else _decode_id(value, type_name)


@lru_cache(maxsize=4096)  # a one-row lookup's only decoding: a hit is one call less than decoding
def _decode_id(value: str, type_name: str) -> int | None:
    decoded = _decode_global_id(value)
    return decoded[1] if decoded is not None and decoded[0] == type_name else None


def decode_global_id(value: str) -> tuple[str, int] | None:
    """The type name and row key inside an ID, or None when it is not one `encode_id` could give.

    Only the exact text `encode_id` gives is an ID: other spellings of the same key (padding,
    leading zeros, non-ASCII digits, characters base64 skips) are malformed.
    """
    return None if len(value) > _MAX_ID_LENGTH else _decode_global_id(value)


@lru_cache(maxsize=4096)  # pure, and clients ask for the same rows again and again
def _decode_global_id(value: str) -> tuple[str, int] | None:
    decoded = _b64decode(value)
    if decoded is None:
        return None
    kind, _, pk = decoded.partition(":")
    if not kind.isidentifier() or not (pk.isascii() and pk.isdigit()) or len(pk) > 18:
        return None
    key = int(pk)
    return (kind, key) if encode_id(kind, key) == value else None


def encode_cursor(listing: str, values: tuple[Any, ...]) -> str:
    """A cursor for the row whose sort values are `values` in the list named `listing`; instants in UTC."""
    encoded = [v.astimezone(UTC).isoformat() if isinstance(v, datetime) else v for v in values]
    return _b64encode(json.dumps([listing, *encoded], separators=(",", ":")))


def decode_cursor(value: str, listing: str, types: tuple[type, ...]) -> tuple[Any, ...] | None:
    """The sort values in a cursor made for `listing`, or None if it is not one.

    Only the exact text `encode_cursor` gives is a cursor. Values no row can hold are not one
    either: integers outside 0..MAX_KEY, instants without an offset or outside what every backend
    stores (datetimes come back in UTC).
    """
    decoded = _b64decode(value)
    if decoded is None:
        return None
    try:
        parts = json.loads(decoded)
    except (ValueError, RecursionError):  # RecursionError: arrays nested a thousand deep
        return None
    if not isinstance(parts, list) or len(parts) != len(types) + 1 or parts[0] != listing:
        return None
    values: list[Any] = []
    for raw, kind in zip(parts[1:], types, strict=True):
        if kind is datetime:
            try:
                parsed = datetime.fromisoformat(raw)
            except (TypeError, ValueError):
                return None
            instant = utc_instant(parsed)
            if instant is None:
                return None
            values.append(instant)
        elif kind is int and isinstance(raw, int) and not isinstance(raw, bool) and 0 <= raw <= MAX_KEY:
            values.append(raw)
        else:
            return None
    # As for IDs, only the text encode_cursor gives: not padded, respaced or over-precise spellings.
    return tuple(values) if encode_cursor(listing, tuple(values)) == value else None

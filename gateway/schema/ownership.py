"""Who owns a row of each type: the one declaration masks read, on both paths."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["OWNERS", "Owner", "owner_of"]


@dataclass(frozen=True, slots=True)
class Owner:
    """The owner's `sub` (a signed-in person): `attribute` of the Strawberry object, `column` of its row."""

    attribute: str
    column: str


OWNERS = {
    "User": Owner(attribute="subject", column="subject"),
}


def owner_of(type_name: str) -> Owner:
    """The owner declaration of `type_name`; a type without one has no owner to compare."""
    try:
        return OWNERS[type_name]
    except KeyError:
        raise ValueError(f"{type_name} rows have no owner (see gateway.schema.ownership)") from None

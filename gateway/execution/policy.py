"""The policy stage: rules that see each operation after validation and before either path runs it.

A rule may refuse the operation (raise `Refused`), or mark fields: a `Mask` answers null for a
field except on rows the request may see. The compiled path honours the marks it knows in SQL;
a mark it does not know sends the operation to Strawberry, where `apply` runs on every value.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Protocol

from graphql import DocumentNode, FragmentDefinitionNode, OperationDefinitionNode

from gateway.errors import ErrorCode, GatewayError
from gateway.schema.context import RequestContext
from gateway.schema.ownership import owner_of

__all__ = ["Decision", "Mark", "Mask", "OperationView", "Policy", "Refused", "Rule", "mark_variable"]

_DECISIONS = 1024  # distinct sets of marks kept decided: one per signed-in person, about


class Refused(GatewayError):
    """A rule refused the operation; nothing of it runs."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        self.code = code
        super().__init__(message)


@dataclass(slots=True)  # not frozen: a frozen dataclass is built through object.__setattr__
class OperationView:
    """What a rule sees of one operation."""

    document: DocumentNode
    operation: OperationDefinitionNode
    fragments: Mapping[str, FragmentDefinitionNode]
    variables: Mapping[str, Any]
    context: RequestContext


class Mark(ABC):
    """Something a rule requires of one field's values; `apply` enforces it on the interpreted path.

    A mark is a value (a frozen dataclass): equal marks are interchangeable, and the policy keeps
    one `Decision` per set of them.
    """

    type_name: str
    field_name: str

    @abstractmethod
    def apply(self, parent: Any, value: Any) -> Any:
        """The value to answer instead of `value`, the field's value on the object `parent`."""

    def shape(self) -> Hashable:
        """What of this mark changes a compiled statement's text (its values are parameters)."""
        return self


@dataclass(frozen=True, slots=True)
class Mask(Mark):
    """`type_name.field_name` is null, except on the rows owned by `visible_to` (a signed-in person's `sub`).

    Who owns a row is declared once per type in `gateway.schema.ownership`.
    """

    type_name: str
    field_name: str
    visible_to: str | None = None

    def __post_init__(self) -> None:
        if self.visible_to is not None:
            owner_of(self.type_name)  # a type without an owner cannot be shown to one

    def shape(self) -> Hashable:
        return (Mask, self.type_name, self.field_name, self.visible_to is None)

    def apply(self, parent: Any, value: Any) -> Any:
        if self.visible_to is None:
            return None
        return value if getattr(parent, owner_of(self.type_name).attribute) == self.visible_to else None


class Rule(Protocol):
    """A policy rule: raises `Refused`, or returns the marks this operation must honour."""

    def __call__(self, operation: OperationView) -> Iterable[Mark]: ...


def mark_variable(mark: Mark) -> str:
    """The name under which a mark's value travels with the variables (no GraphQL name can clash)."""
    return f"\x00{mark.type_name}.{mark.field_name}"


@dataclass(frozen=True, slots=True)
class Decision:
    """The marks one operation must honour, by (type name, field name)."""

    marks: Mapping[tuple[str, str], Mark]
    shape: frozenset[Hashable] = field(init=False)  # what of the decision changes a compiled plan's text
    values: Mapping[str, Any] = field(init=False)  # each mark's value, under its `mark_variable`

    def __post_init__(self) -> None:
        marks = self.marks.values()
        object.__setattr__(self, "shape", frozenset(mark.shape() for mark in marks))
        object.__setattr__(self, "values", {mark_variable(m): getattr(m, "visible_to", None) for m in marks})


ALLOW = Decision({})


def _decision(found: tuple[Mark, ...]) -> Decision:
    """The Decision honouring every mark `found`; ValueError when two mark one field differently."""
    marks: dict[tuple[str, str], Mark] = {}
    for mark in found:
        key = (mark.type_name, mark.field_name)
        if key in marks and marks[key] != mark:
            raise ValueError(f"two rules mark {key[0]}.{key[1]} differently")
        marks[key] = mark
    return Decision(marks)


class Policy:
    """The rules every operation passes, in the order they were added."""

    def __init__(self, rules: Sequence[Rule] = ()) -> None:
        self._rules: list[Rule] = list(rules)
        # The same marks come back with every request of one person: decided once, and the same
        # Decision object each time.
        self._decided = lru_cache(maxsize=_DECISIONS)(_decision)

    @property
    def rules(self) -> tuple[Rule, ...]:
        return tuple(self._rules)

    def add(self, rule: Rule) -> None:
        self._rules.append(rule)

    def decide(self, operation: OperationView) -> Decision:
        """The operation's marks; raises `Refused` when a rule refuses it."""
        if not self._rules:
            return ALLOW
        found: list[Mark] = []
        for rule in self._rules:
            found += rule(operation)
        return self._decided(tuple(found)) if found else ALLOW

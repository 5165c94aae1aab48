"""The policy rules sign-in brings: who may read and write at all, and whose e-mail a request may see.

Finer checks (whose session, for whom) are the mutations' own, in `gateway.schema.authorization`.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

from graphql import OperationType

from gateway.errors import ErrorCode
from gateway.execution.policy import Mark, Mask, OperationView, Refused, Rule
from gateway.settings import Settings

__all__ = ["sign_in_rules"]


def _anonymous_limits(anonymous_read: bool) -> Rule:
    def rule(operation: OperationView) -> Iterable[Mark]:
        if operation.context.identity is None:
            kind = operation.operation.operation
            if kind is OperationType.MUTATION or not anonymous_read:
                action = "change" if kind is OperationType.MUTATION else "read"
                raise Refused(
                    ErrorCode.UNAUTHENTICATED,
                    f"sign in to {action} club data: send a bearer token in the Authorization header",
                )
        return ()

    return rule


def _email_privacy(operation: OperationView) -> Iterable[Mark]:
    """An e-mail is visible to its owner and to admins; to everyone else it is null."""
    identity = operation.context.identity
    if identity is not None and identity.admin:
        return ()
    return _email_visible_to(identity.subject if identity else None)


@lru_cache(maxsize=1024)  # one person sends many requests: the same marks for each
def _email_visible_to(subject: str | None) -> tuple[Mark, ...]:
    return (Mask("User", "email", visible_to=subject),)


def sign_in_rules(settings: Settings) -> list[Rule]:
    """The rules every operation passes while sign-in is on."""
    return [_anonymous_limits(settings.auth_anonymous_read), _email_privacy]

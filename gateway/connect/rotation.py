"""A login the database refused: try the credentials the provider offers next, backing off, within a budget.

Rotation changes the password in the database and in the secret at different moments. The AWS
rotation lambda sets the database password to AWSPENDING's before it moves AWSCURRENT; someone
rotating by hand may update the secret seconds after the database. Either way a new connection
meets a refusal in between: it tries AWSCURRENT read again, then AWSPENDING, then waits a little
and asks again, rather than failing the request that needed the connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from gateway.connect.credentials import CredentialProvider, Credentials

__all__ = ["FIRST_BACKOFF", "MAX_BACKOFF", "after_refusal"]

T = TypeVar("T")

FIRST_BACKOFF = 0.1
MAX_BACKOFF = 1.0


async def after_refusal(
    provider: CredentialProvider,
    refused: Credentials,
    refusal: BaseException,
    attempt: Callable[[Credentials], Awaitable[T]],
    is_refusal: Callable[[BaseException], bool],
    budget: float,
) -> T:
    """`attempt(c)` for each `c` the provider offers after `refused`; re-raises `refusal` past `budget`.

    The first credential the database accepts is reported to the provider, so new connections
    use it. An error other than a refusal (`is_refusal`) ends the retries at once.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + budget
    delay = FIRST_BACKOFF
    tried = {refused}
    while True:
        offered = await provider.rejected(refused)
        if offered is None:
            raise refusal
        for candidate in offered:
            if candidate in tried:
                continue
            tried.add(candidate)
            try:
                result = await attempt(candidate)
            except Exception as exc:
                if not is_refusal(exc):
                    raise
                continue
            provider.accepted(candidate)
            return result
        if loop.time() + delay > deadline:
            raise refusal
        await asyncio.sleep(delay)
        delay = min(delay * 2, MAX_BACKOFF)

"""Calling AWS from the event loop: in a worker thread, bounded, retried when the failure is transient.

Every botocore failure is turned into one of our errors with a one-line message: SecretUnreachable
when AWS could not be asked or could not answer (the caller keeps what it read before, or falls
back), SecretError when AWS answered no (a missing secret, a denied read). botocore's own retries
are off, so the attempts and their backoff are these, bounded together by CALL_TIMEOUT.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from typing import TypeVar

import botocore.config
import botocore.exceptions

from gateway.connect.aws_region import Region
from gateway.connect.credentials import SecretError, SecretUnreachable
from gateway.errors import Unavailable

__all__ = ["ATTEMPTS", "BOTO_CONFIG", "CALL_TIMEOUT", "IncompleteAnswer", "call_aws", "classify"]

log = logging.getLogger(__name__)

T = TypeVar("T")

CALL_TIMEOUT = 10.0
ATTEMPTS = 3
FIRST_BACKOFF = 0.2
BOTO_CONFIG = botocore.config.Config(
    connect_timeout=3, read_timeout=5, retries={"total_max_attempts": 1, "mode": "standard"}
)

# Error codes AWS answers when asking again later may work (botocore's standard retry lists).
_THROTTLED = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "RequestThrottled",
        "SlowDown",
        "LimitExceededException",
    }
)
_INTERNAL = frozenset(
    {"InternalServiceError", "InternalFailure", "InternalError", "ServiceUnavailable", "RequestTimeout"}
)


class IncompleteAnswer(Exception):
    """An answer without the fields every answer of its kind has.

    botocore returns an empty result, not an error, when an answer's body is cut off mid-way.
    """


_UNREACHABLE_REASONS: dict[type[BaseException], str] = {
    IncompleteAnswer: "the answer was cut off",
    botocore.exceptions.ProxyConnectionError: "the proxy cannot be reached: check HTTPS_PROXY and NO_PROXY",
    botocore.exceptions.SSLError: "TLS to the endpoint failed: check AWS_ENDPOINT_URL and AWS_CA_BUNDLE",
    botocore.exceptions.ConnectTimeoutError: "no connection within the timeout",
    botocore.exceptions.EndpointConnectionError: "cannot connect to the endpoint",
    botocore.exceptions.ReadTimeoutError: "no answer within the timeout",
    botocore.exceptions.ResponseStreamingError: "the connection closed in the middle of the answer",
    botocore.exceptions.ConnectionClosedError: "the connection closed before an answer",
    botocore.exceptions.HTTPClientError: "the HTTP exchange failed",
    botocore.exceptions.ConnectionError: "the connection failed",
    TimeoutError: f"no answer within {CALL_TIMEOUT:g}s",
}
_NO_CREDENTIALS = (
    "give this machine a role, or set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
)


def classify(
    exc: BaseException, service: str, region: Region, refused: Callable[[str], Unavailable]
) -> tuple[Unavailable, bool]:
    """Our error for a failed AWS call, and whether trying again may help.

    `refused(code)` words an error AWS answered on purpose (not found, access denied...).
    """
    kind = type(exc).__name__
    if isinstance(exc, botocore.exceptions.ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", "")) or "unknown error"
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        if code in _THROTTLED:
            return SecretUnreachable(f"{service} throttled the request in {region} ({code})"), True
        if code in _INTERNAL or status >= 500:
            return SecretUnreachable(f"{service} failed in {region} ({code}, HTTP {status})"), True
        return refused(code), False
    if isinstance(exc, botocore.exceptions.CredentialRetrievalError):
        # The instance or container endpoint that hands out credentials did not answer; botocore
        # has tried it several times already.
        message = f"AWS credentials for {service} could not be fetched ({kind}: their endpoint is silent)"
        return SecretUnreachable(message), False
    if isinstance(exc, botocore.exceptions.NoCredentialsError | botocore.exceptions.PartialCredentialsError):
        message = f"no usable AWS credentials for {service} ({kind}): {_NO_CREDENTIALS}"
        return SecretUnreachable(message), False
    if isinstance(exc, botocore.exceptions.TokenRetrievalError):
        message = f"the AWS SSO session for {service} has expired ({kind}): run aws sso login"
        return SecretUnreachable(message), False
    for cls, reason in _UNREACHABLE_REASONS.items():
        if isinstance(exc, cls):
            return SecretUnreachable(f"{service} unreachable in {region} ({kind}: {reason})"), True
    if isinstance(exc, botocore.exceptions.BotoCoreError):
        return SecretError(f"{service} in {region} failed ({kind})"), False
    raise exc


async def call_aws(
    call: Callable[[], T], service: str, region: Region, refused: Callable[[str], Unavailable]
) -> T:
    """`call()` in a worker thread, tried ATTEMPTS times with backoff while failures are transient."""
    delay = FIRST_BACKOFF
    attempt = 1
    try:
        async with asyncio.timeout(CALL_TIMEOUT):
            while True:
                try:
                    return await asyncio.to_thread(call)
                except Exception as exc:
                    error, transient = classify(exc, service, region, refused)
                    if not transient or attempt == ATTEMPTS:
                        suffix = f" after {attempt} attempts" if attempt > 1 else ""
                        raise type(error)(f"{error}{suffix}") from None
                    log.info("%s; trying again (%d of %d)", error, attempt + 1, ATTEMPTS)
                # Jitter, so processes that failed together do not all come back together.
                await asyncio.sleep(delay * (0.5 + random.random()))
                delay *= 2
                attempt += 1
    except TimeoutError:
        raise SecretUnreachable(
            f"{service} unreachable in {region} (no answer within {CALL_TIMEOUT:g}s, {attempt} attempts)"
        ) from None

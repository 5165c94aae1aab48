"""Where database credentials come from: the environment, or AWS Secrets Manager (with IAM tokens)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from pydantic import SecretStr

from gateway.errors import Unavailable
from gateway.settings import Settings

__all__ = [
    "CredentialProvider",
    "Credentials",
    "EnvCredentials",
    "SecretError",
    "SecretUnreachable",
    "env_credentials",
    "open_credentials",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Credentials:
    """What a connection needs; the password is a SecretStr, so repr and logs show only stars."""

    host: str
    port: int
    user: str
    password: SecretStr
    database: str


class SecretError(Unavailable):
    """The secret cannot be used as it is (missing, forbidden, malformed); never falls back."""


class SecretUnreachable(Unavailable):
    """AWS could not be asked or did not answer (unreachable, throttled, failing, no AWS credentials)."""


class CredentialProvider(Protocol):
    async def current(self) -> Credentials:
        """The credentials new connections use (cached)."""
        ...

    async def rejected(self, refused: Credentials) -> list[Credentials] | None:
        """After the database refused `refused`: others to try now (maybe none yet), or None if none can come.

        Re-reads the source (rate-limited; callers back off between calls).
        """
        ...

    def accepted(self, credentials: Credentials) -> None:
        """The database accepted `credentials` after a refusal: new connections use them from now on."""
        ...

    async def login(self, credentials: Credentials) -> Credentials:
        """What one new connection sends: `credentials`, or with a fresh IAM token as the password."""
        ...

    def reads(self) -> Mapping[tuple[str, str], int]:
        """Reads of a secret store so far, by (version stage, "ok" or "error"); empty for the environment."""
        ...


def env_credentials(settings: Settings) -> Credentials:
    return Credentials(
        host=settings.db_host,
        port=settings.database_port,
        user=settings.db_user,
        password=settings.db_password,
        database=settings.db_name,
    )


class EnvCredentials:
    """DB_HOST, DB_USER, DB_PASSWORD... from the environment or .env; they never change."""

    def __init__(self, settings: Settings) -> None:
        self._credentials = env_credentials(settings)

    async def current(self) -> Credentials:
        return self._credentials

    async def rejected(self, refused: Credentials) -> list[Credentials] | None:
        return None

    def accepted(self, credentials: Credentials) -> None:
        pass

    async def login(self, credentials: Credentials) -> Credentials:
        return credentials

    def reads(self) -> Mapping[tuple[str, str], int]:
        return {}


async def open_credentials(settings: Settings) -> CredentialProvider:
    """The provider the settings ask for, having read the secret once (fallback per DB_SECRET_FALLBACK)."""
    provider: CredentialProvider = EnvCredentials(settings)
    if settings.aws_secret_name:
        from gateway.connect.aws_secret import SecretsManagerCredentials

        secret = SecretsManagerCredentials(settings)
        try:
            await secret.current()
            provider = secret
        except SecretUnreachable as exc:
            _check_fallback(settings, exc)
            log.warning("%s; using the credentials from the environment (DB_SECRET_FALLBACK)", exc)
    if settings.db_iam_auth:
        from gateway.connect.iam import IamTokenCredentials

        provider = IamTokenCredentials(settings, provider)
    return provider


def _check_fallback(settings: Settings, unreachable: SecretUnreachable) -> None:
    """Raise unless DB_SECRET_FALLBACK is on and the environment holds credentials to fall back on."""
    if not settings.secret_fallback:
        raise SecretUnreachable(
            f"{unreachable}; refusing to start (set DB_SECRET_FALLBACK=true to use DB_PASSWORD instead)"
        ) from None
    # Without them the fallback would log in as nobody, and the failure would blame DB_USER.
    missing = [name.upper() for name in ("db_user", "db_name") if not getattr(settings, name)]
    if missing:
        raise SecretUnreachable(
            f"{unreachable}; refusing to start: DB_SECRET_FALLBACK=true, but {' and '.join(missing)} "
            "to fall back on are not set"
        ) from None

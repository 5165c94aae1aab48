"""AWS credentials for the database: a Secrets Manager secret, or RDS IAM tokens, never on the loop.

boto3 is synchronous; every call runs in a worker thread with a timeout, so a slow AWS endpoint
cannot stall requests. The secret is cached for DB_SECRET_TTL and re-read early, at most once per
REFRESH_INTERVAL, when the database rejects the cached password (rotation).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import boto3
import botocore.config
import botocore.exceptions
from pydantic import SecretStr

from gateway.connect.credentials import (
    CredentialProvider,
    Credentials,
    SecretError,
    SecretUnreachable,
    env_credentials,
)
from gateway.settings import Settings

__all__ = ["IamTokenCredentials", "SecretsManagerCredentials", "parse_secret"]

log = logging.getLogger(__name__)

CALL_TIMEOUT = 10.0
REFRESH_INTERVAL = 5.0
IAM_TOKEN_LIFETIME = 600.0  # RDS tokens last 15 minutes; renew well before.
_BOTO_CONFIG = botocore.config.Config(
    connect_timeout=3, read_timeout=5, retries={"max_attempts": 2, "mode": "standard"}
)
_UNREACHABLE = (
    botocore.exceptions.EndpointConnectionError,
    botocore.exceptions.ConnectTimeoutError,
    botocore.exceptions.ReadTimeoutError,
    botocore.exceptions.NoCredentialsError,
    TimeoutError,
)


def parse_secret(name: str, text: str | None, defaults: Credentials) -> Credentials:
    """Credentials from any accepted secret shape; values in the secret win over `defaults`.

    Shapes: RDS rotation {engine, host, port, username, password, dbname}; RDS-managed master
    user {username, password}; the seed app's {host, port, database, user, password}.
    """
    try:
        data = json.loads(text or "")
    except ValueError:
        raise SecretError(f"secret {name!r} is not JSON: store it as a JSON object of credentials") from None
    if not isinstance(data, Mapping):
        raise SecretError(f"secret {name!r} is not a JSON object of credentials")
    if not isinstance(data.get("password"), str) or not data["password"]:
        raise SecretError(f"secret {name!r} has no 'password' key")
    port: Any = data.get("port", defaults.port)
    try:
        port = int(port)
    except (TypeError, ValueError):
        raise SecretError(f"secret {name!r}: 'port' is not a number") from None
    credentials = Credentials(
        host=str(data.get("host") or defaults.host),
        port=port,
        user=str(data.get("username") or data.get("user") or defaults.user),
        password=SecretStr(data["password"]),
        database=str(data.get("dbname") or data.get("database") or defaults.database),
    )
    if not credentials.user:
        raise SecretError(f"secret {name!r} has no 'username' key and DB_USER is unset")
    if not credentials.database:
        raise SecretError(f"secret {name!r} has no 'dbname' key and DB_NAME is unset")
    return credentials


class SecretsManagerCredentials:
    """Credentials from the secret AWS_SECRET_NAME in AWS_REGION, cached for DB_SECRET_TTL."""

    def __init__(self, settings: Settings) -> None:
        self._name = settings.aws_secret_name or ""
        self._region = settings.aws_region
        self._endpoint = settings.aws_endpoint_url
        self._ttl = settings.db_secret_ttl
        self._defaults = env_credentials(settings)
        self._client: Any = None
        self._cached: Credentials | None = None
        self._fetched_at = float("-inf")
        self._refreshed_at = float("-inf")
        self._lock = asyncio.Lock()
        self.fetches = 0

    @property
    def client(self) -> Any:
        """The boto3 client, created on first use in a worker thread."""
        return self._client

    def _new_client(self) -> Any:
        session = boto3.session.Session()
        return session.client(
            "secretsmanager", region_name=self._region, endpoint_url=self._endpoint, config=_BOTO_CONFIG
        )

    def _get_secret_string(self) -> str | None:
        if self._client is None:
            self._client = self._new_client()
        response = self._client.get_secret_value(SecretId=self._name)
        return response.get("SecretString")

    async def _fetch(self) -> Credentials:
        try:
            text = await asyncio.wait_for(asyncio.to_thread(self._get_secret_string), CALL_TIMEOUT)
        except _UNREACHABLE as exc:
            raise SecretUnreachable(
                f"AWS Secrets Manager unreachable in {self._region} ({type(exc).__name__})"
            ) from None
        except botocore.exceptions.ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code == "ResourceNotFoundException":
                raise SecretError(
                    f"secret {self._name!r} not found in {self._region}: check AWS_SECRET_NAME and AWS_REGION"
                ) from None
            if code in ("AccessDeniedException", "UnrecognizedClientException"):
                raise SecretError(
                    f"not allowed to read secret {self._name!r} ({code}): grant "
                    "secretsmanager:GetSecretValue on it to this machine's role"
                ) from None
            raise SecretError(f"reading secret {self._name!r} failed ({code})") from None
        credentials = parse_secret(self._name, text, self._defaults)
        self._cached, self._fetched_at = credentials, time.monotonic()
        self.fetches += 1
        return credentials

    async def current(self) -> Credentials:
        cached = self._cached
        if cached is not None and time.monotonic() - self._fetched_at < self._ttl:
            return cached
        async with self._lock:
            if self._cached is not None and time.monotonic() - self._fetched_at < self._ttl:
                return self._cached
            return await self._fetch_or_stale()

    async def refresh(self) -> Credentials:
        async with self._lock:
            # Many connections fail at once after a rotation: the first re-reads, the rest share it.
            if self._cached is not None and time.monotonic() - self._refreshed_at < REFRESH_INTERVAL:
                return self._cached
            self._refreshed_at = time.monotonic()
            return await self._fetch_or_stale()

    async def _fetch_or_stale(self) -> Credentials:
        try:
            return await self._fetch()
        except SecretUnreachable as exc:
            if self._cached is None:
                raise
            log.warning("%s; keeping the credentials read earlier", exc)
            return self._cached


class IamTokenCredentials:
    """The user and host of `base`, with a fresh RDS IAM authentication token as the password."""

    def __init__(self, settings: Settings, base: CredentialProvider) -> None:
        self._base = base
        self._region = settings.aws_region
        self._client: Any = None
        self._token: Credentials | None = None
        self._made_at = float("-inf")
        self._lock = asyncio.Lock()

    def _generate(self, credentials: Credentials) -> str:
        if self._client is None:
            self._client = boto3.session.Session().client(
                "rds", region_name=self._region, config=_BOTO_CONFIG
            )
        token: str = self._client.generate_db_auth_token(
            DBHostname=credentials.host,
            Port=credentials.port,
            DBUsername=credentials.user,
            Region=self._region,
        )
        return token

    async def _renew(self, base: Credentials) -> Credentials:
        token = await asyncio.wait_for(asyncio.to_thread(self._generate, base), CALL_TIMEOUT)
        self._token, self._made_at = replace(base, password=SecretStr(token)), time.monotonic()
        return self._token

    async def current(self) -> Credentials:
        async with self._lock:
            if self._token is not None and time.monotonic() - self._made_at < IAM_TOKEN_LIFETIME:
                return self._token
            return await self._renew(await self._base.current())

    async def refresh(self) -> Credentials:
        async with self._lock:
            return await self._renew(await self._base.refresh())

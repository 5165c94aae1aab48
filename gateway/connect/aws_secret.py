"""Database credentials from an AWS Secrets Manager secret, cached, re-read when the database refuses them.

boto3 is synchronous; every call runs in a worker thread (gateway/connect/aws_calls.py), so a
slow AWS endpoint cannot stall requests. The secret is cached for DB_SECRET_TTL. When the
database refuses the cached password, AWSCURRENT is read again at once and, if it has not moved
yet, AWSPENDING: the version a rotation is putting in place.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import Counter
from collections.abc import Mapping
from typing import Any

import boto3
from pydantic import SecretStr

from gateway.connect.aws_calls import BOTO_CONFIG, IncompleteAnswer, call_aws
from gateway.connect.aws_region import secret_region
from gateway.connect.credentials import Credentials, SecretError, SecretUnreachable, env_credentials
from gateway.errors import Unavailable
from gateway.settings import Settings

__all__ = ["REREAD_INTERVAL", "SecretsManagerCredentials", "parse_secret"]

log = logging.getLogger(__name__)

# However many connections are refused together, the secret is read at most this often.
REREAD_INTERVAL = 0.5
_SERVICE = "AWS Secrets Manager"
_CURRENT = "AWSCURRENT"
_PENDING = "AWSPENDING"


def parse_secret(
    name: str,
    text: str | None,
    defaults: Credentials,
    explicit: frozenset[str] = frozenset(),
    password_required: bool = True,
) -> Credentials:
    """Credentials from any accepted secret shape; values in the secret win over `defaults`.

    Shapes: RDS rotation {engine, host, port, username, password, dbname}; RDS-managed master
    user {username, password}; the seed app's {host, port, database, user, password}. `explicit`
    names the fields of `defaults` that win over the secret's (DB_HOST and DB_PORT, when set).
    Under IAM authentication the password is a token, so the secret need not hold one.
    """
    try:
        data = json.loads(text or "")
    except ValueError:
        raise SecretError(f"secret {name!r} is not JSON: store it as a JSON object of credentials") from None
    if not isinstance(data, Mapping):
        raise SecretError(f"secret {name!r} is not a JSON object of credentials")
    password = data.get("password")
    if password_required and (not isinstance(password, str) or not password):
        raise SecretError(f"secret {name!r} has no 'password' key")
    port = defaults.port if "port" in explicit else _port(name, data.get("port", defaults.port))
    host = defaults.host if "host" in explicit else str(data.get("host") or defaults.host)
    credentials = Credentials(
        host=host,
        port=port,
        user=str(data.get("username") or data.get("user") or defaults.user),
        password=SecretStr(password if isinstance(password, str) else ""),
        database=str(data.get("dbname") or data.get("database") or defaults.database),
    )
    if not credentials.user:
        raise SecretError(f"secret {name!r} has no 'username' key and DB_USER is unset")
    if not credentials.database:
        raise SecretError(f"secret {name!r} has no 'dbname' key and DB_NAME is unset")
    return credentials


def _port(name: str, value: Any) -> int:
    """The secret's 'port': an integer from 1 to 65535, or its digits as a string ("5432")."""
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        value = int(value)
    # bool is an int to Python: JSON true would have been port 1.
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise SecretError(f"secret {name!r}: 'port' is not a port number (1-65535)")
    return value


def _explicit_address(settings: Settings) -> frozenset[str]:
    """DB_HOST and DB_PORT when set: an RDS Proxy endpoint there wins over the instance in the secret."""
    given = settings.model_fields_set
    return frozenset(name for name, field in (("host", "db_host"), ("port", "db_port")) if field in given)


class SecretsManagerCredentials:
    """Credentials from the secret AWS_SECRET_NAME, cached for DB_SECRET_TTL."""

    def __init__(self, settings: Settings) -> None:
        self._name = settings.aws_secret_name or ""
        self._region = secret_region(settings)
        self._endpoint = settings.aws_endpoint_url
        self._ttl = settings.db_secret_ttl
        self._defaults = env_credentials(settings)
        self._explicit = _explicit_address(settings)
        self._password_required = not settings.db_iam_auth
        self._client: Any = None
        self._cached: Credentials | None = None
        self._pending: Credentials | None = None
        self._fetched_at = float("-inf")
        self._reread_at = float("-inf")
        self._overridden_host: str | None = None
        self._lock = asyncio.Lock()
        self.fetches = 0
        self._reads: Counter[tuple[str, str]] = Counter()

    @property
    def client(self) -> Any:
        """The boto3 client, created on first use in a worker thread."""
        return self._client

    def _read(self, stage: str | None) -> str | None:
        if self._client is None:
            self._client = boto3.session.Session().client(
                "secretsmanager",
                region_name=self._region.name,
                endpoint_url=self._endpoint,
                config=BOTO_CONFIG,
            )
        request = {"SecretId": self._name} | ({"VersionStage": stage} if stage else {})
        response = self._client.get_secret_value(**request)
        if "ARN" not in response:
            raise IncompleteAnswer
        return response.get("SecretString")

    def _refused(self, code: str) -> Unavailable:
        if code == "ResourceNotFoundException":
            return SecretError(
                f"secret {self._name!r} not found in {self._region}: check AWS_SECRET_NAME and AWS_REGION"
            )
        if code in ("AccessDeniedException", "UnrecognizedClientException"):
            return SecretError(
                f"not allowed to read secret {self._name!r} ({code}): grant "
                "secretsmanager:GetSecretValue on it to this machine's role"
            )
        return SecretError(f"reading secret {self._name!r} failed ({code})")

    def reads(self) -> Mapping[tuple[str, str], int]:
        return self._reads

    async def _fetch(self) -> Credentials:
        try:
            text = await call_aws(lambda: self._read(None), _SERVICE, self._region, self._refused)
            credentials = self._parse(text)
        except Unavailable:
            self._reads[_CURRENT, "error"] += 1
            raise
        self._reads[_CURRENT, "ok"] += 1
        self._cached, self._fetched_at = credentials, time.monotonic()
        self.fetches += 1
        return credentials

    def _parse(self, text: str | None) -> Credentials:
        credentials = parse_secret(self._name, text, self._defaults, self._explicit, self._password_required)
        if "host" in self._explicit:
            self._say_which_host(text)
        return credentials

    def _say_which_host(self, text: str | None) -> None:
        data = json.loads(text or "{}")
        secret_host = data.get("host") if isinstance(data, Mapping) else None
        if not isinstance(secret_host, str) or secret_host in ("", self._defaults.host):
            return
        if secret_host == self._overridden_host:
            return  # said once already
        self._overridden_host = secret_host
        log.info(
            "DB_HOST=%s is set, so the gateway connects there, not to the host in secret %r (%s)",
            self._defaults.host,
            self._name,
            secret_host,
        )

    async def _fetch_pending(self) -> Credentials | None:
        """The AWSPENDING version, or None when no rotation is under way (or it cannot be read)."""

        def not_pending(code: str) -> Unavailable:
            return SecretError(f"secret {self._name!r} has no {_PENDING} version ({code})")

        try:
            text = await call_aws(lambda: self._read(_PENDING), _SERVICE, self._region, not_pending)
            self.fetches += 1
            credentials = self._parse(text)
        except (SecretError, SecretUnreachable):
            self._reads[_PENDING, "error"] += 1
            return None
        self._reads[_PENDING, "ok"] += 1
        return credentials

    async def current(self) -> Credentials:
        cached = self._cached
        if cached is not None and time.monotonic() - self._fetched_at < self._ttl:
            return cached
        async with self._lock:
            if self._cached is not None and time.monotonic() - self._fetched_at < self._ttl:
                return self._cached
            return await self._fetch_or_stale()

    async def rejected(self, refused: Credentials) -> list[Credentials]:
        async with self._lock:
            # Connections refused together: the first reads again, the others take what it found.
            if self._cached == refused and time.monotonic() - self._reread_at >= REREAD_INTERVAL:
                self._reread_at = time.monotonic()
                current = await self._fetch_or_stale()
                self._pending = await self._fetch_pending() if current == refused else None
            offered = (self._cached, self._pending)
            return [c for c in offered if c is not None and c != refused]

    def accepted(self, credentials: Credentials) -> None:
        if credentials == self._pending and credentials != self._cached:
            log.info("secret %r: the database accepts %s's password; using it", self._name, _PENDING)
        self._cached, self._fetched_at = credentials, time.monotonic()

    async def login(self, credentials: Credentials) -> Credentials:
        return credentials

    async def _fetch_or_stale(self) -> Credentials:
        try:
            return await self._fetch()
        except SecretUnreachable as exc:
            if self._cached is None:
                raise
            log.warning("%s; keeping the credentials read earlier", exc)
            return self._cached
